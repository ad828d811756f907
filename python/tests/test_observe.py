"""What a researcher gets back (issue 16, item 3): per-run traces
(`record_runs`), the objective's `metrics`, a `callback` that can stop a run,
numeric model means beside the model strings, and stable dtypes."""

import os

import numpy as np
import pandas as pd
import pytest

import psim
from test_objective import Quadratic

QUIET = dict(progress=False)
SMALL = dict(runs=3, steps=600, record_every=100, step_size=0.05, momentum=0.5, seed=3, **QUIET)


class Measured(Quadratic):
    """Quadratic with two extra metrics."""

    def metrics(self, params):
        return {"norm": float(np.linalg.norm(params)), "x0": float(params[0])}


def test_record_runs_keeps_every_runs_trace_with_the_metrics_as_columns(tmp_path):
    o = Measured()
    r = psim.run(objective=o, record_runs=True, out=tmp_path / "o", **SMALL)
    t = r.run_traces
    assert list(t.columns) == ["point", "run", "step", "error", "time", "norm", "x0"]
    assert len(t) == 3 * 7, "steps 0, 100, …, 600 of each of the 3 runs"
    assert (t.groupby("run")["step"].apply(list) == [[0, 100, 200, 300, 400, 500, 600]] * 3).all()
    # The metrics are evaluated at the trace point's parameters, as the error is:
    # ‖x‖ and x₀ of the same point, so ½Σhᵢxᵢ² ≤ ½·max(h)·‖x‖² (h ≤ 4).
    assert (t["error"] <= 0.5 * 4.0 * t["norm"] ** 2 + 1e-12).all()
    assert t.loc[t["step"] == 0, "x0"].tolist() == [1.0, 1.0, 1.0]
    assert t.loc[t["step"] == 0, "norm"].tolist() == [2.0, 2.0, 2.0]
    # The last trace point of each run is its final error.
    last = t.groupby("run").tail(1).set_index("run")["error"]
    assert np.array_equal(last.to_numpy(), r.runs.set_index("run")["final_error"].to_numpy())
    assert t["time"].isna().all(), "the injected engine has no clock"
    assert "run-traces.csv" in os.listdir(tmp_path / "o")
    # Deterministic: the same call gives the same table.
    again = psim.run(objective=Measured(), record_runs=True, **SMALL).run_traces
    pd.testing.assert_frame_equal(t, again)


def test_without_record_runs_there_are_no_run_traces_and_metrics_are_not_called():
    class Counting(Measured):
        def metrics(self, params):
            raise AssertionError("metrics called without record_runs")

    r = psim.run(objective=Counting(), **SMALL)
    assert r.run_traces is None and "run-traces.csv" not in r.files


def test_record_runs_on_the_builtin_objective_and_a_grid():
    r = psim.sweep(delay=["exp:5", "0"], record_runs=True, runs=9, steps=300, record_every=100, **QUIET)
    t = r.run_traces
    assert list(t.columns) == ["point", "run", "step", "error", "time"]
    assert len(t) == 2 * 9 * 4
    last = t.groupby(["point", "run"]).tail(1)["error"].to_numpy()
    assert np.array_equal(last, r.runs.sort_values(["point", "run"])["final_error"].to_numpy())
    # The mean trace is the mean of the run traces (no run diverged here).
    mean = t.groupby(["point", "step"])["error"].mean().to_numpy()
    assert np.allclose(mean, r.traces.sort_values(["point", "step"])["mean_error"].to_numpy(), rtol=1e-12)


def test_a_callback_sees_every_trace_point_and_stops_a_run_by_returning_true():
    seen = []

    def callback(point, run, step, params):
        assert isinstance(params, np.ndarray) and params.shape == (4,) and params.dtype == np.float64
        seen.append((point, run, step))
        return run == 1 and step == 200

    r = psim.run(objective=Quadratic(), callback=callback, record_runs=True, **SMALL)
    runs = r.runs.set_index("run")
    assert runs.loc[1, "outcome"] == "stopped" and runs.loc[1, "outcome_step"] == 200
    assert runs.loc[1, "applied"] == 200
    assert (runs.loc[[0, 2], "outcome"] == "steps_reached").all()
    assert seen == [(0, 0, s) for s in range(0, 700, 100)] + [(0, 1, 0), (0, 1, 100), (0, 1, 200)] + [
        (0, 2, s) for s in range(0, 700, 100)
    ]
    assert r.run_traces.query("run == 1")["step"].tolist() == [0, 100, 200]
    assert r.summary["points"][0]["diverged"] == 0, "a stop is no divergence"


@pytest.mark.parametrize(
    "engine",
    [
        dict(),
        dict(engine="virtual-time", workers=2, compute_time="exp:1"),
        dict(engine="threads", workers=2, compute_time="0"),
    ],
    ids=["injected", "virtual-time", "threads"],
)
def test_raising_stop_ends_the_run_on_every_engine(engine):
    def callback(point, run, step, params):
        if step >= 300:
            raise psim.Stop

    r = psim.run(callback=callback, runs=2, steps=2000, record_every=100, **engine, **QUIET)
    assert (r.runs["outcome"] == "stopped").all()
    assert (r.runs["outcome_step"] == 300).all()
    # The threads engine may apply pushes in flight after the stop; never many.
    assert (r.runs["applied"] < 400).all()


def test_a_callbacks_own_exception_is_raised_as_is():
    def callback(point, run, step, params):
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        psim.run(objective=Quadratic(), callback=callback, **SMALL)


@pytest.mark.parametrize(
    "metrics, message",
    [
        (lambda p: [1.0], "metrics: returned a list"),
        (lambda p: {"norm": "big"}, "metrics: `norm` is 'big'"),
        (lambda p: {"error": 1.0}, "metrics: `error` is a column of the traces already"),
        (lambda p: {"a": 1.0} if p[0] == 1.0 else {"b": 1.0}, "every call must return the same keys"),
    ],
)
def test_bad_metrics_are_refused_naming_metrics(metrics, message):
    class Bad(Quadratic):
        pass

    o = Bad()
    o.metrics = metrics
    with pytest.raises(psim.PsimError, match=message) as e:
        psim.run(objective=o, record_runs=True, **SMALL)
    assert e.value.field == "metrics"


def test_refusals_name_their_keyword(tmp_path):
    cases = [
        (dict(callback=3), "callback"),
        (dict(record_runs="yes"), "record_runs"),
        (dict(record_runs=True, resume=str(tmp_path)), "record_runs"),
        (dict(callback=lambda *a: None, threads=2), "threads"),
    ]
    for kwargs, field in cases:
        with pytest.raises(psim.PsimError) as e:
            psim.run(runs=1, steps=10, **kwargs, **QUIET)
        assert e.value.field == field and str(e.value).startswith(field), (kwargs, str(e.value))
    with pytest.raises(psim.PsimError) as e:
        psim.sweep(runs=1, steps=10, callback=lambda *a: None, processes=2, **QUIET)
    assert e.value.field == "callback"


def test_stable_dtypes_and_model_means():
    """The same columns have the same dtypes whatever the values (a mean
    staleness of whole numbers stays float64, an absent outcome step is a
    nullable Int64), and the models' means sit beside their text."""
    injected = psim.sweep(delay=["0", "exp:4"], runs=2, steps=100, **QUIET).runs
    assert injected["mean_staleness"].dtype == np.float64
    assert injected["outcome_step"].dtype == pd.Int64Dtype()
    assert injected["outcome_step"].isna().all()
    assert list(injected.columns[:5]) == ["point", "momentum", "step_size", "delay", "mean_delay"]
    assert injected["mean_delay"].dtype == np.float64
    assert injected.drop_duplicates("point")["mean_delay"].tolist() == [0.0, 4.0]
    vt = psim.sweep(engine="virtual-time", workers=[1, 2], compute_time="exp:1", runs=2, steps=100, **QUIET)
    runs = vt.runs
    assert runs["mean_compute_time"].dtype == np.float64 and (runs["mean_compute_time"] == 1.0).all()
    assert runs.columns.get_loc("mean_compute_time") == runs.columns.get_loc("compute_time") + 1
    assert runs["mean_staleness"].dtype == np.float64 and runs["virtual_time"].dtype == np.float64
    for c in ("point", "run", "workers", "max_staleness", "received", "applied"):
        assert runs[c].dtype == np.int64, c
    workers = vt.workers
    assert workers["mean_compute"].dtype == np.float64 and workers["worker"].dtype == np.int64
    traces = vt.traces
    assert traces["step"].dtype == np.int64 and traces["mean_error"].dtype == np.float64
    stopped = psim.run(runs=1, steps=500, record_every=100, callback=lambda *a: a[2] == 100, **QUIET).runs
    assert stopped["outcome_step"].dtype == pd.Int64Dtype() and stopped["outcome_step"].tolist() == [100]
