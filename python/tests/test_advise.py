"""psim.advise: thin over the Rust `psim advise`; a Python objective's top
curvature estimated from gradient differences."""

import numpy as np
import pytest

import psim


class Quadratic:
    """f(x) = ½ Σ hᵢ xᵢ², gradients with Gaussian noise."""

    dim = 4
    h = np.array([4.0, 3.0, 2.0, 1.0])
    initial_point = np.ones(4)

    def gradient(self, params, rng):
        return self.h * params + 0.1 * rng.standard_normal(self.dim)

    def error(self, params):
        return float(0.5 * np.sum(self.h * params**2))


def test_curvature_of_a_noisy_quadratic():
    # Common random numbers cancel the additive noise: the estimate is the
    # top eigenvalue 4 up to power-iteration convergence ((3/4)^60 ≈ 3e-8).
    assert psim.estimate_curvature(Quadratic()) == pytest.approx(4.0, rel=1e-6)


def test_advise_matches_the_cli_on_e1s_problem():
    out = psim.advise(step_size=5e-4, spectrum=[4, 3, 2, 1], delay="const:30",
                      momentum=[0.7, 0.9], print_report=False)
    rows = {r["momentum"]: r["largest"] for r in out["advice"]["rows"]}
    assert rows == {0.7: 115, 0.9: 32}
    assert out["advice"]["best_momentum"] == 0.9
    assert out["confirmation"] is None


def test_advise_from_a_python_objective():
    # Curvature 4 with η = 5e-4 is the gain of E1's problem's PCA at 2λ₁ = 8 with η = 2.5e-4.
    out = psim.advise(step_size=1e-3, objective=Quadratic(), delay="const:30", momentum=[0.9], print_report=False)
    assert out["advice"]["curvature"] == pytest.approx(4.0, rel=1e-6)
    assert out["advice"]["rows"][0]["largest"] == 32


def test_advise_confirms():
    out = psim.advise(step_size=5e-4, spectrum=[4, 3, 2, 1], workers=16, compute_time="const:1",
                      momentum=[0.9], confirm=True, runs=8, print_report=False)
    assert out["confirmation"]["rows"][0]["agrees"]


def test_advise_refusals_name_the_keyword():
    with pytest.raises(psim.PsimError) as e:
        psim.advise(step_size=5e-4, delay="const:1", momentum=[1.5], print_report=False)
    assert "momentum" in str(e.value)
    with pytest.raises(psim.PsimError):
        psim.advise(step_size=5e-4, objective=Quadratic(), delay="const:1", confirm=True, print_report=False)
