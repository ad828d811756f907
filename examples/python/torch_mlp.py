"""A PyTorch model through the parameter server (documented, not run in CI:
needs `pip install torch`).  python examples/python/torch_mlp.py

psim hands the flat parameter vector; the objective loads it into the model,
computes a minibatch gradient and returns it flat. The `rng` (a numpy
Generator from psim's seed tree) chooses the minibatch, so runs are
deterministic on the injected and virtual-time engines. On the threads
engine PyTorch releases the GIL inside its kernels, so workers overlap there.
"""

import os

import numpy as np
import torch

import psim

data = np.loadtxt(os.path.join(os.path.dirname(__file__), "..", "..", "data", "digits.csv.gz"), delimiter=",")
X = torch.tensor(data[:, :-1] / 16.0, dtype=torch.float64)
y = torch.tensor(data[:, -1], dtype=torch.long)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)).double()
init = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy().copy()


class TorchObjective:
    dim = init.size
    initial_point = init

    def _load(self, params):
        torch.nn.utils.vector_to_parameters(torch.from_numpy(params), model.parameters())

    def gradient(self, params, rng):
        self._load(params)
        i = torch.from_numpy(rng.integers(0, len(X), 32))
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(X[i]), y[i]).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()

    def error(self, params):
        self._load(params)
        with torch.no_grad():
            return float((model(X).argmax(1) != y).double().mean())


r = psim.sweep(objective=TorchObjective(), engine="virtual-time", workers=[1, 4, 16], compute_time="exp:1",
               momentum=0.5, step_size=0.2, steps=2000, runs=2, record_every=200)
print(r.runs.groupby("workers")["final_error"].mean())
