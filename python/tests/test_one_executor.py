"""Issue 15 from Python: the keywords are the CLI's flags (read from its own
argument table), and a Python objective's sweep goes through the one
executor: durable points, resume after Ctrl-C, shards, and a long run that
stops within a second of SIGINT."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest

import psim

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
EXE = os.path.join(REPO, "target", "release", "psim")


def help_flags(command):
    """The flags `psim COMMAND --help` prints."""
    if not os.path.exists(EXE):
        pytest.skip("no target/release/psim (build the CLI first)")
    out = subprocess.run([EXE, command, "--help"], check=True, capture_output=True, text=True).stdout
    return sorted(set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", out, re.M)) - {"--help"})


@pytest.mark.parametrize("command", ["run", "sweep", "reproduce"])
def test_every_cli_flag_is_a_keyword_or_documented_cli_only(command):
    flags = help_flags(command)
    assert len(flags) > 25, flags
    keywords = {
        "run": psim.SETTINGS,
        "sweep": {**psim.SETTINGS, **psim._SWEEP_ONLY},
        "reproduce": psim.SETTINGS,
    }[command]
    handled = {"config", "out", "force"}
    missing = []
    for flag in flags:
        key = flag[2:].replace("-", "_")
        if key in keywords or key in handled:
            continue
        if key in psim.CLI_ONLY and psim.CLI_ONLY[key]:
            continue
        missing.append(flag)
    assert not missing, f"flags of `psim {command} --help` with no keyword: {missing}"


def test_the_keywords_the_readme_promised_exist():
    for key in ["worker_compute", "record_pushes", "scalar_engine", "resume", "shard", "shard_count", "stragglers"]:
        assert key in psim.SETTINGS, key


def test_scalar_engine_is_recorded_and_replayed(tmp_path):
    r = psim.run(runs=8, steps=300, scalar_engine=True, out=tmp_path / "s", progress=False)
    text = open(os.path.join(r.path, "config.toml")).read()
    assert "scalar = true" in text
    again = psim.run(config=os.path.join(r.path, "config.toml"), out=tmp_path / "t", progress=False)
    pd.testing.assert_frame_equal(r.runs, again.runs)
    batched = psim.run(runs=8, steps=300, out=tmp_path / "b", progress=False)
    # Other random numbers on the batched path (same law): the replay ran
    # the scalar engine, not the batched one.
    assert not r.runs["final_error"].equals(batched.runs["final_error"])


# The test objective of test_psim.py (one definition for both files).
from test_psim import Quadratic  # noqa: E402


SWEEP = dict(momentum=[0.0, 0.3, 0.6, 0.9], step_size=0.01, runs=3, steps=3000, seed=3, progress=False)


def test_python_sweep_is_durable_and_resumes_after_ctrl_c(tmp_path):
    whole = psim.sweep(objective=Quadratic(), out=tmp_path / "whole", **SWEEP)

    class Interrupting(Quadratic):
        calls = 0

        def gradient(self, params, rng):
            Interrupting.calls += 1
            # Ctrl-C once two points (6 runs × 3000 steps) are done.
            if Interrupting.calls == 2 * 3 * 3000 + 10:
                os.kill(os.getpid(), signal.SIGINT)
            return super().gradient(params, rng)

    d = tmp_path / "x"
    with pytest.raises(KeyboardInterrupt, match="resume"):
        psim.sweep(objective=Interrupting(), out=d, **SWEEP)
    kept = sorted(f for f in os.listdir(d / "points") if f.endswith(".json"))
    assert 1 <= len(kept) < 4, kept
    resumed = psim.sweep(resume=str(d), objective=Quadratic(), progress=False)
    cols = [c for c in whole.runs.columns if c != "wall_seconds"]
    pd.testing.assert_frame_equal(whole.runs[cols], resumed.runs[cols])
    pd.testing.assert_frame_equal(whole.traces, resumed.traces)


def test_python_sweep_shards_merge_to_the_whole(tmp_path):
    whole = psim.sweep(objective=Quadratic(), out=tmp_path / "whole", **SWEEP)
    for i in range(2):
        part = psim.sweep(objective=Quadratic(), out=tmp_path / f"s{i}", shard=f"{i}/2", **SWEEP)
        assert "shard" in part.report
    if not os.path.exists(EXE):
        pytest.skip("no target/release/psim")
    subprocess.run(
        [EXE, "merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")],
        check=True,
        capture_output=True,
    )
    merged = psim.Result(str(tmp_path / "m"), "", None).runs
    pd.testing.assert_frame_equal(whole.runs, merged)


def test_a_long_python_run_stops_within_a_second_of_sigint():
    # In a child interpreter, so the SIGINT lands on a process of its own.
    script = textwrap.dedent(
        """
        import os, signal, sys, threading, time
        import numpy as np
        import psim

        class Q:
            dim = 2
            initial_point = np.ones(2)
            def gradient(self, params, rng):
                return params
            def error(self, params):
                return float(params @ params)

        def interrupt():
            time.sleep(1.0)
            global sent
            sent = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        try:
            psim.run(objective=Q(), steps=10**8, runs=1, record_every=10**4, progress=False)
        except KeyboardInterrupt:
            print("stopped after", time.monotonic() - sent)
            sys.exit(0)
        sys.exit(1)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    took = float(done.stdout.split()[-1])
    assert took < 1.0, done.stdout


class Shifted(Quadratic):
    """An importable objective with a constructor argument (replayable)."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def gradient(self, params, rng):
        return self.scale * super().gradient(params, rng)


def test_processes_split_the_sweep_and_give_identical_numbers(tmp_path):
    settings = dict(momentum=[0.0, 0.5, 0.9], step_size=[0.01, 0.02], runs=2, steps=500, seed=5, progress=False)
    one = psim.sweep(objective=Shifted(0.5), out=tmp_path / "one", **settings)
    two = psim.sweep(objective=Shifted(0.5), out=tmp_path / "two", processes=2, **settings)
    cols = [c for c in one.runs.columns if c != "wall_seconds"]
    pd.testing.assert_frame_equal(one.runs[cols], two.runs[cols])
    pd.testing.assert_frame_equal(one.traces, two.traces)
    text = open(os.path.join(two.path, "config.toml")).read()
    assert "Shifted" in text and "python" in text


def test_processes_refuses_what_it_cannot_do():
    class Local(Quadratic):
        pass

    with pytest.raises(psim.PsimError) as e:
        psim.sweep(objective=Local(), momentum=[0.1, 0.2], processes=2, progress=False)
    assert e.value.field == "processes"
    with pytest.raises(psim.PsimError) as e:
        psim.sweep(momentum=[0.1, 0.2], processes=0, progress=False)
    assert e.value.field == "processes"
    # Push logs are not in the shards a merge reads: refused, not lost.
    with pytest.raises(psim.PsimError) as e:
        psim.sweep(engine="virtual-time", workers=[2, 3], record_pushes=True, steps=20, runs=1,
                   processes=2, progress=False)
    assert e.value.field == "record_pushes"


def test_workers_and_pushes_are_dataframes():
    r = psim.run(engine="virtual-time", workers=4, compute_time=1, worker_compute="linear:1,1",
                 record_pushes=True, steps=400, runs=1, progress=False)
    w = r.workers
    assert list(w["worker"]) == [0, 1, 2, 3]
    # Worker i takes i+1 time units: its mean compute time is i+1.
    assert np.allclose(w["mean_compute"].to_numpy(), [1, 2, 3, 4])
    p = r.pushes
    assert len(p) > 0 and {"worker", "staleness"} <= set(p.columns)
    assert psim.run(steps=100, runs=1, progress=False).workers is None


@pytest.mark.parametrize("engine", [dict(), dict(engine="virtual-time", workers=4)])
def test_final_parameters_of_every_run(engine, tmp_path):
    r = psim.sweep(objective=Quadratic(), momentum=[0.0, 0.5], runs=3, steps=500, seed=2,
                   record_params=True, out=tmp_path / "p", progress=False, **engine)
    p = r.params
    assert p.shape == (6, 4) and p.dtype == np.float64
    # The error reported per run is the objective's error at those parameters.
    errors = [Quadratic().error(x) for x in p]
    assert np.allclose(errors, r.runs["final_error"].to_numpy(), rtol=1e-12)
    assert psim.run(steps=50, runs=1, progress=False).params is None


@pytest.mark.parametrize("key", sorted(psim.CLI_ONLY))
def test_cli_only_flags_are_refused_by_name_with_their_reason(key):
    with pytest.raises(psim.PsimError) as e:
        psim.reproduce("tradeoff", progress=False, **{key: True})
    assert e.value.field == key and psim.CLI_ONLY[key] in str(e.value)
