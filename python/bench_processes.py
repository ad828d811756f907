"""psim.sweep with a Python objective on one process against processes=2:
the wall-clock ratio, median of interleaved repeats, and a check that both
give identical runs. Run from anywhere after `pip install ./python`:

    python python/bench_processes.py [--repeats 3]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

# Import the installed package, never the source folder beside this file.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402

import psim  # noqa: E402


class LeastSquares:
    """½‖A x − b‖² / m with a fixed random A (64 × 32), mini-batch noise."""

    def __init__(self, seed=0):
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((64, 32))
        self.b = rng.standard_normal(64)
        self.dim = 32
        self.initial_point = np.zeros(32)

    def gradient(self, params, rng):
        rows = rng.integers(0, 64, 8)
        a = self.a[rows]
        return a.T @ (a @ params - self.b[rows]) / 8.0

    def error(self, params):
        r = self.a @ params - self.b
        return float(r @ r) / 128.0


SETTINGS = dict(momentum=[0.0, 0.5, 0.7, 0.9], step_size=[0.01, 0.02], runs=16, steps=3000, seed=1, progress=False)


def timed(processes):
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        r = psim.sweep(objective=LeastSquares(), out=os.path.join(d, "o"), processes=processes, **SETTINGS)
        took = time.perf_counter() - start
        runs = r.runs.drop(columns=["wall_seconds"], errors="ignore")
        return took, runs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios, ones, twos = [], [], []
    for _ in range(args.repeats):
        t1, r1 = timed(1)
        t2, r2 = timed(2)
        assert r1.equals(r2), "processes=2 gave other numbers than one process"
        ones.append(t1)
        twos.append(t2)
        ratios.append(t1 / t2)
    calls = 8 * SETTINGS["runs"] * SETTINGS["steps"]
    print(f"{calls} gradient calls per sweep, {os.cpu_count()} cores")
    print(f"processes=1: median {statistics.median(ones):.2f} s  ({', '.join(f'{t:.2f}' for t in ones)})")
    print(f"processes=2: median {statistics.median(twos):.2f} s  ({', '.join(f'{t:.2f}' for t in twos)})")
    print(f"speedup (pairwise): median {statistics.median(ratios):.2f}x  ({', '.join(f'{r:.2f}' for r in ratios)}); identical runs: yes")


if __name__ == "__main__":
    main()
