"""Sweep throughput: the same small sweep in this process, on local processes and on Ray, side by side.

    python benchmarks/bench_sweep.py [--workers 2] [--seeds 4] [--generations 20] [--no-ray]

The sweep: optimize jobs for 2 devices (pcm, pcm-lowdrift) × 2 cells (P = 1; P = 2 with f = 1,2)
× `--seeds` seeds, grid of 4 points, the 6 default times, 2,048-weight samples, popsize 4,
`--generations` generations, 2 re-scoring blocks, eager torch, no polish; 1 torch thread per job.
Each engine runs it from scratch into its own folder. Reported: wall time of `run_sweep` (with
worker start-up; Ray's `ray.init` timed apart), jobs/s over that wall time, and the steady rate
(jobs/s between the first and the last finished job), and whether every engine's numbers are
identical to the in-process run's.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

SWEEP = """\
name: bench
kind: optimize
devices: [pcm, pcm-lowdrift]
cells: [1, "1,2"]
grid_points: 4
seeds: {seeds}
settings:
  max_generations: {generations}
  popsize: 4
  rescore_blocks: 2
  compile: false
  polish: false
  sample_size: 2048
  rows: 512
  threads: 1
"""


def timed(sweep, out: Path, **kwargs) -> dict:
    from weightprog.sweep import comparable_records, read_record, run_sweep

    stamps = []
    start = time.perf_counter()
    result = run_sweep(sweep, out, progress=lambda e: stamps.append(time.perf_counter()) if e.detail.event != "start"
                       else None, summary=False, **kwargs)
    wall = time.perf_counter() - start
    n = len(result.ran)
    steady = (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else float("nan")
    records = comparable_records(out, sweep.jobs)
    job_s = sum(read_record(out, j.id)["run"]["wall_time_s"] for j in sweep.jobs)
    return {"engine": result.engine, "jobs": n, "failed": len(result.failed), "wall_s": wall,
            "jobs_per_s": n / wall, "steady_jobs_per_s": steady, "job_s_total": job_s,
            "first_result_s": stamps[0] - start if stamps else float("nan"), "records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    import torch
    import yaml

    from weightprog.sweep import parse_sweep
    sweep = parse_sweep(yaml.safe_load(SWEEP.format(seeds=args.seeds, generations=args.generations)), "bench")
    print(f"{platform.processor() or platform.machine()}, {len(sweep.jobs)} jobs, torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows.append(timed(sweep, tmp / "inline", workers=0))
        rows.append(timed(sweep, tmp / "local", workers=args.workers))
        if not args.no_ray:
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            init_s = time.perf_counter() - start
            try:
                row = timed(sweep, tmp / "ray", ray="auto")
            finally:
                ray.shutdown()
            row["ray_init_s"] = init_s
            row["engine"] += f" ({args.workers} CPUs)"
            rows.append(row)
    reference = rows[0]["records"]
    print(f"{'engine':<22}{'jobs':>5}{'wall s':>8}{'jobs/s':>8}{'steady jobs/s':>15}{'1st result s':>14}"
          f"{'sum of job s':>14}{'identical':>11}")
    for r in rows:
        same = r["records"] == reference
        r["identical_to_inline"] = same
        print(f"{r['engine']:<22}{r['jobs']:>5}{r['wall_s']:>8.1f}{r['jobs_per_s']:>8.2f}"
              f"{r['steady_jobs_per_s']:>15.2f}{r['first_result_s']:>14.1f}{r['job_s_total']:>14.1f}"
              f"{str(same):>11}" + (f"   (+ ray.init {r['ray_init_s']:.1f} s)" if "ray_init_s" in r else ""))
    if len(rows) > 2:
        print(f"Ray / local processes: {rows[2]['jobs_per_s'] / rows[1]['jobs_per_s']:.2f}× jobs/s overall, "
              f"{rows[2]['steady_jobs_per_s'] / rows[1]['steady_jobs_per_s']:.2f}× steady")
    print(json.dumps([{k: v for k, v in r.items() if k != "records"} for r in rows]))


if __name__ == "__main__":
    main()
