"""A PyTorch model through the parameter server (CPU; `pip install torch`).

    python examples/python/torch_mlp.py            # virtual time, 1, 4 and 16 workers
    python examples/python/torch_mlp.py --quick    # what CI runs: virtual time, then threads with 4 workers

psim hands the flat parameter vector; the objective loads it into its model,
computes a minibatch gradient and returns it flat (float64, shape (dim,)).
The `rng` (a numpy Generator from psim's seed tree) chooses the minibatch,
so runs are deterministic on the injected and virtual-time engines.

Each worker gets its own instance: `for_worker(i)` below gives worker i its
own copy of the model (sharing the read-only data), and the server
evaluates `error` on another (`for_worker(None)`). So no two threads ever
touch one module's `.grad`. On the threads engine PyTorch releases the GIL
inside its kernels, so the workers' kernels can overlap.
"""

import copy
import os
import sys

import numpy as np
import torch

import psim

torch.set_num_threads(1)  # the workers are the parallelism; no intra-op threads on top
data = np.loadtxt(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "digits.csv.gz"), delimiter=",")
X = torch.tensor(data[:, :-1] / 16.0, dtype=torch.float64)
y = torch.tensor(data[:, -1], dtype=torch.long)


class TorchObjective:
    def __init__(self, model=None):
        if model is None:
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)).double()
        self.model = model
        self.dim = sum(p.numel() for p in model.parameters())
        self.initial_point = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy().copy()

    def for_worker(self, i):
        """Worker i's instance (None: the server's): its own model, the same data."""
        return TorchObjective(copy.deepcopy(self.model))

    def psim_spec(self):
        """config.toml records `__main__:TorchObjective` with these constructor arguments (none)."""
        return {}

    def _load(self, params):
        src = torch.from_numpy(params)
        with torch.no_grad():
            offset = 0
            for p in self.model.parameters():
                p.copy_(src[offset:offset + p.numel()].view_as(p))
                offset += p.numel()

    def gradient(self, params, rng):
        self._load(params)
        i = torch.from_numpy(rng.integers(0, len(X), 32))
        self.model.zero_grad()
        torch.nn.functional.cross_entropy(self.model(X[i]), y[i]).backward()
        return torch.cat([p.grad.reshape(-1) for p in self.model.parameters()]).numpy()

    def error(self, params):
        self._load(params)
        with torch.no_grad():
            return float((self.model(X).argmax(1) != y).double().mean())


if __name__ == "__main__":
    if "--quick" in sys.argv:
        common = dict(momentum=0.5, step_size=0.2, steps=600, runs=1, record_every=100, progress=False)
        vt = psim.run(objective=TorchObjective(), engine="virtual-time", workers=4, compute_time="exp:1", **common)
        th = psim.run(objective=TorchObjective(), engine="threads", workers=4, compute_time="0", **common)
        e_vt, e_th = vt.runs["final_error"].iloc[0], th.runs["final_error"].iloc[0]
        print(f"error after 600 updates with 4 workers: virtual time {e_vt:.3f}, threads {e_th:.3f}")
        start = TorchObjective().error(TorchObjective().initial_point)
        assert e_vt < 0.5 * start and e_th < 0.5 * start, (start, e_vt, e_th)
    else:
        r = psim.sweep(objective=TorchObjective(), engine="virtual-time", workers=[1, 4, 16], compute_time="exp:1",
                       momentum=0.5, step_size=0.2, steps=2000, runs=2, record_every=200)
        print(r.runs.groupby("workers")["final_error"].mean())
