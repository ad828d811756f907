"""Tables at scale (issue 16, item 8): runs, traces and run traces also
written as Parquet (`--parquet`; from Python by default), with the same
content as the CSV files and one type per column; the Result reads them
without a CSV parse. The speed is measured by python/bench_tables.py."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import psim
from test_objective import Quadratic

pytest.importorskip("pyarrow")
QUIET = dict(progress=False)
TABLES = ["runs", "traces", "run-traces"]


def _same_content(path):
    for t in TABLES:
        csv = os.path.join(path, f"{t}.csv")
        if not os.path.exists(csv):
            continue
        from_parquet = psim._read_parquet(os.path.join(path, f"{t}.parquet"))
        from_csv = psim._read_csv(csv)
        pd.testing.assert_frame_equal(from_parquet, from_csv, check_exact=True)
        assert len(from_csv) > 0


def test_parquet_equals_the_csv_on_every_kind_of_column(tmp_path):
    # Injected, with diverged runs (empty errors: nulls), stopped runs
    # (outcome_step), kept parameters, per-run traces with metrics.
    class Measured(Quadratic):
        def metrics(self, params):
            return {"norm": float(np.linalg.norm(params))}

    r = psim.sweep(
        objective=Measured(),
        step_size=[0.05, 1.2],  # ηh > 2(1 + μ) at h = 4, μ = 0.9: the second point diverges
        runs=4,
        steps=400,
        record_every=50,
        record_params=True,
        record_runs=True,
        callback=lambda point, run, step, params: run == 1 and step == 100,
        out=tmp_path / "a",
        **QUIET,
    )
    assert {"runs.parquet", "traces.parquet", "run-traces.parquet"} <= set(r.files)
    assert (r.runs["outcome"] == "diverged").any() and (r.runs["outcome"] == "stopped").any()
    _same_content(r.path)
    # Cluster columns (compute_time, consistency, workers), virtual time.
    v = psim.sweep(engine="virtual-time", workers=[1, 3], compute_time="exp:1", consistency="asp,bsp", runs=2, steps=200, out=tmp_path / "v", **QUIET)
    _same_content(v.path)


def test_the_result_reads_parquet_when_it_is_there_and_csv_otherwise(tmp_path):
    with_parquet = psim.run(runs=5, steps=100, out=tmp_path / "p", **QUIET)
    without = psim.run(runs=5, steps=100, parquet=False, out=tmp_path / "c", **QUIET)
    assert "runs.parquet" in with_parquet.files and "runs.parquet" not in without.files
    pd.testing.assert_frame_equal(with_parquet.runs, without.runs)
    pd.testing.assert_frame_equal(with_parquet.traces, without.traces)


def test_processes_merge_writes_parquet_and_run_traces(tmp_path):
    settings = dict(objective=Quadratic(), momentum=[0.0, 0.5], runs=3, steps=200, record_every=50, record_runs=True, **QUIET)
    one = psim.sweep(**settings)
    two = psim.sweep(processes=2, out=tmp_path / "m", **settings)
    assert {"runs.parquet", "traces.parquet", "run-traces.parquet"} <= set(two.files)
    pd.testing.assert_frame_equal(one.runs, two.runs)
    pd.testing.assert_frame_equal(one.run_traces, two.run_traces)
    _same_content(two.path)


def test_the_cli_writes_parquet_behind_its_flag(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "psim")
    if not os.path.exists(exe):
        pytest.skip("no psim command in this environment")
    base = [exe, "run", "--runs", "3", "--steps", "50", "--quiet"]
    subprocess.run(base + ["--out", str(tmp_path / "p"), "--parquet"], check=True, capture_output=True)
    subprocess.run(base + ["--out", str(tmp_path / "c")], check=True, capture_output=True)
    assert os.path.exists(tmp_path / "p" / "runs.parquet") and os.path.exists(tmp_path / "p" / "traces.parquet")
    assert not os.path.exists(tmp_path / "c" / "runs.parquet")
    _same_content(str(tmp_path / "p"))
