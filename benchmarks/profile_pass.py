"""Where one analogue pass of a reference workload goes: `torch.profiler` of one pass (one
realisation read at t = 1 h, PCM, lsp-first f=1,2, the periphery attached), after two untimed ones,
beside the same profile of a digital pass; one thread.

    python benchmarks/profile_pass.py ptb-lstm --size 4000 --periphery chip-8bit
"""

from __future__ import annotations

import argparse
import time

import torch

from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.nn import Clipping, ProgrammedModel, WeightSwap, attached, calibrate, find_analog_weights
from weightprog.nn.periphery import get_periphery
from weightprog.workloads import get_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["fmnist-resnet32", "ptb-lstm", "sentiment-minilm"])
    ap.add_argument("--size", type=int, default=None, help="test items (the workload's default: all)")
    ap.add_argument("--periphery", default="chip-8bit")
    ap.add_argument("--rows", type=int, default=20, help="operators listed, by their own CPU time")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, evaluate_fn, _ = get_workload(args.workload, eval_size=args.size)
    weights = find_analog_weights(model)
    gen = torch.Generator().manual_seed(0)
    programmed = ProgrammedModel(weights, baseline("lsp-first", Cell((1.0, 2.0))), "pcm", generator=gen)
    swap, periphery = WeightSwap(weights), get_periphery(args.periphery)
    ranges = None if periphery.is_ideal else calibrate(weights, periphery, lambda: evaluate_fn(model))[1]

    def analogue() -> None:
        with attached(weights, periphery, ranges, gen, Clipping()), programmed.applied(3600.0, swap, gen):
            evaluate_fn(model)
    for _ in range(2):  # the fused kernels compile in the first
        analogue()
    for name, fn in (("digital", lambda: evaluate_fn(model)), ("analogue", analogue)):
        start = time.perf_counter()
        fn()
        print(f"{name} pass: {time.perf_counter() - start:.3f} s")
        with torch.profiler.profile() as prof:
            fn()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
