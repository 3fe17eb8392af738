"""Analogue vs digital network passes of the reference workloads, side by side in one run.

    python benchmarks/bench_nn.py [--small | --size N] [--rounds 3] [--threads 2] [--workloads ...]

For ResNet-32 (fmnist-resnet32), the 2×200 LSTM (ptb-lstm) and MiniLM (sentiment-minilm), on a
slice of the test set (`--small`: 200 images / 2,000 tokens / 64 sentences; else 500 / 4,000 /
256, the slices of docs/NN.md): the time of one digital pass (`evaluate_fn(model)`) and of one
analogue pass per periphery (ideal, chip, chip-8bit) — one realisation read at one time (PCM,
`lsp-first` f=1,2) with the periphery attached, read and attach included — and their ratio.
The passes are interleaved round by round so that load from other processes hits them alike;
each time is the best of `--rounds`, as wall time and as this process's CPU time (less sensitive
to other processes on a shared machine). Each periphery runs once before the rounds (the fused
kernels compile then). Programming (once per realisation, amortised over the times of a run) and
calibration (once per run) are shown apart, as wall times.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from weightprog import aot
from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.nn import Clipping, ProgrammedModel, WeightSwap, attached, calibrate, find_analog_weights
from weightprog.nn.periphery import get_periphery
from weightprog.workloads import get_workload

SLICES = {"fmnist-resnet32": (500, 200), "ptb-lstm": (4000, 2000), "sentiment-minilm": (256, 64)}
PERIPHERIES = ("ideal", "chip", "chip-8bit")


def both(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of `fn()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def realisation(weights: list, gen: torch.Generator) -> ProgrammedModel:
    """The benchmarks' programmed realisation: PCM, lsp-first f=1,2."""
    return ProgrammedModel(weights, baseline("lsp-first", Cell((1.0, 2.0))), "pcm", generator=gen)


def analogue_pass(weights: list, programmed: ProgrammedModel, swap: WeightSwap, periphery: str, ranges,
                  gen: torch.Generator, evaluate: Callable[[], object]) -> None:
    """One analogue pass: the realisation read at t = 1 h, the periphery attached, `evaluate` run."""
    with attached(weights, get_periphery(periphery), ranges, gen, Clipping()), programmed.applied(3600.0, swap, gen):
        evaluate()


def run(name: str, size: int, rounds: int, peripheries: tuple[str, ...]) -> dict:
    model, evaluate_fn, _ = get_workload(name, eval_size=size)
    weights = find_analog_weights(model)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    programmed = realisation(weights, gen)
    programming = time.perf_counter() - start
    swap, ranges, calibration = WeightSwap(weights), {}, {}
    for p in peripheries:
        if not get_periphery(p).is_ideal:
            start = time.perf_counter()
            ranges[p] = calibrate(weights, get_periphery(p), lambda: evaluate_fn(model))[1]
            calibration[p] = time.perf_counter() - start

    def analogue(p: str) -> None:
        analogue_pass(weights, programmed, swap, p, ranges.get(p), gen, lambda: evaluate_fn(model))

    evaluate_fn(model)  # warm-up
    for p in peripheries:
        analogue(p)
    best = {key: (float("inf"), float("inf")) for key in ("digital",) + peripheries}
    for _ in range(rounds):
        for key in best:
            wall, cpu = both(lambda: evaluate_fn(model) if key == "digital" else analogue(key))  # noqa: B023
            best[key] = (min(best[key][0], wall), min(best[key][1], cpu))
    return {"name": name, "size": size, "best": best, "programming": programming, "calibration": calibration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smaller test slices (a few minutes on 2 cores)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each time is the best of them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=list(SLICES), choices=list(SLICES))
    parser.add_argument("--peripheries", nargs="+", default=list(PERIPHERIES))
    parser.add_argument("--size", type=int, default=None,
                        help="test items per workload instead of the slices (e.g. the study's 8,000 PTB tokens)")
    parser.add_argument("--built-kernels", action="store_true",
                    help="run the fused kernels built ahead of time, as the command line does (weightprog.aot)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.built_kernels:
        aot.use_kernel_cache()
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads; PCM, lsp-first "
          f"f=1,2, one realisation read at t = 1 h; best of {args.rounds} interleaved rounds")
    print(f"{'workload':<18}{'slice':>6}{'periphery':>11}{'digital ms':>12}{'analogue ms':>13}{'ratio':>7}"
          f"{'CPU: digital':>14}{'analogue':>10}{'ratio':>7}{'program ms':>12}{'calibrate ms':>14}")
    for name in args.workloads:
        size = args.size or SLICES[name][1 if args.small else 0]
        r = run(name, size, args.rounds, tuple(args.peripheries))
        d, dc = r["best"]["digital"]
        for p in args.peripheries:
            a, ac = r["best"][p]
            cal = f"{1e3 * r['calibration'][p]:>14.0f}" if p in r["calibration"] else f"{'-':>14}"
            print(f"{name:<18}{r['size']:>6}{p:>11}{1e3 * d:>12.0f}{1e3 * a:>13.0f}{a / d:>7.2f}"
                  f"{1e3 * dc:>14.0f}{1e3 * ac:>10.0f}{ac / dc:>7.2f}{1e3 * r['programming']:>12.0f}{cal}", flush=True)


if __name__ == "__main__":
    main()
