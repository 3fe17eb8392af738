"""Where one analogue pass of a reference workload goes: `torch.profiler` of one pass (one
realisation read at t = 1 h, PCM, lsp-first f=1,2, the periphery attached), after two untimed ones,
beside the same profile of a digital pass; one thread (`--threads`).

    python benchmarks/profile_pass.py ptb-lstm --size 4000 --periphery chip-8bit
    python benchmarks/profile_pass.py benchmarks/cnn8_spec.py:build --threads 2

A model spec (`file.py:function`) is calibrated on its `calibrate` (else `validate`) data, as
`weightprog evaluate` does.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_nn import analogue_pass, realisation  # the same realisation and pass (this folder is on sys.path)
from weightprog import aot
from weightprog.cli.model_spec import load_model_spec
from weightprog.nn import WeightSwap, calibrate, find_analog_weights
from weightprog.nn.periphery import get_periphery


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a reference workload (fmnist-resnet32, ptb-lstm, sentiment-minilm, NAME@hwa) "
                    "or a model spec file.py:function")
    ap.add_argument("--size", type=int, default=None, help="a workload's test items (default: all)")
    ap.add_argument("--periphery", default="chip-8bit")
    ap.add_argument("--rows", type=int, default=20, help="operators listed, by their own CPU time")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--built-kernels", action="store_true",
                    help="run the fused kernels built ahead of time, as the command line does (weightprog.aot)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.built_kernels:
        aot.use_kernel_cache()
    spec = load_model_spec(args.model, args.size)
    model, evaluate_fn = spec.model, spec.function("test")
    weights = find_analog_weights(model)
    gen = torch.Generator().manual_seed(0)
    programmed, swap, periphery = realisation(weights, gen), WeightSwap(weights), get_periphery(args.periphery)
    ranges = None if periphery.is_ideal else calibrate(weights, periphery, spec.calibration_run()[0])[1]

    def analogue() -> None:
        analogue_pass(weights, programmed, swap, args.periphery, ranges, gen, lambda: evaluate_fn(model))
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
