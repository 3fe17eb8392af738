"""The optimiser on the reference problem, the limits table, and where the grid's points should sit.

Reference problem: PCM, P = 2, the built-in distribution (search sample 10,240 weights), the six
default times. Part 1 runs what `weightprog optimize` runs (F searched in 1…5, DE on the expected
TNMSE and the pointwise optimum, the better by re-score; bound per F) and, with `--before`, the
same search on the Monte-Carlo objective with DE only (the optimiser before issue 17), one after
the other on the same machine. `--table` prints, for each device, the bound per F, the best under
the deployed drift compensation, DE and pointwise (re-scored), the best hand-crafted strategy and
the gaps: the table in benchmarks/RESULTS.md. `--crosscheck` optimises for a 200,000-weight
Gaussian sample on pcm and scores the aihwkit export, the optimised strategy and lsp-first F = 2
with a separate NumPy implementation of the PCM law (docs/MODEL.md §2–3) and one global drift
compensation over the whole sample. Part 2 (`--grids`) fixes the cell at 1,2 and
compares grid placements and sizes and the free mode (DE only), all re-scored on the same seeds.
`--main-job BASE_SRC` times the README's main job, `weightprog optimize --out DIR`, as the user runs
it (`python -m weightprog`, which runs what the script runs, a fresh interpreter each time) with
another checkout's `src` (the base) and this one's, interleaved (base, after, base, after, …): wall
time and the child's user and system CPU, the load average, with a shared `torch.compile` cache
filled first (warm) or an empty one per run (`--fresh`); then it compares the outputs of the two
key by key (wall times left out).

    python benchmarks/bench_optimize.py [--before] [--table] [--crosscheck] [--grids]
    python benchmarks/bench_optimize.py --main-job /path/to/base/src [--pairs 2] [--fresh]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from weightprog import Cell, Strategy, baseline, load_distribution
from weightprog.cli import main as cli_main
from weightprog.sample import sample_from_values
from weightprog.scores import Score
from weightprog.search.run import OptimizeResult, OptimizeSettings, optimize
from weightprog.timeunits import DEFAULT_TIMES_S

TABLE_DEVICES = ("pcm", "pcm-lowdrift", "rram-hfox", "ecram", "sonos-flash")


def line(label: str, result: OptimizeResult) -> str:
    s = result.scores
    o = s.optimised
    search = sum(r.wall_time_s for r in result.runs.values())
    generations = sum(r.generations for r in result.runs.values())
    return (f"{label:<34}{o.mean:11.4e}{o.stderr:9.1e}{100 * s.improvement_vs_best_f1_baseline:8.1f}%"
            f"{100 * s.improvement_vs_best_hand_crafted:8.2f}%"
            f"{generations:6d}{search:8.1f}s{result.wall_time_s:8.1f}s  {result.chosen} {result.method}")


def table_row(device: str, result: OptimizeResult) -> list[str]:
    s = result.scores
    hand = s.best_hand_crafted
    bound = result.lowest_bound.bound
    comp = result.lowest_compensated.compensated

    def cell(score: Score | None) -> str:
        if score is None:
            return "—"
        return f"{score.mean:.4e} ± {score.stderr:.0e} ({100 * (score.mean / bound - 1):+.1f} %)"

    def found(method: str) -> Score | None:
        return s.optimised if result.method == method else s.others.get(method)

    per_f = ", ".join(f"F={b.f:g}: {b.bound:.4e}" for b in result.bounds.values())
    return [device, per_f, f"{comp:.4e} ({100 * (comp / bound - 1):+.1f} %)", cell(found("de")),
            cell(found("pointwise")), f"{hand.label}: {cell(hand.score)}", result.method,
            f"{result.wall_time_s:.0f} s"]


def numpy_pcm_tnmse(g_targets: np.ndarray, f: np.ndarray, beta: float, u: np.ndarray, seed: int,
                    repeats: int = 5) -> tuple[float, float]:
    """TNMSE of targets (n, 2P) by a NumPy PCM law (g_max 25 µS, t0 20 s, t_read 250 ns, Q at the
    programmed conductance), one global compensation α = Σ|W(0)|/Σ|W(t)|; mean ± s.e. over repeats."""
    rng = np.random.default_rng(seed)
    g_max, t0, t_read = 25.0, 20.0, 2.5e-7

    def r(g):
        return np.maximum(g / g_max, 1e-7)
    out = []
    for _ in range(repeats):
        g = g_targets
        sp = 0.26348 + 1.9650 * (g / g_max) - 1.1731 * (g / g_max) ** 2
        gp = np.maximum(g + sp * rng.standard_normal(g.shape), 0.0)
        mu = np.clip(-0.0155 * np.log(r(g)) + 0.0244, 0.049, 0.1)
        sd = np.clip(-0.0125 * np.log(r(g)) - 0.0059, 0.008, 0.045)
        nu = np.abs(mu + sd * rng.standard_normal(g.shape))
        q = np.minimum(0.0088 / np.maximum(r(gp) ** 0.65, 1e-3), 0.2)
        signed = np.repeat(f, 2) * np.tile([1.0, -1.0], len(f))

        def read(t, g=g, gp=gp, nu=nu, q=q, signed=signed):
            c = np.sqrt(np.log((t + t0 + t_read) / (2 * t_read)))
            drift = gp * ((t + t0) / t0) ** (-nu)
            return (np.maximum(drift * (1 + q * c * rng.standard_normal(g.shape)), 0.0) @ signed) / beta
        ref = np.abs(read(0.0)).sum()
        errs = []
        for t in DEFAULT_TIMES_S:
            w = read(t)
            errs.append(np.mean((ref / np.abs(w).sum() * w - u) ** 2))
        out.append(np.mean(errs))
    return float(np.mean(out)), float(np.std(out, ddof=1) / np.sqrt(repeats))


def numpy_targets(strategy: Strategy, u: np.ndarray) -> np.ndarray:
    """Targets by NumPy interpolation of the table, g⁺/g⁻ swapped for negative weights."""
    a = np.abs(u)
    table = strategy.conductances[0].numpy()
    g = np.stack([np.interp(a, strategy.grid.numpy(), table[:, d]) for d in range(table.shape[1])], -1)
    swapped = g[:, [d ^ 1 for d in range(table.shape[1])]]
    return np.where((u < 0)[:, None], swapped, g)


def crosscheck() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(200_000)
    u = w / np.abs(w).max()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "gauss.npy", w.astype(np.float32))
        result = CliRunner().invoke(cli_main, ["optimize", "--weights", str(Path(tmp) / "gauss.npy"),
                                               "--normalise", "tensor", "--out", str(Path(tmp) / "run")])
        assert result.exit_code == 0, result.output
        print("\n".join(line for line in result.output.splitlines() if not line.startswith("search")))
        optimised = Strategy.load(Path(tmp) / "run" / "strategy.json")
        args = json.loads((Path(tmp) / "run" / "strategy.aihwkit.json").read_text())
    grid = torch.linspace(-1, 1, len(args["g_lst"][0]), dtype=torch.float64)
    g_lst = torch.tensor(args["g_lst"], dtype=torch.float64).T
    half = grid >= -1e-9  # the converter's table on [0, 1] as a weightprog strategy, β = its largest weight
    export_table = g_lst[half]
    grid = grid.clamp_min(0.0)
    f = np.array(args["f_lst"])
    w1 = float((export_table[-1, 0::2] - export_table[-1, 1::2]) @ torch.tensor(f))
    export = Strategy(grid[half], export_table, torch.tensor(f), w1, args["g_min"], args["g_max"], ["export"])
    lsp = baseline("lsp-first", Cell((1.0, 2.0)))
    print("NumPy PCM law, 200,000 Gaussian weights, global drift compensation, 5 realisations:")
    for name, s in (("lsp-first F=2", lsp), ("aihwkit export", export), ("optimised (strategy.json)", optimised)):
        mean, se = numpy_pcm_tnmse(numpy_targets(s, u), s.significance[0].numpy(), float(s.beta[0]), u, seed=1)
        print(f"  {name:<28}{mean:.4e} ± {se:.1e}")


MAIN_JOB_OUTPUTS = ("report.json", "strategy.json", "strategy.aihwkit.json", "strategy.aihwkit-optimum.json",
                    "strategy.aihwkit-optimum.map.json")
AFTER_SRC = Path(__file__).resolve().parents[1] / "src"


def time_main_job(src: Path, out: Path, cache: Path) -> tuple[float, float, float]:
    """Wall, user CPU and system CPU seconds of `weightprog optimize --out OUT` in a fresh interpreter
    importing weightprog from `src`, with `cache` as its torch.compile cache."""
    env = {**os.environ, "PYTHONPATH": str(src), "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    env.pop("WEIGHTPROG_COMPILE", None)
    log = out.with_name(out.name + ".log")
    with log.open("w") as stream:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "weightprog", "optimize", "--out", str(out)], env=env,
                                 stdout=stream, stderr=subprocess.STDOUT)  # as the `weightprog` script runs it
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{src}: the main job failed:\n{log.read_text()}")
    return wall, usage.ru_utime, usage.ru_stime


def output_differences(base: Path, after: Path) -> list[str]:
    """Each key of the main job's JSON outputs whose value differs (wall times left out), with the
    largest relative difference among the numbers under it; list indices collapsed."""
    found: dict[str, float] = {}

    def walk(a, b, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if not k.endswith("wall_time_s"):
                    walk(a.get(k), b.get(k), f"{path}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for x, y in zip(a, b):
                walk(x, y, f"{path}[]")
        elif a != b:
            numbers = isinstance(a, float | int) and isinstance(b, float | int) and a != 0
            found[path] = max(found.get(path, 0.0), abs(b / a - 1) if numbers else float("inf"))
    for name in MAIN_JOB_OUTPUTS:
        if (base / name).exists() or (after / name).exists():
            walk(json.loads((base / name).read_text()), json.loads((after / name).read_text()), name)
    return [f"{key}: {'not a number' if d == float('inf') else f'largest relative difference {d:.1e}'}"
            for key, d in found.items()]


def main_job(base_src: Path, pairs: int, fresh: bool) -> None:
    """The README's main job with base and after, interleaved; then their outputs compared."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shared = root / "cache"
        if not fresh:  # warm: one untimed run of each fills the shared cache
            for src in (base_src, AFTER_SRC):
                time_main_job(src, root / "fill", shared)
        print(f"{'run':<14}{'wall s':>8}{'user s':>8}{'sys s':>8}  load average (1, 5, 15 min) before the run")
        for k in range(pairs):
            for side, src in (("base", base_src), ("after", AFTER_SRC)):
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                cache = root / f"cache-{side}-{k}" if fresh else shared
                wall, user, system = time_main_job(src, root / f"{side}-{k}", cache)
                print(f"{side + ' ' + str(k + 1):<14}{wall:8.1f}{user:8.1f}{system:8.1f}  {load}", flush=True)
        differences = output_differences(root / "base-0", root / "after-0")
        print("outputs: identical apart from wall times" if not differences else
              "outputs differ (apart from wall times):\n  " + "\n  ".join(differences))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", action="store_true", help="also the Monte-Carlo DE-only search")
    parser.add_argument("--table", action="store_true", help="the limits table over the devices")
    parser.add_argument("--grids", action="store_true", help="part 2: grid placements (DE)")
    parser.add_argument("--crosscheck", action="store_true", help="only: the NumPy cross-check on a Gaussian sample")
    parser.add_argument("--main-job", type=Path, metavar="BASE_SRC",
                        help="only: time the README's main job, base (BASE_SRC) against this checkout")
    parser.add_argument("--pairs", type=int, default=2, help="--main-job: base/after pairs")
    parser.add_argument("--fresh", action="store_true", help="--main-job: an empty torch.compile cache per run")
    args = parser.parse_args()
    if args.main_job:
        main_job(args.main_job.resolve(), args.pairs, args.fresh)
        return
    if args.crosscheck:
        crosscheck()
        return
    values = load_distribution()
    sample = sample_from_values(values, seed=0, source="default")
    print(f"{'run':<34}{'TNMSE':>11}{'± s.e.':>9}{'vs F=1':>9}{'vs hand':>9}{'gens':>6}{'search':>9}{'total':>9}")
    runs = [("after: expected, de+pointwise", OptimizeSettings())]
    if args.before:
        runs.insert(0, ("before: Monte Carlo, DE only", OptimizeSettings(objective="mc", method="de")))
    for label, settings in runs:
        start = time.perf_counter()
        outcome = optimize(sample, values, "pcm", settings)
        print(line(label, outcome), f"[{time.perf_counter() - start:.1f} s]")
    if args.table:
        header = ["device", "bound per F (free scale per time)", "best under compensation (gap)",
                  "DE, re-scored (gap to bound)", "pointwise, re-scored (gap)", "best hand-crafted (gap)",
                  "picked", "wall"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for device in TABLE_DEVICES:
            outcome = optimize(sample, values, device, OptimizeSettings())
            print("| " + " | ".join(table_row(device, outcome)) + " |", flush=True)
    if args.grids:
        fixed = Cell((1.0, 2.0))
        for label, kwargs in [
            ("F=2, uniform grid, 6 points", dict(grid_placement="uniform", grid_points=6)),
            ("F=2, quantile grid, 6 points", dict(grid_placement="quantile", grid_points=6)),
            ("F=2, quantile grid, 10 points", dict(grid_placement="quantile", grid_points=10)),
            ("F=2, free mode, quantile 6", dict(grid_placement="quantile", grid_points=6, mode="free")),
        ]:
            outcome = optimize(sample, values, "pcm", OptimizeSettings(significance=fixed, method="de", **kwargs))
            print(line(label, outcome))


if __name__ == "__main__":
    main()
