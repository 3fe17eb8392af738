"""GPU figures (issue 7): objective candidates/s, an optimisation, and a network evaluation on cuda.

    python benchmarks/bench_gpu.py [--populations 256 4096] [--repeats 5] [--json results.json]
    python benchmarks/bench_gpu.py --allow-cpu --populations 32 --repeats 1 --generations 1 --nn-batch 8

Without a GPU it exits with status 2 and says so (unless --allow-cpu, which runs every step on
the CPU to check the script; its numbers are not GPU figures).

1. TNMSE objective on the reference problem of bench_objective.py (PCM, cell 1,2, 10,240 weights of
   the built-in distribution, 6 default times, random candidates of the search space): candidates/s
   with compute=cuda, eager and torch.compile, at each population and two chunk sizes (strategies
   per kernel call), beside eager CPU at the first population (2 threads).
2. `optimize` with compute=cuda vs cpu (cell 1,2, `--generations` generations (default 10, run to
   the end), popsize 8, no polish, eager):
   wall time, and the re-scored TNMSE of both (same seeds: they agree to float32 rounding).
3. `evaluate_over_time` of the workloads' CIFAR-style ResNet-32 (3 input channels, random weights, batch
   `--nn-batch`, PCM lsp-first f=1,2, 6 times × 2 realisations) with compute=cuda vs cpu: time
   per (realisation, time point) and the digital evaluation time on each.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from bench_objective import rate  # same timing as the CPU benchmark (this folder is on sys.path)


def objective_rates(compute: str, populations: list[int], repeats: int) -> list[dict]:
    from weightprog import TNMSE, Cell, default_sample
    from weightprog.search import StrategySpace, make_grid

    sample = default_sample()
    space = StrategySpace(make_grid(6, "quantile", sample.u), cell=Cell((1.0, 2.0)))
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in zip(*space.bounds()))
    def candidates(pop: int) -> torch.Tensor:
        unit = torch.rand(pop, space.dims, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        return lo + unit * (hi - lo)

    rows = []
    torch.set_num_threads(2)
    rows.append({"compute": "cpu", "mode": "eager", "population": populations[0], "chunk": 64,
                 "candidates_per_s": rate(TNMSE(sample, "pcm", compile=False), space, candidates(populations[0]),
                                          repeats)})
    for pop in populations:
        x = candidates(pop)
        for chunk in (64, 1024):
            for mode in ("eager", "compiled"):
                row = {"compute": compute, "mode": mode, "population": pop, "chunk": chunk}
                try:
                    obj = TNMSE(sample, "pcm", compute=compute, compile=mode == "compiled", chunk=chunk)
                    row["candidates_per_s"] = rate(obj, space, x, repeats)
                except Exception as exc:  # noqa: BLE001 - e.g. no triton: report and go on
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                rows.append(row)
    return rows


def optimize_times(compute: str, generations: int) -> list[dict]:
    from weightprog import Cell, load_distribution, sample_from_values
    from weightprog.search.run import OptimizeSettings, optimize

    values = load_distribution()
    sample = sample_from_values(values, seed=0)
    rows = []
    for where in ("cpu", compute):
        settings = OptimizeSettings(pairs=2, significance=Cell((1.0, 2.0)), max_generations=generations, popsize=8,
                                    tol=0.0, polish=False, compile=False, compute=where, rescore_blocks=4)
        start = time.perf_counter()
        outcome = optimize(sample, values, "pcm", settings)
        rows.append({"compute": where, "wall_s": time.perf_counter() - start,
                     "tnmse": outcome.scores.optimised.mean,
                     "evaluations": sum(r.evaluations for r in outcome.runs.values())})
    return rows


def network_times(compute: str, batch: int) -> list[dict]:
    from weightprog.baselines import baseline
    from weightprog.cell import Cell
    from weightprog.nn import evaluate_over_time
    from weightprog.timeunits import DEFAULT_TIMES_S
    from weightprog.workloads.fmnist_resnet import ResNetCifar

    strategy = baseline("lsp-first", Cell((1.0, 2.0)))
    rows = []
    for where in ("cpu", compute):
        torch.manual_seed(0)
        model = ResNetCifar(n=5, in_channels=3).eval().to(where)  # 3 channels: CIFAR-sized inputs
        x = torch.randn(batch, 3, 32, 32, device=where)
        y = torch.randint(0, 10, (batch,), device=where)

        @torch.no_grad()
        def evaluate_fn(m, x=x, y=y):
            return float((m(x).argmax(1) == y).float().mean())  # float(): synchronises

        evaluate_fn(model)
        start = time.perf_counter()
        evaluate_fn(model)
        digital = time.perf_counter() - start
        repeats = 2
        evaluate_over_time(model, evaluate_fn, [strategy], "pcm", DEFAULT_TIMES_S, 1, seed=0, compute=where)  # warm-up
        start = time.perf_counter()
        result = evaluate_over_time(model, evaluate_fn, [strategy], "pcm", DEFAULT_TIMES_S, repeats, seed=0,
                                    compute=where)
        total = time.perf_counter() - start
        points = repeats * len(DEFAULT_TIMES_S)
        rows.append({"compute": where, "batch": batch, "digital_ms": 1e3 * digital,
                     "per_point_ms": 1e3 * (total - digital) / points, "total_s": total,
                     "result": type(result).__name__})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nn-batch", type=int, default=256)
    parser.add_argument("--generations", type=int, default=10, help="Generations of the optimize step.")
    parser.add_argument("--allow-cpu", action="store_true", help="No GPU: run every step on the CPU (a dry run).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers to this JSON file.")
    args = parser.parse_args()
    if torch.cuda.is_available():
        compute = "cuda"
        name = torch.cuda.get_device_name(0)
    elif args.allow_cpu:
        compute, name = "cpu", "no GPU: dry run on the CPU (not GPU figures)"
    else:
        print("bench_gpu: no GPU here (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}); run this on a machine with a CUDA GPU and a CUDA build of torch, "
              "or pass --allow-cpu to check that the script runs.", file=sys.stderr)
        sys.exit(2)
    print(f"{name}; torch {torch.__version__}; host {platform.node()}, {platform.processor() or platform.machine()}")
    out = {"device": name, "torch": torch.__version__, "objective": objective_rates(compute, args.populations,
                                                                                      args.repeats)}
    print(f"{'compute':<8}{'mode':<10}{'population':>11}{'chunk':>7}{'candidates/s':>14}")
    for r in out["objective"]:
        value = f"{r['candidates_per_s']:14.0f}" if "candidates_per_s" in r else f"  {r['error']}"
        print(f"{r['compute']:<8}{r['mode']:<10}{r['population']:>11}{r['chunk']:>7}{value}")
    out["optimize"] = optimize_times(compute, args.generations)
    for r in out["optimize"]:
        print(f"optimize on {r['compute']:<5}: {r['wall_s']:6.1f} s, {r['evaluations']} evaluations, "
              f"re-scored TNMSE {r['tnmse']:.4e}")
    out["network"] = network_times(compute, args.nn_batch)
    for r in out["network"]:
        print(f"ResNet-32 batch {r['batch']} on {r['compute']:<5}: digital {r['digital_ms']:.1f} ms, "
              f"analog {r['per_point_ms']:.1f} ms per (realisation, time)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
