"""The network path's two rewritten kernels against what they replaced, one thread, side by side.

    python benchmarks/bench_kernels.py [--rounds 7]

* The read of one programmed 2,600 × 1,000 weight tensor (PCM, lsp-first f=1,2: 10.4 M devices):
  `ProgrammedTensor.read` (eager, `torch.randn` read noise) against the network path's fused read
  (`nn.program`'s, counter-based Gaussian noise in the kernel), with `torch.randn` of that size alone.
* The read of all 34 weight tensors of ResNet-32 (each below `fused.MIN_NUMEL`) eager, and by the
  compiled kernel (as `ProgrammedModel` reads them, its devices together being above it).
* The fused ADC (noise, quantiser, clip count, input scale) on a convolution's output, one range per
  channel and one input scale per sample: over N × C × H × W as given, and over H·W flattened
  (`fused.adc`), for ResNet-32's first stage (500 × 16 × 28 × 28) and last (500 × 64 × 7 × 7).

Each time is the best of `--rounds`, after one warm-up call (which compiles).
"""

from __future__ import annotations

import argparse
import time

import torch

from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.devices import get_device
from weightprog.hardware import ProgrammedTensor
from weightprog.nn import ProgrammedModel, find_analog_weights, fused
from weightprog.nn.program import _read
from weightprog.workloads import get_workload


def best_ms(fn, rounds: int) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    programmed = ProgrammedTensor(torch.randn(2600, 1000) * 0.1, baseline("lsp-first", Cell((1.0, 2.0))),
                                  get_device("pcm"), generator=gen)
    devices = programmed.state.g_prog.numel()
    print(f"torch {torch.__version__}, 1 thread, best of {args.rounds}")
    eager = best_ms(lambda: programmed.read(3600.0, gen), args.rounds)
    randn = best_ms(lambda: torch.randn(devices, generator=gen), args.rounds)
    read = best_ms(lambda: _read(programmed, 3600.0, gen), args.rounds)
    print(f"read, {devices / 1e6:.1f} M devices: eager {eager:.1f} ms (torch.randn alone {randn:.1f} ms), "
          f"fused {read:.1f} ms")
    network, _, _ = get_workload("fmnist-resnet32", eval_size=1)
    resnet = ProgrammedModel(find_analog_weights(network), baseline("lsp-first", Cell((1.0, 2.0))), "pcm",
                             generator=gen)
    small = {any_size: best_ms(lambda: [_read(t, 3600.0, gen, any_size) for t in resnet.tensors],  # noqa: B023
                               args.rounds) for any_size in (False, True)}
    print(f"read of ResNet-32's {len(resnet.tensors)} tensors ({resnet.state_devices / 1e6:.2f} M devices, each "
          f"below fused.MIN_NUMEL): eager {small[False]:.1f} ms, compiled {small[True]:.1f} ms")
    seed = torch.tensor(123, dtype=torch.int32)
    for shape in ((500, 16, 28, 28), (500, 64, 7, 7)):
        y = torch.randn(shape)
        bound = torch.rand(shape[1], 1, 1) + 2
        scale = torch.rand(shape[0], 1, 1, 1) + 1
        as_given = best_ms(lambda: fused._call(fused._adc, y, seed, bound / 127, bound, 127, scale), args.rounds)  # noqa: B023
        flat = best_ms(lambda: fused.adc(y, seed, bound / 127, bound, 8, scale), args.rounds)  # noqa: B023
        print(f"ADC {' x '.join(map(str, shape))}: as given {as_given:.1f} ms, H·W flattened {flat:.1f} ms")


if __name__ == "__main__":
    main()
