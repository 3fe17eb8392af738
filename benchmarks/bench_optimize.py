"""The optimiser on the reference problem, and where the strategy grid's points should sit.

Reference problem: PCM, P = 2, the built-in distribution (search sample 10,240 weights), the six
default times. Part 1 runs what `weightprog optimize` runs (F searched in 1…5, quantile grid with
a point snapped onto the lsp-first kink, polish) and prints wall time and the re-scored TNMSE of
the optimised strategy against every baseline. Part 2 fixes the cell at 1,2 and compares grid
placements and sizes and the free mode, all re-scored on the same fresh seeds.

    python benchmarks/bench_optimize.py [--skip-reference]
"""

import argparse
import time

from weightprog import Cell, load_distribution
from weightprog.sample import sample_from_values
from weightprog.search.run import OptimizeSettings, optimize


def line(label: str, outcome) -> str:
    s = outcome.scores
    best_f1 = min(s[k]["mean"] for k in ("single_pair", "lsp_first", "msp_first"))
    hand = min(s[k]["mean"] for k in ("lsp_first_best", "msp_first_best"))
    o = s["optimised"]
    run = outcome.runs[outcome.chosen]
    return (f"{label:<34}{o['mean']:11.4e}{o['stderr']:9.1e}{100 * (1 - o['mean'] / best_f1):8.1f}%"
            f"{100 * (1 - o['mean'] / hand):8.2f}%{run.generations:6d}{outcome.wall_time_s:8.1f}s  {outcome.chosen}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    values = load_distribution()
    sample = sample_from_values(values, seed=0, source="default")
    print(f"{'run':<34}{'TNMSE':>11}{'± s.e.':>9}{'vs F=1':>9}{'vs hand':>9}{'gens':>6}{'wall':>9}")
    if not args.skip_reference:
        start = time.perf_counter()
        outcome = optimize(sample, values, "pcm", OptimizeSettings())
        print(line("reference (F auto, quantile 6)", outcome), f"[{time.perf_counter() - start:.1f} s total]")
    fixed = Cell((1.0, 2.0))
    for label, kwargs in [
        ("F=2, uniform grid, 6 points", dict(grid_placement="uniform", grid_points=6)),
        ("F=2, quantile grid, 6 points", dict(grid_placement="quantile", grid_points=6)),
        ("F=2, quantile grid, 10 points", dict(grid_placement="quantile", grid_points=10)),
        ("F=2, free mode, quantile 6", dict(grid_placement="quantile", grid_points=6, mode="free")),
    ]:
        outcome = optimize(sample, values, "pcm", OptimizeSettings(significance=fixed, **kwargs))
        print(line(label, outcome))


if __name__ == "__main__":
    main()
