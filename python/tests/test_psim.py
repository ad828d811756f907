"""The acceptance of issue 11, and the behaviours the package promises."""

import os
import subprocess

import numpy as np
import pandas as pd
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


VT = dict(engine="virtual-time", workers=8, compute_time="exp:1", steps=2000, runs=3, step_size=0.01, momentum=0.5, seed=7, progress=False)
INJ = dict(delay="exp:5", steps=2000, runs=3, step_size=0.01, momentum=0.5, seed=7, progress=False)


def test_reproduce_tradeoff_acceptance():
    r = psim.reproduce("tradeoff", runs=20, steps=10000, progress=False)
    rows = r.summary["tradeoff"]
    assert rows and all("optimal_delay" in row for row in rows), r.summary.keys()
    assert isinstance(r.runs, pd.DataFrame) and len(r.runs) > 0
    assert isinstance(r.traces, pd.DataFrame)
    assert r.staleness.values.dtype == np.int64 and r.staleness.counts.sum() > 0


@pytest.mark.parametrize("settings", [VT, INJ], ids=["virtual-time", "injected"])
def test_python_objective_runs_falls_and_is_deterministic(settings):
    a = psim.run(objective=Quadratic(), **settings)
    first = a.traces.groupby("step")["mean_error"].mean()
    assert first.iloc[-1] < 0.1 * first.iloc[0], first
    b = psim.run(objective=Quadratic(), **settings)
    pd.testing.assert_frame_equal(a.runs, b.runs)
    pd.testing.assert_frame_equal(a.traces, b.traces)
    c = psim.run(objective=Quadratic(), **dict(settings, seed=8))
    assert not a.traces.equals(c.traces)


@pytest.mark.parametrize("extra", [
    dict(consistency="ssp:2"), dict(consistency="bsp"), dict(rule="nesterov"), dict(rule="dc-asgd:0.1"),
    dict(network_delay="uniform:0..1"),
])
def test_python_objective_every_consistency_and_rule(extra):
    r = psim.run(objective=Quadratic(), **dict(VT, runs=1, steps=500), **extra)
    assert r.runs["final_error"].iloc[0] < 2.0


@pytest.mark.parametrize("delay", ["3", "uniform:0..10", "geometric:0.2", "poisson:4", "pareto:1,2", "lognormal:1,0.5", "0.5*3+0.5*exp:10"])
def test_python_objective_every_delay_model(delay):
    r = psim.run(objective=Quadratic(), **dict(INJ, runs=1, steps=500, delay=delay))
    assert np.isfinite(r.runs["final_error"].iloc[0])


@pytest.mark.parametrize("engine", ["threads", "tasks"])
def test_python_objective_on_wall_clock_engines_takes_the_gil_per_call(engine):
    r = psim.run(objective=Quadratic(), engine=engine, workers=2, compute_time="0", steps=300, runs=1, step_size=0.01, progress=False)
    assert r.runs["final_error"].iloc[0] < Quadratic().error(np.ones(4))


def test_sweep_grid_and_save_makes_the_cli_directory(tmp_path):
    r = psim.sweep(momentum=[0.0, 0.5], taus="0:20:10", runs=2, steps=500, progress=False)
    assert sorted(r.runs["point"].unique()) == list(range(6))
    d = r.save(tmp_path / "out")
    assert {"config.toml", "summary.json", "runs.csv", "traces.csv", "staleness.csv"} <= set(os.listdir(d))
    with pytest.raises(psim.PsimError):
        r.save(d)


def test_config_path_and_dict(tmp_path):
    a = psim.run(runs=2, steps=300, seed=3, momentum=0.5, out=tmp_path / "a", progress=False)
    b = psim.run(config=tmp_path / "a" / "config.toml", progress=False)
    pd.testing.assert_frame_equal(a.runs, b.runs)
    with pytest.raises(psim.PsimError) as e:
        psim.run(config={"name": "run", "base": {"steps": 300}}, progress=False)
    assert e.value.field == "config" and "missing field" in str(e.value)
    tomllib = pytest.importorskip("tomllib")
    with open(tmp_path / "a" / "config.toml", "rb") as f:
        as_dict = tomllib.load(f)
    c = psim.run(config=as_dict, progress=False)
    pd.testing.assert_frame_equal(a.runs, c.runs)


def test_bad_value_names_the_field():
    with pytest.raises(psim.PsimError) as e:
        psim.run(momentum=1.5, progress=False)
    assert e.value.field == "momentum" and "momentum" in str(e.value)
    with pytest.raises(psim.PsimError) as e:
        psim.run(step_size="abc", progress=False)
    assert e.value.field == "step_size" and "--step-size" in str(e.value)
    with pytest.raises(ValueError):
        psim.run(delay="nonsense:1", progress=False)


def test_unknown_or_unused_keyword_is_refused():
    with pytest.raises(psim.PsimError) as e:
        psim.run(momentun=0.5)
    assert e.value.field == "momentun" and "momentum" in str(e.value)
    with pytest.raises(psim.PsimError) as e:
        psim.run(workers=4, progress=False)  # injected engine: no workers
    assert e.value.field == "workers"
    with pytest.raises(psim.PsimError) as e:
        psim.reproduce("tradeoff", network_delay="1", progress=False)
    assert e.value.field == "network_delay"
    with pytest.raises(psim.PsimError) as e:
        psim.run(objective=Quadratic(), spectrum=[4, 3], progress=False)
    assert e.value.field == "spectrum"


def test_user_exception_is_raised():
    class Broken(Quadratic):
        def gradient(self, params, rng):
            raise ZeroDivisionError("user bug")

    with pytest.raises(ZeroDivisionError, match="user bug"):
        psim.run(objective=Broken(), **dict(INJ, runs=2, steps=100))


def test_ctrl_c_interrupts_a_long_run():
    import signal
    import threading

    class Slow(Quadratic):
        calls = 0

        def gradient(self, params, rng):
            Slow.calls += 1
            if Slow.calls == 50:
                threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            return super().gradient(params, rng)

    with pytest.raises(KeyboardInterrupt):
        psim.run(objective=Slow(), **dict(INJ, runs=1000, steps=2000))


def test_cli_reports_on_a_saved_directory(tmp_path):
    exe = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "psim")
    if not os.path.exists(exe):
        pytest.skip("no target/release/psim")
    r = psim.run(runs=2, steps=300, progress=False)
    d = r.save(tmp_path / "saved")
    subprocess.run([exe, "report", str(d)], check=True, capture_output=True)
    assert os.path.exists(os.path.join(d, "report.html"))
