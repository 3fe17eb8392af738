"""`weightprog device advise` on the built-in devices: wall time per device and the advice table.

Default settings of `weightprog device advise` (the search's objective is the exact expected error,
every reported number a Monte-Carlo re-score on fresh draws), the built-in distribution, seed 0,
10 % improvement of each property. Prints one Markdown table per device (the one docs/DEVICES.md
shows) and the wall time of each device's advice (target: ≤ 60 s on 2 cores).

    python benchmarks/bench_advise.py [--devices pcm ecram] [--improvement 0.1]
"""

import argparse
import platform
import time

import torch

from weightprog import load_distribution
from weightprog.advise import LABELS, advise
from weightprog.sample import sample_from_values
from weightprog.search.run import OptimizeSettings

DEVICES = ("pcm", "pcm-lowdrift", "rram-hfox", "ecram", "sonos-flash")


def markdown(advice) -> str:
    b = advice.base
    bound = f", bound {b.bound:.4e}" if b.bound is not None else ""
    lines = [f"**{advice.device}** — naive (lsp-first F=1) {b.naive.mean:.4e}, best hand-crafted "
             f"{b.hand_crafted.mean:.4e} ({b.hand_crafted_name}), optimised {b.optimised.mean:.4e} "
             f"(cell {','.join(f'{f:g}' for f in b.cell)}){bound}; {advice.wall_time_s:.0f} s", "",
             "| property (step) | Δ optimised | Δ naive | Δ bound | elasticity optimised | elasticity naive "
             "| cell after |",
             "|---|---|---|---|---|---|---|"]
    for e in advice.effects:
        limit = f"{e.change('bound'):+.2%}" if "bound" in e.choices() else "–"
        lines.append(f"| {LABELS[e.prop]} (×{e.factor:g}) | {e.change('optimised'):+.2%} ± "
                     f"{e.change_stderr('optimised'):.2%} | {e.change('naive'):+.2%} | {limit} | "
                     f"{e.elasticity('optimised'):+.3f} | {e.elasticity('naive'):+.3f} | "
                     f"{','.join(f'{f:g}' for f in e.scores.cell)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", nargs="+", default=list(DEVICES))
    parser.add_argument("--improvement", type=float, default=0.1)
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    values = load_distribution()
    sample = sample_from_values(values, seed=0, source="default")
    for name in args.devices:
        advice = advise(sample, values, name, OptimizeSettings(), args.improvement)
        print(markdown(advice))
        print("\n".join(f"* {w}" for w in advice.words()))
        print(flush=True)


if __name__ == "__main__":
    main()
