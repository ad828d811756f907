"""A Python objective inside psim (issue 16): one thread state per engine
thread, one instance per worker, checked gradients, replayable configs, the
`psim` command, errors that name the keyword, progress."""

import os
import re
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

import psim
from psim import _psim

QUIET = dict(progress=False)
VT = dict(engine="virtual-time", workers=4, compute_time="exp:1", steps=400, runs=2, step_size=0.01, momentum=0.5, seed=7, **QUIET)


class Quadratic:
    """f(x) = ½ Σ hᵢ xᵢ² with Gaussian gradient noise; replayable (its constructor arguments are attributes)."""

    def __init__(self, dim=4, noise=0.1):
        self.dim = dim
        self.noise = noise
        self.h = np.linspace(4.0, 1.0, dim)
        self.initial_point = np.ones(dim)

    def gradient(self, params, rng):
        return self.h * params + self.noise * rng.standard_normal(self.dim)

    def error(self, params):
        return float(0.5 * np.sum(self.h * params**2))


# --- 1. one Python thread state per engine thread ---------------------------

_TL = threading.local()
_FRESH = []


class LocalCounting(Quadratic):
    """Counts the calls that found this thread's threading.local empty."""

    def gradient(self, params, rng):
        if not getattr(_TL, "seen", False):
            _TL.seen = True
            _FRESH.append(threading.get_ident())
        return super().gradient(params, rng)


@pytest.mark.parametrize("settings", [
    dict(delay="3", steps=1000, runs=1),
    dict(engine="virtual-time", workers=3, compute_time="1", steps=1000, runs=1),
    dict(engine="threads", workers=3, compute_time="0", steps=1000, runs=1),
    dict(engine="tasks", workers=3, compute_time="0", steps=1000, runs=1),
], ids=["injected", "virtual-time", "threads", "tasks"])
def test_thread_local_persists_across_calls_on_an_engine_thread(settings):
    _FRESH.clear()
    r = psim.run(objective=LocalCounting(), step_size=0.01, momentum=0.5, **settings, **QUIET)
    assert r.runs["final_error"].iloc[0] < Quadratic().error(np.ones(4))
    # One fresh thread-local per engine thread (3 worker threads; the tasks
    # engine's runtime has one thread per core), not one per call (1000).
    assert 1 <= len(_FRESH) <= max(4, os.cpu_count() or 1), len(_FRESH)
    assert len(set(_FRESH)) == len(_FRESH)


def test_parameters_arrive_as_float64_and_a_kept_array_keeps_its_values():
    kept = []

    class Keeper(Quadratic):
        def gradient(self, params, rng):
            assert params.dtype == np.float64 and params.shape == (self.dim,)
            kept.append((params, params.copy()))
            return super().gradient(params, rng)

    psim.run(objective=Keeper(), delay="0", steps=50, runs=1, step_size=0.01, **QUIET)
    assert len(kept) == 50
    for held, copied in kept:
        np.testing.assert_array_equal(held, copied)
    assert not np.array_equal(kept[0][1], kept[-1][1])


# --- 2. one instance per worker, another for the server ---------------------

_USES = []


class Tracked(Quadratic):
    """Records which instance does what on which thread."""

    def __init__(self, dim=4, noise=0.1, role="source"):
        super().__init__(dim, noise)
        self.role = role

    def gradient(self, params, rng):
        _USES.append(("gradient", id(self), self.role, threading.get_ident()))
        return super().gradient(params, rng)

    def error(self, params):
        _USES.append(("error", id(self), self.role, threading.get_ident()))
        return super().error(params)


class PerWorker(Tracked):
    def for_worker(self, i):
        return PerWorker(self.dim, self.noise, role=f"worker {i}" if i is not None else "server")


@pytest.mark.parametrize("engine", ["threads", "tasks", "virtual-time"])
def test_each_worker_has_its_own_deep_copy_and_the_server_another(engine):
    _USES.clear()
    source = Tracked()
    psim.run(objective=source, engine=engine, workers=4, compute_time="exp:1" if engine == "virtual-time" else "0.0005", steps=400, runs=1, step_size=0.01, record_every=50, **QUIET)
    grads = [u for u in _USES if u[0] == "gradient"]
    errors = [u for u in _USES if u[0] == "error"]
    assert grads and errors
    instances = {u[1] for u in grads}
    assert id(source) not in instances | {u[1] for u in errors}, "the user's own object is never called"
    assert len(instances) == 4, "one instance per worker"
    assert not instances & {u[1] for u in errors}, "the server's instance is not a worker's"
    if engine == "threads":
        for inst in instances:
            assert len({u[3] for u in grads if u[1] == inst}) == 1, "an instance stays on its worker's thread"


def test_for_worker_is_called_with_the_worker_index_and_none_for_the_server():
    _USES.clear()
    psim.run(objective=PerWorker(), **dict(VT, runs=1))
    roles = {u[2] for u in _USES if u[0] == "gradient"}
    assert roles == {f"worker {i}" for i in range(4)}
    assert {u[2] for u in _USES if u[0] == "error"} == {"server"}


def test_per_worker_instances_are_made_afresh_per_run_so_runs_are_deterministic():
    class Stateful(Quadratic):
        calls = 0

        def gradient(self, params, rng):
            self.calls += 1  # an instance attribute: would drift from run to run if instances were reused
            return super().gradient(params, rng) * (1.0 if self.calls > 0 else 0.0)

    a = psim.run(objective=Stateful(), **VT)
    b = psim.run(objective=Stateful(), **VT)
    pd.testing.assert_frame_equal(a.runs, b.runs)


def test_an_object_that_cannot_be_deep_copied_is_refused_naming_objective():
    class Uncopyable(Quadratic):
        def __deepcopy__(self, memo):
            raise TypeError("holds a socket")

    with pytest.raises(psim.PsimError) as e:
        psim.run(objective=Uncopyable(), delay="0", steps=10, runs=1, **QUIET)
    assert e.value.field == "objective" and "for_worker" in str(e.value) and "holds a socket" in str(e.value)


# --- gradient checks and non-finite values (items 1 and 7) ------------------


def _returning(value):
    class Returns(Quadratic):
        def gradient(self, params, rng):
            return value() if callable(value) else value

    return Returns()


@pytest.mark.parametrize("value, words", [
    (np.ones((2, 2)), ["(2, 2)", "float64", "(4,)"]),
    (np.ones(3), ["(3,)", "float64", "(4,)"]),
    (np.ones(4, dtype=np.complex128), ["complex128", "(4,)"]),
    (np.ones(4, dtype=np.float32), ["float32", "astype"]),
    (None, ["None", "(4,)"]),
    ([1, 2, 3, 4], ["int64", "list"]),
    ("abcd", ["str"]),
], ids=["2x2", "short", "complex", "float32", "None", "int-list", "str"])
def test_a_wrong_gradient_is_refused_naming_gradient_its_shape_and_dtype(value, words):
    with pytest.raises(psim.PsimError) as e:
        psim.run(objective=_returning(value), delay="0", steps=10, runs=1, **QUIET)
    assert e.value.field == "gradient", e.value
    message = str(e.value)
    assert message.startswith("gradient"), message
    for w in words:
        assert w in message, (w, message)


def test_a_list_of_floats_and_a_strided_float64_array_are_accepted():
    psim.run(objective=_returning([0.1, 0.2, 0.3, 0.4]), delay="0", steps=10, runs=1, **QUIET)
    psim.run(objective=_returning(np.zeros(8)[::2]), delay="0", steps=10, runs=1, **QUIET)


def test_a_non_finite_gradient_is_reported_with_its_call_run_and_worker():
    class NanAt(Quadratic):
        n = 0

        def gradient(self, params, rng):
            self.n += 1
            g = super().gradient(params, rng)
            if self.n == 30:
                g[2] = np.nan
            return g

    with pytest.raises(psim.PsimError) as e:
        psim.run(objective=NanAt(), delay="0", steps=100, runs=2, **QUIET)
    m = str(e.value)
    assert e.value.field == "gradient" and m.startswith("gradient")
    assert "nan at index 2" in m and "call 30" in m and "run 0 of point 0" in m, m


def test_a_non_finite_error_at_finite_parameters_is_reported():
    class BadError(Quadratic):
        def error(self, params):
            return float("inf")

    with pytest.raises(psim.PsimError) as e:
        psim.run(objective=BadError(), delay="0", steps=100, runs=1, **QUIET)
    assert e.value.field == "error" and "inf" in str(e.value)


@pytest.mark.parametrize("make, field", [
    (lambda: type("NoDim", (), {"initial_point": np.ones(2), "gradient": lambda s, p, r: p, "error": lambda s, p: 0.0})(), "dim"),
    (lambda: type("BadDim", (), {"dim": 0, "initial_point": np.ones(2), "gradient": lambda s, p, r: p, "error": lambda s, p: 0.0})(), "dim"),
    (lambda: type("NoGrad", (), {"dim": 2, "initial_point": np.ones(2), "error": lambda s, p: 0.0})(), "gradient"),
    (lambda: type("NoInit", (), {"dim": 2, "gradient": lambda s, p, r: p, "error": lambda s, p: 0.0})(), "initial_point"),
    (lambda: type("NanInit", (), {"dim": 2, "initial_point": np.array([1.0, np.nan]), "gradient": lambda s, p, r: p, "error": lambda s, p: 0.0})(), "initial_point"),
], ids=["no-dim", "dim-0", "no-gradient", "no-initial-point", "nan-initial-point"])
def test_a_broken_objective_is_refused_naming_what_is_wrong(make, field):
    with pytest.raises(psim.PsimError) as e:
        psim.run(objective=make(), delay="0", steps=10, runs=1, **QUIET)
    assert e.value.field == field and str(e.value).startswith(field), (field, e.value.field, str(e.value))


@pytest.mark.parametrize("settings, field", [
    (dict(delay="exp:-1"), "delay"),
    (dict(delay="uniform:5..1"), "delay"),
    (dict(engine="virtual-time", workers=2, compute_time="foo"), "compute_time"),
    (dict(engine="virtual-time", workers=2, network_delay="foo"), "network_delay"),
    (dict(engine="threads", workers=2, compute_time="exp:-1"), "compute_time"),
    (dict(history_policy="x"), "history_policy"),
    (dict(momentum=1.5), "momentum"),
    (dict(objective=Quadratic(), spectrum=[4, 3]), "spectrum"),
    (dict(objective=Quadratic(), threads=2), "threads"),
    (dict(step_size="abc"), "step_size"),
])
def test_every_refusal_names_its_keyword_first(settings, field):
    with pytest.raises(psim.PsimError) as e:
        psim.run(steps=10, runs=1, **settings, **QUIET)
    assert e.value.field == field, (e.value.field, str(e.value))
    assert str(e.value).startswith(field + ":"), str(e.value)


# --- 5. replays that hold ---------------------------------------------------


def test_a_python_objective_is_recorded_and_replayed(tmp_path):
    a = psim.run(objective=Quadratic(dim=3, noise=0.2), out=tmp_path / "a", **VT)
    text = (tmp_path / "a" / "config.toml").read_text()
    assert 'kind = "python"' in text and 'reference = "test_objective:Quadratic"' in text and "pca" not in text
    b = psim.run(config=tmp_path / "a" / "config.toml", **QUIET)
    pd.testing.assert_frame_equal(a.runs, b.runs)
    pd.testing.assert_frame_equal(a.traces, b.traces)
    # The replay records the objective again.
    c = psim.run(config=tmp_path / "a" / "config.toml", out=tmp_path / "c", **QUIET)
    assert 'reference = "test_objective:Quadratic"' in (tmp_path / "c" / "config.toml").read_text()
    pd.testing.assert_frame_equal(a.runs, c.runs)


def test_a_renamed_objective_is_refused_naming_objective(tmp_path):
    psim.run(objective=Quadratic(), out=tmp_path / "a", **dict(VT, runs=1))
    path = tmp_path / "a" / "config.toml"
    path.write_text(path.read_text().replace("test_objective:Quadratic", "test_objective:Renamed"))
    with pytest.raises(psim.PsimError) as e:
        psim.run(config=path, **QUIET)
    assert e.value.field == "objective" and "test_objective:Renamed" in str(e.value)


def test_psim_spec_and_unreplayable_objectives(tmp_path):
    class Local(Quadratic):
        pass

    psim.run(objective=Local(), out=tmp_path / "local", **dict(VT, runs=1))
    assert "replayable = false" in (tmp_path / "local" / "config.toml").read_text()
    with pytest.raises(psim.PsimError) as e:
        psim.run(config=tmp_path / "local" / "config.toml", **QUIET)
    assert e.value.field == "objective" and "inside a function" in str(e.value)


_Hidden = type("NotThisName", (Quadratic,), {})


class ArrayArg(Quadratic):
    def __init__(self, h):
        super().__init__(dim=len(h))
        self.h = np.asarray(h)


@pytest.mark.parametrize("make, reason", [
    (lambda: _Hidden(), "does not name this class"),
    (lambda: ArrayArg(np.array([2.0, 1.0])), "`h` is a ndarray, not a plain value"),
], ids=["unreachable-name", "array-argument"])
def test_what_cannot_be_replayed_is_recorded_as_such_and_refused(tmp_path, make, reason):
    psim.run(objective=make(), out=tmp_path / "a", **dict(VT, runs=1))
    text = (tmp_path / "a" / "config.toml").read_text()
    assert "replayable = false" in text and reason in text, text
    with pytest.raises(psim.PsimError) as e:
        psim.run(config=tmp_path / "a" / "config.toml", **QUIET)
    assert e.value.field == "objective" and reason in str(e.value)


class WithSpec(Quadratic):
    def __init__(self, weights):
        super().__init__(dim=len(weights))
        self.h = np.asarray(weights, dtype=float)

    def psim_spec(self):
        return {"weights": self.h.tolist()}


def test_psim_spec_gives_the_constructor_arguments(tmp_path):
    a = psim.run(objective=WithSpec([3.0, 2.0]), out=tmp_path / "a", **dict(VT, runs=1))
    b = psim.run(config=tmp_path / "a" / "config.toml", **QUIET)
    pd.testing.assert_frame_equal(a.runs, b.runs)


def test_the_cli_refuses_a_python_objective_config(tmp_path):
    psim.run(objective=Quadratic(), out=tmp_path / "a", **dict(VT, runs=1))
    p = subprocess.run([_psim_command(), "run", "--config", str(tmp_path / "a" / "config.toml")], capture_output=True, text=True)
    assert p.returncode == 2 and "python" in p.stderr, p.stderr


# --- 6. the `psim` command --------------------------------------------------


def _psim_command():
    exe = os.path.join(os.path.dirname(sys.executable), "psim")
    if not os.path.exists(exe):
        pytest.fail(f"pip install ./python did not install the psim command ({exe})")
    return exe


def test_the_psim_command_is_installed_with_the_package(tmp_path):
    p = subprocess.run([_psim_command(), "--version"], capture_output=True, text=True, check=True)
    assert re.match(r"psim \d+\.\d+", p.stdout), p.stdout
    d = psim.run(runs=2, steps=300, **QUIET).save(tmp_path / "saved")
    subprocess.run([_psim_command(), "report", str(d)], check=True, capture_output=True)
    assert os.path.exists(os.path.join(d, "report.html"))
    p = subprocess.run([_psim_command(), "run", "--momentum", "2"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error:") and "momentum" in p.stderr


# --- progress ---------------------------------------------------------------


def test_progress_never_exceeds_its_total():
    seen = []
    argv = ["psim", "reproduce", "three-phases", "--runs=30", "--quiet", "--force", "--out", os.devnull + "-unused"]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        argv[-1] = os.path.join(d, "out")
        _psim.execute(argv, None, lambda done, total: seen.append((done, total)))
    assert seen and all(done <= total for done, total in seen), seen[-5:]
    assert seen[-1][0] == seen[-1][1]


def test_no_carriage_returns_without_a_terminal():
    code = "import psim; psim.run(objective=None, runs=200, steps=2000)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.path.dirname(sys.executable))
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr, repr(p.stderr[:200])
