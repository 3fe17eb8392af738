"""The limit's read-out side by side (issue 22): an oracle scale per column against one ideal scale per time.

For one model spec and device: the given strategies, `limit` and `limit-mse` as `weightprog
evaluate` reads them (an oracle scale per crossbar column and time, nn/limit.py), and the same two
limits read as they were before (one ideal scale per time, `LimitAt.scale`, no compensation),
named `limit (ideal scale)` and `limit-mse (ideal scale)`. Every row comes from the same
realisation seeds on the same test items, so every difference is paired; a limit and its
ideal-scale reading program identical devices, so their difference is the read-out's alone.
Writes OUT/results.json (all rows) and prints every pair's difference with its 95 % interval:

    python scripts/limit_readout.py --model ptb-lstm --device pcm --times 1s,1y --repeats 10 \\
        --eval-size 8000 --strategy optimised.json --strategy lsp-first-F2.json --out runs/x

(docs/NN.md, "The limit").
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

import weightprog.nn.evaluate as evaluate
from weightprog.choices import LIMIT, LIMIT_MSE
from weightprog.cli.model_spec import load_model_spec_sized
from weightprog.devices import get_device
from weightprog.hardware import Mapping
from weightprog.nn.discover import find_analog_weights
from weightprog.nn.limit import Limit, LimitAt, compute_limit, deployed_values
from weightprog.nn.program import ReadOut
from weightprog.strategy import Strategy
from weightprog.timeunits import parse_times


@dataclass(frozen=True)
class IdealScale(Limit):
    """A limit read the old way: each time's table at β = 1/scale (ŵ = scale·V), no compensation."""

    def read_out(self, mapping: Mapping, t_s: float) -> ReadOut:
        return lambda read, weight: read


def ideal_scale(limit: Limit) -> IdealScale:
    def at_scale(a: LimitAt) -> LimitAt:
        s = a.strategy
        return replace(a, strategy=Strategy(s.grid, s.conductances, s.significance, torch.tensor([1.0 / a.scale]),
                                            s.g_min, s.g_max, list(s.names)))
    return IdealScale(tuple(at_scale(a) for a in limit.at), f"{limit.name} (ideal scale)")


def limit_arguments(description: str, times: str, periphery: str) -> argparse.ArgumentParser:
    """The options of the limit's side-by-side scripts (this one and limit_gain.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="pcm")
    ap.add_argument("--times", default=times)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-size", type=int, default=None)
    ap.add_argument("--periphery", default=periphery)
    ap.add_argument("--strategy", action="append", default=[], help="Strategy JSON files or baseline names.")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    return ap


def main() -> None:
    args = limit_arguments(__doc__.splitlines()[0], "1s,1y", "chip-8bit").parse_args()
    torch.set_num_threads(args.threads)
    spec, _ = load_model_spec_sized(args.model, args.eval_size)
    dev, times = get_device(args.device), parse_times(args.times)
    values = deployed_values(find_analog_weights(spec.model), Mapping())
    limits = {name: compute_limit(values, dev, times, unbiased=name == LIMIT) for name in (LIMIT, LIMIT_MSE)}
    common = dict(device=dev, times_s=times, repeats=args.repeats, seed=args.seed, periphery=args.periphery)
    evaluate._limit = lambda name, *_: limits[name]  # computed once, above, for both runs
    new = evaluate.evaluate_over_time(spec, strategies=[*args.strategy, LIMIT, LIMIT_MSE], **common)
    limits = {name: ideal_scale(limit) for name, limit in limits.items()}
    old = evaluate.evaluate_over_time(spec, strategies=[LIMIT, LIMIT_MSE], **common)
    assert new.examples is not None and old.examples is not None
    both = replace(new, strategies=new.strategies + old.strategies, metrics=torch.cat([new.metrics, old.metrics]),
                   examples=torch.cat([new.examples, old.examples]),
                   weight_errors=torch.cat([new.weight_errors, old.weight_errors]),
                   strategy_dicts=new.strategy_dicts + old.strategy_dicts)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(both.to_dict(), indent=1))
    print(both.format())
    for row in both.paired_rows():
        print(f"{row['strategy']:>26} − {row['versus']:<26} {row['time']:>4}  {row['diff']:+.4f} "
              f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] {row['verdict']}")


if __name__ == "__main__":
    main()
