"""Candidate evaluations per second on the reference problem, side by side: the Monte-Carlo
TNMSE (metric.py, eager and fused) and the expected TNMSE (expected/, eager and fused).

Reference problem (issue 2): PCM, P = 2 (cell 1,2), 10,240 weights of the built-in distribution
(20 columns of 512), the 6 default times, a population of 256 candidate strategies. The expected
model integrates over the whole built-in distribution (quantile bins), the Monte-Carlo one samples
10,240 weights with one set of draws. Also prints the baselines' TNMSE per time on fresh seeds
(the numbers the optimiser must beat) beside their expected TNMSE.

    python benchmarks/bench_objective.py [--population 256] [--repeats 5] [--threads N]
"""

import argparse
import platform
import time

import torch

from weightprog import TNMSE, Cell, baseline, default_sample, load_distribution, rescore
from weightprog.expected import ExpectedTNMSE
from weightprog.search import StrategySpace, make_grid
from weightprog.search.run import SEARCH_BINS
from weightprog.timeunits import DEFAULT_TIMES_S, format_times


def rate(objective, space: StrategySpace, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(best candidates/s over `repeats`, seconds of the first call: warm-up and compile)."""
    g, sig, beta = space.decode(x)
    call = objective.per_time if isinstance(objective, ExpectedTNMSE) else objective.per_column
    start = time.perf_counter()
    call(space.grid, g, sig, beta)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call(space.grid, g, sig, beta)
        best = min(best, time.perf_counter() - start)
    return x.shape[0] / best, first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sample = default_sample()
    space = StrategySpace(make_grid(6, "quantile", sample.u), cell=Cell((1.0, 2.0)))
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in zip(*space.bounds()))
    x = lo + torch.rand(args.population, space.dims, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64) * (hi - lo)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}")
    values = load_distribution()
    eager, _ = rate(TNMSE(sample, "pcm", compile=False), space, x, args.repeats)
    fused, _ = rate(TNMSE(sample, "pcm", compile=True), space, x, args.repeats)
    exp_eager, _ = rate(ExpectedTNMSE(values, "pcm", compile=False), space, x, args.repeats)
    exp_fused, warm = rate(ExpectedTNMSE(values, "pcm", compile=True), space, x, args.repeats)
    exp_search, _ = rate(ExpectedTNMSE(values, "pcm", compile=True, bins_per_segment=SEARCH_BINS), space, x,
                         args.repeats)
    print(f"population {args.population}, 10,240 weights, 6 times, PCM, P=2:")
    print(f"  Monte Carlo, eager torch      {eager:9.0f} candidates/s")
    print(f"  Monte Carlo, fused (compile)  {fused:9.0f} candidates/s   ({fused / eager:.1f}x eager; "
          f"{fused / 18:.0f}x aihwkit's ~18/s)")
    print(f"  expected, eager torch         {exp_eager:9.0f} candidates/s   ({exp_eager / fused:.1f}x fused MC)")
    print(f"  expected, fused (compile)     {exp_fused:9.0f} candidates/s   ({exp_fused / fused:.1f}x fused MC; "
          f"first call incl. compile {warm:.1f} s)")
    print(f"  expected, fused, {SEARCH_BINS} bins/segment {exp_search:9.0f} candidates/s   "
          f"({exp_search / fused:.1f}x fused MC; the search's setting)")
    print("baselines on fresh seeds (10 × 10,240 weights), and their expected TNMSE:")
    print(f"{'strategy':<14}{'TNMSE':>10}{'± s.e.':>9}{'expected':>10}"
          + "".join(f"{t:>9}" for t in format_times(DEFAULT_TIMES_S)))
    model = ExpectedTNMSE(values, "pcm")
    for f in (1.0, 2.0):
        for name in ("single-pair", "lsp-first", "msp-first"):
            strategy = baseline(name, Cell((1.0, f)))
            r = rescore(strategy, values, "pcm", compile=False)
            print(f"{name + f' F={f:g}':<14}{float(r.mean[0]):10.3e}{float(r.stderr[0]):9.1e}"
                  f"{float(model(strategy)[0]):10.3e}" + "".join(f"{v:9.2e}" for v in r.per_time[0].tolist()))


if __name__ == "__main__":
    main()
