"""Strategies chosen on the network, checked on the test set: one record per workload × variant × device.

For each cell: `optimize` on the model's analog weights as deployed; every candidate scored on the
workload's held-out `validate` data and the best chosen there (weightprog.select); then the
chosen strategy, the best hand-crafted one and the device's limit evaluated on the *test* data
with the same realisation seeds and examples, and their paired differences with 95 % intervals
(weightprog.nn.stats). Records go to OUT/<workload>@<variant>_<device>.json (written atomically;
a cell whose record exists is skipped, so an interrupted run resumes), and `--summary` prints the
Markdown table docs/RESULTS.md quotes.

    python scripts/network_selection.py --workload fmnist-resnet32 --device pcm --out docs/network_selection
    python scripts/network_selection.py --summary --out docs/network_selection
    python scripts/network_selection.py --summary --write docs/RESULTS.md    # the table there, in place
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

import weightprog as wp
from weightprog.fileio import atomic_write_json
from weightprog.nn import evaluate_over_time
from weightprog.nn.discover import find_analog_weights
from weightprog.nn.limit import LIMIT, compute_limit, deployed_values
from weightprog.sample import sample_from_values
from weightprog.select import NetworkSettings, select_on_network
from weightprog.timeunits import format_time, parse_times
from weightprog.workloads import WORKLOADS, get_workload


def run_cell(args, workload: str, variant: str, device: str, out: Path) -> None:
    path = out / f"{workload}@{variant}_{device}.json"
    if path.exists():
        print(f"{path}: done, skipped", flush=True)
        return
    start = time.perf_counter()
    times = parse_times(args.times)
    wl = get_workload(workload, variant, eval_size=args.eval_size, validate_size=args.validate_size)
    spec = wl.spec()
    dev = wp.get_device(device)
    weights = find_analog_weights(spec.model)
    mapping = wp.Mapping()
    values = deployed_values(weights, mapping)
    settings = wp.OptimizeSettings(times_s=times, seed=args.seed, clip=not args.no_clip)
    print(f"{workload}@{variant} on {device}: optimising ({values.numel():,} weights)", flush=True)
    result = wp.optimize(sample_from_values(values, seed=args.seed), values, dev, settings)
    network = NetworkSettings(repeats=args.select_repeats, seed=args.seed, periphery=args.periphery, mapping=mapping)
    print(f"  search {time.perf_counter() - start:.0f} s; scoring candidates on validate data", flush=True)
    # the records in docs/network_selection check the `network` rule (the default when they were made)
    selection, chosen = select_on_network(spec, result, dev, network, rule="network")
    print(selection.format(), flush=True)
    hand = result.scores.best_hand_crafted
    hand_strategy = replace(result.strategy_of(hand), names=[hand.label])
    tested: list = [chosen] if selection.is_same(chosen.name, hand.label) else [chosen, hand_strategy]
    limit = compute_limit(values, dev, times)
    print(f"  {time.perf_counter() - start:.0f} s; evaluating on test data", flush=True)
    test = evaluate_over_time(spec, strategies=tested + [LIMIT], device=dev, times_s=times,
                              repeats=args.test_repeats, seed=args.seed + 1, mapping=mapping,
                              periphery=args.periphery, limit=limit)
    print(test.format(), flush=True)
    names = test.strategies
    record = {
        "workload": workload, "variant": variant, "device": device, "periphery": args.periphery,
        "times_s": list(times), "seed": args.seed, "validate": wl.metadata.get("validate"),
        "test_items": wl.metadata.get("eval_size"), "weights": int(values.numel()),
        "search": {"method": result.method, "clips": not result.expressible,
                   "cell": result.strategy.significance[0].tolist(), "beta": float(result.strategy.beta[0]),
                   "tnmse": result.scores.to_json(),
                   "error_split": [e.to_dict() for e in result.error_split]},
        "network": selection.to_dict(),
        "test": {"strategies": names, "repeats": test.repeats, "digital": test.digital,
                 "metric": test.metric_name, "higher_is_better": test.higher_is_better,
                 "interval_over": test.interval_over, "calibrated_on": test.calibrated_on,
                 "summary": test.summary(), "paired": test.paired_rows(),
                 "rows": test.rows()},
        "chosen": chosen.name, "best_hand_crafted": hand.label,
        "chosen_is_best_hand_crafted": selection.is_same(chosen.name, hand.label),
        "wall_time_s": time.perf_counter() - start,
        "command": f"python scripts/network_selection.py --workload {workload} --variant {variant} "
                   f"--device {device} --times {args.times} --periphery {args.periphery} "
                   f"--select-repeats {args.select_repeats} --test-repeats {args.test_repeats} "
                   f"--eval-size {args.eval_size} --validate-size {args.validate_size}"
                   + (" --no-clip" if args.no_clip else ""),
    }
    atomic_write_json(path, record)
    print(f"wrote {path} ({record['wall_time_s']:.0f} s)", flush=True)


def _paired_cells(paired: list[dict], a: str, b: str) -> str:
    """a − b at each time: difference, 95 % interval and verdict (for a), from the paired rows."""
    out = []
    for p in paired:
        if {p["strategy"], p["versus"]} != {a, b}:
            continue
        sign = 1 if p["strategy"] == a else -1
        lo, hi = sorted((sign * p["ci_low"], sign * p["ci_high"]))
        verdict = p["verdict"] if sign == 1 else {"better": "worse", "worse": "better"}.get(p["verdict"], p["verdict"])
        out.append(f"{format_time(p['time_s'])} {sign * p['diff']:+.4g} [{lo:+.4g}, {hi:+.4g}] {verdict}")
    return "; ".join(out) if out else "same strategy"


def summary(out: Path) -> str:
    """The Markdown table: per cell, chosen vs best hand-crafted and the limit vs the chosen, on test
    data, per time (difference and 95 % interval, verdict), and whether weight error agreed."""
    lines = ["| workload | device | chosen on validate (TNMSE rank) | vs best hand-crafted on test, per time | "
             "limit vs chosen on test, per time | weight error agrees |",
             "|---|---|---|---|---|---|"]
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        t = r["test"]
        chosen, hand = r["chosen"], r["best_hand_crafted"]
        rank = r["network"]["tnmse_ranking"].index(chosen) + 1 if chosen in r["network"]["tnmse_ranking"] else "?"

        versus = ("is the best hand-crafted" if r["chosen_is_best_hand_crafted"]
                  else _paired_cells(t["paired"], chosen, hand))
        agrees = "yes" if r["network"]["tnmse_ranking"][0] == r["network"]["network_ranking"][0] else "no"
        lines.append(f"| {r['workload']}@{r['variant']} | {r['device']} | {chosen} ({rank}) | {versus} | "
                     f"{_paired_cells(t['paired'], LIMIT, chosen)} | {agrees} |")
    return "\n".join(lines)


MARKER = "<!-- network-selection-table -->"


def write_table(results: Path, table: str) -> None:
    """Replace the table after MARKER in `results` (up to the next blank line) with `table`."""
    text = results.read_text()
    at = text.index(MARKER) + len(MARKER)
    start = text.index("\n|", at) + 1
    end = text.find("\n\n", start)
    end = len(text) if end < 0 else end
    results.write_text(text[:at] + "\n\n" + table + text[end:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", action="append", default=None)
    ap.add_argument("--variant", action="append", default=None)
    ap.add_argument("--device", action="append", default=None)
    ap.add_argument("--times", default="1s,1d,1y")
    ap.add_argument("--periphery", default="chip-8bit")
    ap.add_argument("--select-repeats", type=int, default=3)
    ap.add_argument("--test-repeats", type=int, default=5)
    ap.add_argument("--eval-size", type=int, default=None)
    ap.add_argument("--validate-size", type=int, default=1000)
    ap.add_argument("--no-clip", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="docs/network_selection")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--write", default=None, metavar="RESULTS_MD", help="with --summary: put the table in this file")
    args = ap.parse_args()
    out = Path(args.out)
    if args.summary:
        table = summary(out)
        if args.write:
            write_table(Path(args.write), table)
        print(table)
        return
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    for workload in args.workload or list(WORKLOADS):
        for variant in args.variant or ["hwa"]:
            for device in args.device or ["pcm", "pcm-lowdrift"]:
                run_cell(args, workload, variant, device, out)


if __name__ == "__main__":
    main()
