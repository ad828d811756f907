#!/usr/bin/env python3
"""E1's step written the way most papers' simulators are: NumPy, vectorised
across runs (structure of arrays, one row per run).

Streaming PCA with Sigma = diag(4, 3, 2, 1), Gaussian data, heavy ball
(mu = 0.7, eta = 5e-4) from the saddle, constant staleness tau served from a
ring of past versions, the divergence check every step and the tail error
every 8 steps: the same work per step as psim's batched engine, with NumPy's
own Gaussian generator (PCG64 + ziggurat). Prints run-steps per CPU second
of this process as `run_steps_per_second X` (what `psim bench` reads).

    python3 benches/numpy_baseline.py [--runs 1000] [--steps 2000] [--tau 10] [--repeat 5]
"""
import argparse
import time

import numpy as np


def run(runs, steps, tau, seed):
    rng = np.random.default_rng(seed)
    scales = np.sqrt(np.array([4.0, 3.0, 2.0, 1.0]))
    mu, eta, limit2 = 0.7, 5e-4, 1e12
    v = np.zeros((runs, 4))
    v[:, 1] = 1.0  # the saddle: the second eigenvector
    prev = v.copy()
    cap = tau + 1
    ring = np.repeat(v[None], cap, axis=0)  # ring[i] = version i mod cap
    alive = np.ones(runs, dtype=bool)
    tail = np.zeros(runs)
    for k in range(steps):
        stale = ring[(k - min(tau, k)) % cap]
        x = rng.standard_normal((runs, 4)) * scales
        a = np.einsum("ij,ij->i", x, stale)[:, None]
        g = -a * (x - a * stale)
        now = v
        v = now + mu * (now - prev) - eta * g
        prev = now
        ring[(k + 1) % cap] = v
        norm2 = np.einsum("ij,ij->i", v, v)
        alive &= norm2 <= limit2
        if k % 8 == 0:
            tail += 1.0 - v[:, 0] ** 2 / norm2
    return tail, alive


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--tau", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    rates = []
    for r in range(max(a.repeat, 1)):
        t = time.process_time()
        run(a.runs, a.steps, a.tau, r)
        rates.append(a.runs * a.steps / (time.process_time() - t))
    rates.sort()
    median = rates[len(rates) // 2]
    print(
        f"numpy {np.__version__}: {a.runs} runs x {a.steps} steps, tau = {a.tau}: "
        f"{median / 1e6:.2f} M run-steps per CPU second (median of {len(rates)}; "
        f"min {rates[0] / 1e6:.2f}, max {rates[-1] / 1e6:.2f})"
    )
    print(f"run_steps_per_second {median:.0f}")


if __name__ == "__main__":
    main()
