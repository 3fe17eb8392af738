"""Why the limit lost perplexity on PTB early on (issue 22): the oracle read-out against the chip's
compensation on the same mapping, and the network's own preferred weight scale.

For one model spec and device, paired on the test data (the same realisation seeds and items for
every row):

* each given strategy as the chip reads it (its drift compensation, `Mapping()`'s);
* the same strategy programmed without compensation and read with the least-squares oracle scale per
  crossbar column (`<name> + oracle`): the same mapping, only the read-out differs;
* `limit-mse` read with its oracle scale times each gain of `--gains` (`limit-mse ×g`).

Before them, the digital model's metric on the test and validate data with every analog weight
multiplied by each gain (no devices): whether the network itself prefers its weights smaller; and
per analog weight, the mean least-squares oracle scale of each given strategy's chip read at the
first time (one programming, `--seed`): above 1 where the chip reads the weights small.
Writes OUT/results.json (`evaluate`'s form) and OUT/digital.json, and prints every row's weight
NMSE and every difference from the first strategy with its 95 % interval:

    python scripts/limit_gain.py --model ptb-lstm@hwa --device pcm-lowdrift --times 1s,1h \\
        --repeats 10 --eval-size 8000 --periphery ideal --strategy optimised.json \\
        --gains 0.96,0.98,1 --out runs/gain

(docs/NN.md, "The limit").
"""

from __future__ import annotations

import json

import torch

from limit_readout import limit_arguments
from weightprog.cli.model_spec import load_model_spec_sized
from weightprog.devices import get_device
from weightprog.hardware import Mapping, ProgrammedTensor
from weightprog.nn.discover import find_analog_weights
from weightprog.nn.evaluate import evaluate_over_time, resolve_strategies
from weightprog.nn.limit import Limit, LimitAt, compute_limit, deployed_values, oracle_scales
from weightprog.nn.program import WeightSwap
from weightprog.nn.spec import ModelSpec
from weightprog.strategy import Strategy
from weightprog.timeunits import parse_times


def digital_by_gain(spec: ModelSpec, gains: list[float]) -> list[dict]:
    """The spec's test and validate metric with every analog weight times each gain (restored after)."""
    splits = ("test", "validate") if spec.validate is not None else ("test",)
    rows = []
    with WeightSwap(find_analog_weights(spec.model)) as swap, torch.no_grad():
        for g in gains:
            for w, original in zip(swap.weights, swap.originals):
                w.param.copy_(original * g)
            rows.append({"gain": g, **{split: spec.measure(split, f"gain {g}").value for split in splits}})
    return rows


def chip_scales(spec: ModelSpec, strategy: Strategy, dev, t_s: float, seed: int) -> dict[str, float]:
    """Per analog weight, the mean over its columns of the least-squares scale that would best match
    the chip's compensated read of `strategy` to the true weights (1: the chip reads them at scale)."""
    gen = torch.Generator().manual_seed(seed)
    scales = {}
    for w in find_analog_weights(spec.model):
        matrix = w.matrix().detach()
        read = ProgrammedTensor(matrix, strategy, dev, Mapping(), gen).read(t_s, gen)
        scales[w.name] = float(oracle_scales(read, matrix, Mapping()).mean())
    return scales


def main() -> None:
    ap = limit_arguments(__doc__.splitlines()[0], "1s,1h", "ideal")
    ap.add_argument("--gains", default="0.96,0.98,1")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec, _ = load_model_spec_sized(args.model, args.eval_size)
    dev, times = get_device(args.device), parse_times(args.times)
    gains = [float(g) for g in args.gains.split(",")]
    digital = digital_by_gain(spec, gains)
    for row in digital:
        print("digital, weights ×{gain:g}: ".format(**row) + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                                     if k != "gain"))
    given = list(resolve_strategies(args.strategy, dev))
    scales = {s.name: chip_scales(spec, s, dev, times[0], args.seed) for s in given}
    for name, per_layer in scales.items():
        print(f"{name}: least-squares scale of the chip's read at {args.times.split(',')[0]}, per weight: "
              + ", ".join(f"{k} {v:.4f}" for k, v in per_layer.items()))
    oracle = [Limit(tuple(LimitAt(t, s, 1.0, float("nan"), unbiased=False) for t in times), f"{s.name} + oracle")
              for s in given]
    mse = compute_limit(deployed_values(find_analog_weights(spec.model), Mapping()), dev, times, unbiased=False)
    scaled = [Limit(mse.with_gain(g).at, f"limit-mse ×{g:g}") for g in gains]
    res = evaluate_over_time(spec, strategies=[*given, *oracle, *scaled], device=dev, times_s=times,
                             repeats=args.repeats, seed=args.seed, periphery=args.periphery, mapping=Mapping())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res.to_dict(), indent=1))
    (args.out / "digital.json").write_text(json.dumps({"by_gain": digital, "chip_scales": scales}, indent=1))
    nmse = res.weight_nmse.mean(1)
    for name, row in zip(res.strategies, nmse):
        print(f"{name:>34}  weight NMSE " + " / ".join(f"{x:.5f}" for x in row.tolist()))
    for row in res.paired_rows():
        if row["versus"] == res.strategies[0]:
            continue
        if row["strategy"] == res.strategies[0]:
            print(f"{row['versus']:>34} − {row['strategy']:<20} {row['time']:>4}  {-row['diff']:+.3f} "
                  f"[{-row['ci_high']:+.3f}, {-row['ci_low']:+.3f}]")


if __name__ == "__main__":
    main()
