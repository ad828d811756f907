"""What a Python objective costs inside psim, measured from the engine's threads.

1. Overhead per gradient call at dim 4: ``psim.run`` with a gradient that
   returns a preallocated array (so the user's code costs nothing), on the
   injected, virtual-time and threads engines, against the same number of
   calls of the same method from a Python loop. The per-call time of
   ``psim.run`` is the slope between two step counts, so the fixed cost of a
   call (setup, output files) drops out.
2. A heavy-ball run at dim 10,000: a hand-written NumPy loop
   (``x ← x + μ(x − x_prev) − η·g(x)``, the error recorded at the same
   cadence) against ``psim.run`` with the same gradient and staleness 0
   (``delay="0"``), same steps. Wall-clock seconds (what a user waits,
   output directory included) and process CPU seconds, each the median of
   interleaved repetitions: a loaded machine slows both alike.

    python python/bench_overhead.py          # from anywhere: imports the installed psim
    python python/bench_overhead.py --quick  # a smoke test of the script (what the tests run)

Targets (issue 16): overhead ≤ 1 µs per call at dim 4; psim within 10% of
the hand loop at dim 10,000.
"""

import os
import sys
import time

# Run as `python python/bench_overhead.py`, Python puts python/ first on
# sys.path, where python/psim is the source folder without its compiled
# extension: drop it, so `import psim` is the installed package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import numpy as np  # noqa: E402

import psim  # noqa: E402


class Cheap:
    """A gradient that costs nothing: returns a preallocated array."""

    def __init__(self, dim):
        self.dim = dim
        self.initial_point = np.ones(dim)
        self.g = np.zeros(dim)

    def gradient(self, params, rng):
        return self.g

    def error(self, params):
        return 0.0


class Quadratic:
    """½ Σ hᵢ xᵢ² with Gaussian gradient noise."""

    def __init__(self, dim):
        self.dim = dim
        self.h = np.linspace(1.0, 0.01, dim)
        self.initial_point = np.ones(dim)

    def gradient(self, params, rng):
        return self.h * params + 0.01 * rng.standard_normal(self.dim)

    def error(self, params):
        return float(0.5 * np.dot(self.h, params * params))


# Process CPU time (every thread of this process), not wall time: on a
# machine shared with other jobs it measures our work, not our waiting.
# Set BENCH_CLOCK=wall for wall-clock seconds.
CLOCK = time.perf_counter if os.environ.get("BENCH_CLOCK") == "wall" else time.process_time


def best(f, repeat=3):
    times = []
    for _ in range(repeat):
        t = CLOCK()
        f()
        times.append(CLOCK() - t)
    return min(times)


ENGINES = {
    "injected": dict(delay="0"),
    "virtual-time": dict(engine="virtual-time", workers=1, compute_time="1"),
    "threads (1 worker)": dict(engine="threads", workers=1, compute_time="0"),
    "threads (4 workers)": dict(engine="threads", workers=4, compute_time="0"),
}


def overhead(dim=4, n1=20_000, n2=220_000):
    o = Cheap(dim)
    rng = np.random.default_rng(1)
    p = np.ones(dim)

    def loop():
        g = o.gradient
        for _ in range(n2 - n1):
            g(p, rng)

    user = best(loop) / (n2 - n1)
    print(f"dim {dim}: the method from a Python loop: {user * 1e9:.0f} ns per call")
    results = {}
    for name, settings in ENGINES.items():
        common = dict(objective=o, runs=1, step_size=1e-3, momentum=0.5, record_every=10_000, progress=False, **settings)
        t1 = best(lambda: psim.run(steps=n1, **common))
        t2 = best(lambda: psim.run(steps=n2, **common))
        per_call = (t2 - t1) / (n2 - n1)
        # The same engine with its built-in objective (streaming PCA, dim 4): the engine's own step and PCA's gradient.
        builtin = dict(common, objective=None)
        b1 = best(lambda: psim.run(steps=n1, **builtin))
        b2 = best(lambda: psim.run(steps=n2, **builtin))
        results[name] = per_call - user
        print(
            f"  psim.run, {name:20}: {per_call * 1e9:5.0f} ns per step, "
            f"overhead {(per_call - user) * 1e9:5.0f} ns per call beyond the user's method, the engine's own step included "
            f"(the built-in objective's whole step: {(b2 - b1) / (n2 - n1) * 1e9:.0f} ns)"
        )
    return results


def heavy_ball(dim=10_000, steps=2000, mu=0.9, eta=0.1, record_every=100, repeat=9):
    o = Quadratic(dim)

    def hand():
        rng = np.random.default_rng(1)
        x = o.initial_point.copy()
        x_prev = x.copy()
        errors = []
        for k in range(steps):
            if k % record_every == 0:
                errors.append(o.error(x))
            g = o.gradient(x, rng)
            x, x_prev = x + mu * (x - x_prev) - eta * g, x
        errors.append(o.error(x))
        return errors

    def with_psim():
        psim.run(objective=o, delay="0", momentum=mu, step_size=eta, steps=steps, runs=1, record_every=record_every, progress=False)

    # Interleaved: a loaded machine slows both alike; medians of each clock.
    times = {"hand": ([], []), "psim": ([], [])}
    for _ in range(repeat):
        for name, f in (("hand", hand), ("psim", with_psim)):
            wall, cpu = time.perf_counter(), time.process_time()
            f()
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
    median = lambda xs: float(np.median(xs))  # noqa: E731
    for i, clock in enumerate(("wall-clock", "process CPU")):
        t_hand, t_psim = median(times["hand"][i]), median(times["psim"][i])
        print(
            f"heavy ball, dim {dim}, {steps} steps, {clock} median of {repeat}: hand-written NumPy loop {t_hand:.3f} s, "
            f"psim.run {t_psim:.3f} s ({(t_psim / t_hand - 1) * 100:+.1f}%)"
        )
    return median(times["hand"][0]), median(times["psim"][0])


if __name__ == "__main__":
    print(
        f"psim {psim.__file__}, Python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"{'wall-clock' if CLOCK is time.perf_counter else 'process CPU'} time"
    )
    if "--quick" in sys.argv:  # a smoke test (python/tests): small sizes, numbers not meaningful
        overhead(n1=1000, n2=3000)
        heavy_ball(dim=1000, steps=100, repeat=2)
    else:
        overhead()
        heavy_ball()
