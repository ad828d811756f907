"""E1 (the momentum-delay tradeoff) and a sweep over random delays, plotted
with matplotlib from the DataFrames.  python examples/python/e1_and_sweep.py"""

import matplotlib.pyplot as plt

import psim

e1 = psim.reproduce("tradeoff", runs=20, steps=10000)
for row in e1.summary["tradeoff"]:
    print(f"mu={row['momentum']}: optimal delay {row['optimal_delay']}")
runs = e1.runs.assign(delay=lambda d: d["delay"].astype(str).str.replace("const:", "").astype(float))
mean = runs[runs["outcome"] != "diverged"].groupby(["momentum", "delay"])["tail_error"].mean().unstack(0)

s = psim.sweep(momentum=[0.7, 0.9], delay=["const:40", "uniform:0..80", "exp:40", "pareto:20,2"], runs=20, steps=10000)
traces = s.traces

fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
mean.plot(ax=a, marker="o", logy=True)
a.set(xlabel="delay τ", ylabel="mean tail error", title="E1: error against delay, one line per μ")
for (mu, delay), t in traces.groupby(["momentum", "delay"]):
    b.plot(t["step"], t["mean_error"], label=f"μ={mu} {delay}")
b.set(xlabel="step", ylabel="mean error", yscale="log", title="random delays of mean 40")
b.legend(fontsize=7)
fig.tight_layout()
fig.savefig("e1_and_sweep.png", dpi=120)
print("wrote e1_and_sweep.png")
