"""A recurrent layer's steps in blocks (one compiled call per `fused.STEP_BLOCK` steps) against step
by step, on the PTB LSTM through `chip-8bit`, beside a digital pass, in one process.

    python benchmarks/bench_recurrent.py [--tokens 4000] [--rounds 4] [--threads 1]

One realisation (PCM, `lsp-first` f=1,2) read at t = 1 h, the periphery attached, the read and
attach included; the three passes interleaved round by round so that load from other processes
hits them alike, each the best of `--rounds` in this process's CPU time. The blocks compile before
the rounds. Also prints the two analogue passes' perplexities (the same products and noise; the
fused gates may round differently).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.nn import Clipping, ProgrammedModel, WeightSwap, attached, calibrate, find_analog_weights, fused
from weightprog.nn.periphery import get_periphery
from weightprog.workloads import get_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, evaluate_fn, _ = get_workload("ptb-lstm", eval_size=args.tokens)
    weights = find_analog_weights(model)
    programmed = ProgrammedModel(weights, baseline("lsp-first", Cell((1.0, 2.0))), "pcm",
                                 generator=torch.Generator().manual_seed(0))
    periphery = get_periphery("chip-8bit")
    ranges = calibrate(weights, periphery, lambda: evaluate_fn(model))[1]
    swap, in_blocks = WeightSwap(weights), fused.blocks_pay

    def analogue(blocks: bool) -> float:
        fused.blocks_pay = in_blocks if blocks else (lambda gi: False)
        gen = torch.Generator().manual_seed(5)
        with attached(weights, periphery, ranges, gen, Clipping()), programmed.applied(3600.0, swap, gen):
            return evaluate_fn(model)

    passes = {"digital": lambda: evaluate_fn(model), "blocks": lambda: analogue(True),
              "step by step": lambda: analogue(False)}
    values = {name: passes[name]() for name in ("blocks", "step by step")}  # compiles the blocks
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, run in passes.items():
            start = time.process_time()
            run()
            best[name] = min(best.get(name, float("inf")), time.process_time() - start)
    print(f"torch {torch.__version__}, {platform.machine()}, {args.threads} threads; ptb-lstm, {args.tokens} tokens, "
          f"chip-8bit, best of {args.rounds} interleaved rounds (CPU time)")
    for name, t in best.items():
        ratio = "" if name == "digital" else f"  {t / best['digital']:.2f}× digital"
        value = f"  perplexity {values[name]:.6f}" if name in values else ""
        print(f"{name:<14}{t * 1e3:8.0f} ms{ratio}{value}")


if __name__ == "__main__":
    main()
