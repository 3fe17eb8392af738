"""The optimiser on the reference problem, the limits table, and where the grid's points should sit.

Reference problem: PCM, P = 2, the built-in distribution (search sample 10,240 weights), the six
default times. Part 1 runs what `weightprog optimize` runs (F searched in 1…5, DE on the expected
TNMSE and the pointwise optimum, the better by re-score; bound per F) and, with `--before`, the
same search on the Monte-Carlo objective with DE only (the optimiser before issue 17), one after
the other on the same machine. `--table` prints, for each device, the bound per F, the best under
the deployed drift compensation, DE and pointwise (re-scored), the best hand-crafted strategy and
the gaps: the table in benchmarks/RESULTS.md. Part 2 (`--grids`) fixes the cell at 1,2 and
compares grid placements and sizes and the free mode (DE only), all re-scored on the same seeds.

    python benchmarks/bench_optimize.py [--before] [--table] [--grids]
"""

import argparse
import time

from weightprog import Cell, load_distribution
from weightprog.sample import sample_from_values
from weightprog.search.run import OptimizeSettings, optimize

TABLE_DEVICES = ("pcm", "pcm-lowdrift", "rram-hfox", "ecram", "sonos-flash")


def line(label: str, outcome) -> str:
    s = outcome.scores
    best_f1 = min(s[k]["mean"] for k in ("single_pair", "lsp_first", "msp_first"))
    hand = min(s[k]["mean"] for k in ("lsp_first_best", "msp_first_best"))
    o = s["optimised"]
    search = sum(r.wall_time_s for r in outcome.runs.values())
    generations = sum(r.generations for r in outcome.runs.values())
    return (f"{label:<34}{o['mean']:11.4e}{o['stderr']:9.1e}{100 * (1 - o['mean'] / best_f1):8.1f}%"
            f"{100 * (1 - o['mean'] / hand):8.2f}%{generations:6d}{search:8.1f}s{outcome.wall_time_s:8.1f}s  "
            f"{outcome.chosen} {outcome.extra.get('method', '')}")


def table_row(device: str, outcome) -> list[str]:
    s = outcome.scores
    hand_key = min(("lsp_first_best", "msp_first_best"), key=lambda k: s[k]["mean"])
    bound = min(b.bound for b in outcome.bounds.values())
    comp = min(b.compensated for b in outcome.bounds.values())

    def cell(key):
        if key not in s:
            return "—"
        v = s[key]
        return f"{v['mean']:.4e} ± {v['stderr']:.0e} ({100 * (v['mean'] / bound - 1):+.1f} %)"

    per_f = ", ".join(f"F={b.f:g}: {b.bound:.4e}" for b in outcome.bounds.values())
    de = "optimised" if outcome.extra.get("method") == "de" else "de"
    pw = "optimised" if outcome.extra.get("method") == "pointwise" else "pointwise"
    return [device, per_f, f"{comp:.4e} ({100 * (comp / bound - 1):+.1f} %)", cell(de), cell(pw),
            f"{hand_key.removesuffix('_best').replace('_', '-')} F={s[hand_key].get('f', 1)}: {cell(hand_key)}",
            outcome.extra.get("method", ""), f"{outcome.wall_time_s:.0f} s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", action="store_true", help="also the Monte-Carlo DE-only search")
    parser.add_argument("--table", action="store_true", help="the limits table over the devices")
    parser.add_argument("--grids", action="store_true", help="part 2: grid placements (DE)")
    args = parser.parse_args()
    values = load_distribution()
    sample = sample_from_values(values, seed=0, source="default")
    print(f"{'run':<34}{'TNMSE':>11}{'± s.e.':>9}{'vs F=1':>9}{'vs hand':>9}{'gens':>6}{'search':>9}{'total':>9}")
    runs = [("after: expected, de+pointwise", OptimizeSettings())]
    if args.before:
        runs.insert(0, ("before: Monte Carlo, DE only", OptimizeSettings(objective="mc", method="de")))
    for label, settings in runs:
        start = time.perf_counter()
        outcome = optimize(sample, values, "pcm", settings)
        print(line(label, outcome), f"[{time.perf_counter() - start:.1f} s]")
    if args.table:
        header = ["device", "bound per F (free scale per time)", "best under compensation (gap)",
                  "DE, re-scored (gap to bound)", "pointwise, re-scored (gap)", "best hand-crafted (gap)",
                  "picked", "wall"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for device in TABLE_DEVICES:
            outcome = optimize(sample, values, device, OptimizeSettings())
            print("| " + " | ".join(table_row(device, outcome)) + " |", flush=True)
    if args.grids:
        fixed = Cell((1.0, 2.0))
        for label, kwargs in [
            ("F=2, uniform grid, 6 points", dict(grid_placement="uniform", grid_points=6)),
            ("F=2, quantile grid, 6 points", dict(grid_placement="quantile", grid_points=6)),
            ("F=2, quantile grid, 10 points", dict(grid_placement="quantile", grid_points=10)),
            ("F=2, free mode, quantile 6", dict(grid_placement="quantile", grid_points=6, mode="free")),
        ]:
            outcome = optimize(sample, values, "pcm", OptimizeSettings(significance=fixed, method="de", **kwargs))
            print(line(label, outcome))


if __name__ == "__main__":
    main()
