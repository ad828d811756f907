"""Overhead of a Python objective per gradient call, beyond the user's code.

Times, from Rust, the whole callback (GIL taken, params wrapped as a numpy
array, the worker's Generator looked up, the method called, the result
copied back) for a gradient that returns a preallocated array, and
subtracts the same method called from a Python loop.

    python python/bench_overhead.py
"""

import timeit

import numpy as np

import psim
from psim import _psim


class Cheap:
    def __init__(self, dim):
        self.dim = dim
        self.initial_point = np.ones(dim)
        self.g = np.zeros(dim)

    def gradient(self, params, rng):
        return self.g

    def error(self, params):
        return 0.0


for dim in (4, 100):
    o = Cheap(dim)
    n = 200_000
    per_call = min(_psim.time_gradient(o, n) for _ in range(3))
    rng = np.random.default_rng(1)
    p = np.ones(dim)
    user = min(timeit.repeat(lambda: o.gradient(p, rng), number=n, repeat=3)) / n
    print(f"dim {dim:4}: {per_call * 1e6:.2f} µs per call from psim, {user * 1e6:.2f} µs of it the user's method "
          f"(incl. a Python call), overhead {(per_call - user) * 1e6:.2f} µs")
