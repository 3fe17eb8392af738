"""The network path's two rewritten kernels against what they replaced, one thread, side by side.

    python benchmarks/bench_kernels.py [--rounds 7]

* The read of one programmed 2,600 × 1,000 weight tensor (PCM, lsp-first f=1,2: 10.4 M devices):
  `ProgrammedTensor.read` (eager, `torch.randn` read noise) against the network path's fused read
  (`nn.program`'s, counter-based Gaussian noise in the kernel), with `torch.randn` of that size alone.
* The read of all 34 weight tensors of ResNet-32 (each below `fused.MIN_NUMEL`) eager, and by the
  compiled kernel (as `ProgrammedModel` reads them, its devices together being above it).
* A convolution's input tiles' partial sums, as one grouped convolution (zero-padded to equal
  widths, what `crossbar.tile_products` did before) and as one convolution per tile (what it does
  now), beside the dense convolution, for the hidden CNN's tiled layers (benchmarks/cnn8_spec.py,
  128 images, NCHW) and ResNet-32's stage 3 (500 images, channels-last).
* The fused ADC (noise, quantiser, clip count, input scale) on a convolution's output, one range per
  channel and one input scale per sample: over N × C × H × W as given, and over H·W flattened
  (`fused.adc`), for ResNet-32's first stage (500 × 16 × 28 × 28) and last (500 × 64 × 7 × 7).
* `--built-kernels`: the reads and the flattened ADC above by the kernels built ahead of time
  (`weightprog.aot`, as the command line runs them) against the same kernels compiled, alternately
  in this process.

Each time is the best of `--rounds`, after one warm-up call (which compiles).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from bench_nn import realisation  # the benchmarks' realisation (this folder is on sys.path)
from weightprog import aot
from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.devices import get_device
from weightprog.hardware import ProgrammedTensor
from weightprog.nn import find_analog_weights, fused
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


def tile_convolutions(c_in: int, c_out: int, hw: int, tiles: int, n: int, channels_last: bool,
                      rounds: int) -> tuple[float, float, float]:
    """ms of a 3×3 convolution's tiles' partial sums: grouped, one per tile, and the dense product."""
    x, w = torch.randn(n, c_in, hw, hw), torch.randn(c_out, c_in, 3, 3)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    width = -(-c_in // tiles)
    cuts = [(a, min(c_in, a + width)) for a in range(0, c_in, width)]

    def grouped() -> torch.Tensor:
        pad = [0, 0, 0, 0, 0]
        xs = x if c_in % tiles == 0 else torch.cat([F.pad(x[:, a:b], pad + [width - (b - a)]) for a, b in cuts], 1)
        ws = torch.cat([F.pad(w[:, a:b], pad + [width - (b - a)]) for a, b in cuts])
        return F.conv2d(xs, ws, None, 1, 1, 1, len(cuts))
    return (best_ms(grouped, rounds),
            best_ms(lambda: [F.conv2d(x.narrow(1, a, b - a), w[:, a:b], None, 1, 1) for a, b in cuts], rounds),
            best_ms(lambda: F.conv2d(x, w, None, 1, 1), rounds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--built-kernels", action="store_true",
                    help="only the kernels built ahead of time against the same compiled (weightprog.aot)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    programmed = ProgrammedTensor(torch.randn(2600, 1000) * 0.1, baseline("lsp-first", Cell((1.0, 2.0))),
                                  get_device("pcm"), generator=gen)
    devices = programmed.state.g_prog.numel()
    print(f"torch {torch.__version__}, 1 thread, best of {args.rounds}")
    if args.built_kernels:
        built_against_compiled(programmed, gen, args.rounds)
        return
    eager = best_ms(lambda: programmed.read(3600.0, gen), args.rounds)
    randn = best_ms(lambda: torch.randn(devices, generator=gen), args.rounds)
    read = best_ms(lambda: _read(programmed, 3600.0, gen), args.rounds)
    print(f"read, {devices / 1e6:.1f} M devices: eager {eager:.1f} ms (torch.randn alone {randn:.1f} ms), "
          f"fused {read:.1f} ms")
    network, _, _ = get_workload("fmnist-resnet32", eval_size=1)
    resnet = realisation(find_analog_weights(network), gen)
    small = {any_size: best_ms(lambda: [_read(t, 3600.0, gen, any_size) for t in resnet.tensors],  # noqa: B023
                               args.rounds) for any_size in (False, True)}
    print(f"read of ResNet-32's {len(resnet.tensors)} tensors ({resnet.state_devices / 1e6:.2f} M devices, each "
          f"below fused.MIN_NUMEL): eager {small[False]:.1f} ms, compiled {small[True]:.1f} ms")
    for c_in, c_out, hw, tiles, n, channels_last in ((64, 64, 16, 2, 128, False), (128, 128, 8, 3, 128, False),
                                                     (128, 256, 4, 3, 128, False), (64, 64, 7, 2, 500, True)):
        grouped, apart, dense = tile_convolutions(c_in, c_out, hw, tiles, n, channels_last, args.rounds)
        print(f"conv {c_in} -> {c_out} at {hw}x{hw}, {tiles} tiles, {n} images{' (channels-last)' * channels_last}: "
              f"grouped {grouped:.1f} ms, one per tile {apart:.1f} ms (dense {dense:.1f} ms)")
    seed = torch.tensor(123, dtype=torch.int32)
    for shape in ((500, 16, 28, 28), (500, 64, 7, 7)):
        y = torch.randn(shape)
        bound = torch.rand(shape[1], 1, 1) + 2
        scale = torch.rand(shape[0], 1, 1, 1) + 1
        as_given = best_ms(lambda: fused._call(fused._adc, y, seed, bound / 127, bound, 127, scale), args.rounds)  # noqa: B023
        flat = best_ms(lambda: fused.adc(y, seed, bound / 127, bound, 8, scale), args.rounds)  # noqa: B023
        print(f"ADC {' x '.join(map(str, shape))}: as given {as_given:.1f} ms, H·W flattened {flat:.1f} ms")


def built_against_compiled(programmed: ProgrammedTensor, gen: torch.Generator, rounds: int) -> None:
    """ms of the kernels built ahead of time and of the same compiled, each the best of `rounds`,
    the two alternating call by call (the builds and the compiling in the warm-up calls)."""
    network, _, _ = get_workload("fmnist-resnet32", eval_size=1)
    resnet = realisation(find_analog_weights(network), gen)
    seed = torch.tensor(123, dtype=torch.int32)
    ys = {shape: torch.randn(shape) for shape in ((500, 16, 28, 28), (500, 64, 7, 7), (4000, 10000))}
    cases = {"read, 10.4 M devices": lambda: _read(programmed, 3600.0, gen),
             f"read of ResNet-32's {len(resnet.tensors)} tensors": lambda: [_read(t, 3600.0, gen, True)
                                                                         for t in resnet.tensors]}
    for shape, y in ys.items():
        bound = torch.rand((shape[1],) + (1,) * (len(shape) - 2)) + 2
        scale = torch.rand((shape[0],) + (1,) * (len(shape) - 1)) + 1
        cases[f"ADC {' x '.join(map(str, shape))}"] = (
            lambda y=y, bound=bound, scale=scale: fused.adc(y, seed, bound / 127, bound, 8, scale))
    kernels = aot.cache_dir()
    for name, fn in cases.items():
        times: dict[str, float] = {"built": float("inf"), "compiled": float("inf")}
        for way in times:  # warm-up: builds or loads, compiles
            aot._process.folder = kernels if way == "built" else None
            fn()
        for _ in range(rounds):
            for way in times:
                aot._process.folder = kernels if way == "built" else None
                start = time.perf_counter()
                fn()
                times[way] = min(times[way], time.perf_counter() - start)
        print(f"{name}: built ahead of time {1e3 * times['built']:.1f} ms, compiled {1e3 * times['compiled']:.1f} ms")


if __name__ == "__main__":
    main()
