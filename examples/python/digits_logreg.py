"""Softmax regression in numpy on the shipped digits (data/digits.csv.gz),
trained through the simulated parameter server on 1-16 workers
(virtual-time engine, exponential compute times).
    python examples/python/digits_logreg.py"""

import os

import numpy as np

import psim

data = np.loadtxt(os.path.join(os.path.dirname(__file__), "..", "..", "data", "digits.csv.gz"), delimiter=",")
X, y = data[:, :-1] / 16.0, data[:, -1].astype(int)
X = np.hstack([X, np.ones((len(X), 1))])  # bias
K, D = 10, X.shape[1]


class SoftmaxRegression:
    dim = K * D
    initial_point = np.zeros(K * D)

    def __init__(self, batch=32):
        self.batch = batch

    def gradient(self, params, rng):
        i = rng.integers(0, len(X), self.batch)
        W = params.reshape(K, D)
        z = X[i] @ W.T
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(self.batch), y[i]] -= 1.0
        return (p.T @ X[i] / self.batch).ravel()

    def error(self, params):
        """Training misclassification rate."""
        return float(np.mean(np.argmax(X @ params.reshape(K, D).T, axis=1) != y))


r = psim.sweep(
    objective=SoftmaxRegression(),
    engine="virtual-time",
    workers=[1, 2, 4, 8, 16],
    compute_time="exp:1",
    momentum=0.5,
    step_size=0.5,
    steps=3000,
    runs=3,
    record_every=300,
)
print(r.runs.groupby("workers")[["final_error", "mean_staleness"]].mean())
