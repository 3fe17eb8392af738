"""TNMSE evaluations per second on the reference problem, fused vs eager, side by side.

Reference problem (issue 2): PCM, P = 2 (cell 1,2), 10,240 weights of the built-in distribution
(20 columns of 512), the 6 default times, a population of 256 candidate strategies. Also prints
the baselines' TNMSE per time on fresh seeds (the numbers the optimiser must beat).

    python benchmarks/bench_objective.py [--population 256] [--repeats 5]
"""

import argparse
import platform
import time

import torch

from weightprog import TNMSE, Cell, baseline, default_sample, load_distribution, rescore
from weightprog.search import StrategySpace, make_grid
from weightprog.timeunits import DEFAULT_TIMES_S, format_times


def rate(objective: TNMSE, space: StrategySpace, x: torch.Tensor, repeats: int) -> float:
    g, sig, beta = space.decode(x)
    objective.per_column(space.grid, g, sig, beta)  # warm-up (and compile)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        objective.per_column(space.grid, g, sig, beta)
        best = min(best, time.perf_counter() - start)
    return x.shape[0] / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sample = default_sample()
    space = StrategySpace(make_grid(6, "quantile", sample.u), cell=Cell((1.0, 2.0)))
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in zip(*space.bounds()))
    x = lo + torch.rand(args.population, space.dims, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64) * (hi - lo)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}")
    eager = rate(TNMSE(sample, "pcm", compile=False), space, x, args.repeats)
    fused = rate(TNMSE(sample, "pcm", compile=True), space, x, args.repeats)
    print(f"population {args.population}, 10,240 weights, 6 times, PCM, P=2:")
    print(f"  eager torch      {eager:8.0f} candidates/s")
    print(f"  fused (compile)  {fused:8.0f} candidates/s   ({fused / eager:.1f}x eager; "
          f"{fused / 18:.0f}x aihwkit's ~18/s)")
    print("baselines on fresh seeds (10 × 10,240 weights):")
    print(f"{'strategy':<14}{'TNMSE':>10}{'± s.e.':>9}" + "".join(f"{t:>9}" for t in format_times(DEFAULT_TIMES_S)))
    values = load_distribution()
    for f in (1.0, 2.0):
        for name in ("single-pair", "lsp-first", "msp-first"):
            r = rescore(baseline(name, Cell((1.0, f))), values, "pcm", compile=False)
            print(f"{name + f' F={f:g}':<14}{float(r.mean[0]):10.3e}{float(r.stderr[0]):9.1e}"
                  + "".join(f"{v:9.2e}" for v in r.per_time[0].tolist()))


if __name__ == "__main__":
    main()
