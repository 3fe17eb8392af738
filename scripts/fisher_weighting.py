"""Does `--weighting fisher` change the strategy chosen for a network? (issue 22 item 5)

For one model spec: the search of `weightprog optimize --model SPEC --select tnmse` run twice on the
same deployed weights, once density-weighted and once Fisher-weighted (the spec's `loss` on its
calibration data), each strategy written to OUT/{density,fisher}/strategy.json, and every candidate
of both runs scored under both weightings by the exact expected TNMSE (OUT/weighting.json:
`expected_tnmse[weighting]["run:candidate"]`), beside the runs' re-scores and how concentrated
the importance is. The network scoring that
`optimize --model` adds is left out: it picks among the candidates on validate data, which would
hide what the weighting itself chooses. Check the two on the test data with

    weightprog evaluate --model SPEC --strategy OUT/density/strategy.json \
        --strategy OUT/fisher/strategy.json --times 1s,1d,1y --repeats 5 --periphery chip-8bit

(docs/RESULTS.md, "Sensitivity weighting").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from weightprog import OptimizeSettings, optimize
from weightprog.cli.model_spec import load_model_spec
from weightprog.expected import ExpectedTNMSE
from weightprog.fileio import atomic_write_json
from weightprog.nn.fisher import deployed_fisher
from weightprog.sample import sample_from_values
from weightprog.timeunits import parse_times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="A model spec with a 'loss', e.g. ptb-lstm@hwa.")
    ap.add_argument("--device", default="pcm")
    ap.add_argument("--times", default="1s,1d,1y")
    ap.add_argument("--max-generations", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_model_spec(args.model)
    values, importance = deployed_fisher(spec)
    times = parse_times(args.times)
    found = {}
    for weighting, weights in (("density", None), ("fisher", importance)):
        settings = OptimizeSettings(times_s=times, max_generations=args.max_generations, weighting=weighting)
        sample = sample_from_values(values, source=args.model, importance=weights)
        result = optimize(sample, values, args.device, settings, importance=weights)
        result.strategy.save(args.out / weighting / "strategy.json", device=args.device, weights=args.model,
                             weighting=weighting, method=result.method)
        found[weighting] = result
        print(f"{weighting}: {result.method}, cell {result.strategy.significance[0].tolist()}, "
              f"beta {float(result.strategy.beta[0]):.1f} uS, re-scored {result.scores.optimised.mean:.4e}", flush=True)
    # every candidate of both runs (the pick, the other methods) by the exact expected TNMSE, both ways
    candidates = {f"{run}:{name}": s for run, r in found.items() for name, s in r.candidates.items()}
    scored = {}
    for weighting, weights in (("density", None), ("fisher", importance)):
        model = ExpectedTNMSE(values, args.device, times, importance=weights)
        scored[weighting] = {key: float(model(s)[0]) for key, s in candidates.items()}
    report = {"model": args.model, "device": args.device, "times_s": list(times),
              "max_generations": args.max_generations, "importance": _concentration(importance),
              "strategies": {name: {"method": r.method, "significance": r.strategy.significance[0].tolist(),
                                    "beta": float(r.strategy.beta[0]), "rescored": r.scores.optimised.to_dict(),
                                    "rescored_candidates": {k: v.to_dict() for k, v in r.scores.others.items()},
                                    "best_hand_crafted": r.scores.best_hand_crafted.label}
                             for name, r in found.items()},
              "expected_tnmse": scored}
    atomic_write_json(args.out / "weighting.json", report)
    print(json.dumps(scored, indent=1))


def _concentration(importance: torch.Tensor) -> dict:
    """How few weights carry the importance: the share of the top 0.1 % and 1 %, and the effective
    fraction (ΣI)² / (N ΣI²) — what a uniformly drawn Monte-Carlo sample is worth under it."""
    i = importance.double()
    top = torch.sort(i, descending=True).values
    return {"top_0.1%": float(top[:max(1, i.numel() // 1000)].sum() / i.sum()),
            "top_1%": float(top[:max(1, i.numel() // 100)].sum() / i.sum()),
            "effective_fraction": float(i.sum() ** 2 / (i.numel() * (i * i).sum()))}


if __name__ == "__main__":
    main()
