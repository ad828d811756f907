"""How fast a large sweep's tables load: a 10⁶-row runs table read by
``Result.runs`` from its Parquet copy against pandas' CSV parse of
``runs.csv`` (issue 16, item 8).

    python python/bench_tables.py             # 10⁶ runs of 2 steps
    python python/bench_tables.py --runs 1000 # a smoke test of the script

Writes one sweep (``psim.run(runs=N, steps=2)``) into a temporary
directory, then times, interleaved, median of 5: reading ``runs.parquet``
with pyarrow into a typed DataFrame (what ``Result.runs`` does), and
``pandas.read_csv("runs.csv")`` (a plain parse, untyped). Wall-clock
seconds; on a shared machine compare the two, not the absolute figures.
"""

import os
import sys
import tempfile
import time

# Run as `python python/bench_tables.py`, Python puts python/ first on
# sys.path, where python/psim is the source folder without its compiled
# extension: drop it, so `import psim` is the installed package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import psim  # noqa: E402


def main(runs: int, repeat: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="psim-bench-") as tmp:
        out = os.path.join(tmp, "r")
        started = time.perf_counter()
        psim.run(runs=runs, steps=2, out=out, progress=False)
        print(f"psim.run(runs={runs}, steps=2) with its Parquet copies: {time.perf_counter() - started:.1f} s")
        for name in ("runs.csv", "runs.parquet"):
            print(f"  {name}: {os.path.getsize(os.path.join(out, name)) / 1e6:.0f} MB")
        times = {"Result.runs (Parquet, typed)": [], "pandas.read_csv(runs.csv)": []}
        for _ in range(repeat):
            t = time.perf_counter()
            df = psim.Result(out, "", None).runs
            times["Result.runs (Parquet, typed)"].append(time.perf_counter() - t)
            assert len(df) == runs
            t = time.perf_counter()
            pd.read_csv(os.path.join(out, "runs.csv"))
            times["pandas.read_csv(runs.csv)"].append(time.perf_counter() - t)
        for name, ts in times.items():
            print(f"  {name}: median {np.median(ts):.2f} s of {repeat}")


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 1_000_000
    main(n)
