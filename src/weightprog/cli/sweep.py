"""`weightprog sweep SWEEP.yaml`: run a grid of jobs locally or on Ray; resumable."""

from __future__ import annotations

from pathlib import Path

import click

from .options import force_option
from .report import begin_run, write_run_report

SWEEP_OUTPUTS = ("sweep.json", "jobs/*.json", "events.jsonl", "summary.csv", "summary.png")
"""What a sweep writes in its folder (runfolder.py)."""


@click.command()
@click.argument("sweep_file", metavar="SWEEP.yaml", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(),
              help="Output folder (default: runs/sweep-<name of the sweep file>).")
@click.option("--workers", default=None, type=int,
              help="Local worker processes (default: one per CPU core; 0 runs jobs in this process).")
@click.option("--ray", "ray_address", default=None, metavar="auto|ADDRESS",
              help="Run the jobs as Ray tasks: 'auto' (a running cluster, else a local Ray instance) or a "
                   "cluster address. Needs `pip install 'weightprog[scale]'`.")
@click.option("--skip-failed", is_flag=True, help="Leave jobs that failed before as failed (default: retry them).")
@click.option("--list", "list_only", is_flag=True, help="Print the jobs and their state; run nothing.")
@force_option()
def sweep(sweep_file, out_dir, workers, ray_address, skip_failed, list_only):
    """Run every job of a sweep file (optimize / compare over devices, cells, grids, times, weights,
    seeds). Finished jobs are written to OUT/jobs/<id>.json as they end; re-running the same sweep
    skips them and runs only the rest. Writes OUT/summary.csv, OUT/summary.png and OUT/report.html."""
    import os
    import sys

    from tqdm import tqdm

    from ..sweep import load_sweep, run_sweep, sweep_status

    plan = load_sweep(sweep_file)
    out = Path(out_dir) if out_dir else Path("runs") / f"sweep-{Path(sweep_file).stem}"
    if workers is None:
        workers = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if list_only:
        status = sweep_status(plan, out)
        state = {**{j: "done" for j in status.done}, **{j: "failed" for j in status.failed}}
        for job in plan.jobs:
            click.echo(f"{job.id}  {state.get(job.id, 'pending'):<8}{job.label()}")
        click.echo(f"{len(plan.jobs)} jobs: {len(status.done)} done, {len(status.failed)} failed, "
                   f"{len(status.pending)} pending ({out})")
        return
    begin_run(out, SWEEP_OUTPUTS)  # before the first line of output: a bad --out is the only line
    where = f"Ray ({ray_address})" if ray_address else (f"{workers} local process(es)" if workers else "this process")
    click.echo(f"sweep {plan.name}: {len(plan.jobs)} jobs, output {out}, on {where}", err=True)
    lines = not sys.stderr.isatty()  # a log: a line per finished job, not a bar redrawn in place
    bar = tqdm(total=len(plan.jobs), unit="job", desc="sweep", disable=lines)

    def progress(event):
        p = event.detail
        if lines:
            if p.event in ("done", "failed"):
                click.echo(f"[{p.done + p.failed}/{p.total}] {p.event} {p.job.id} ({p.job.label()})"
                           + (f": {p.error}" if p.error else ""), err=True)
            return
        bar.n = p.done
        bar.set_postfix(done=p.done, failed=p.failed, pending=p.pending, refresh=False)
        bar.refresh()
        if p.event == "failed":
            bar.write(f"job {p.job.id} ({p.job.label()}) failed: {p.error}")

    try:
        result = run_sweep(plan, out, workers=workers, ray=ray_address, retry_failed=not skip_failed,
                           progress=progress)
    finally:
        bar.close()
    click.echo(f"{len(result.done)}/{result.total} jobs done ({len(result.ran)} this run, {len(result.skipped)} "
               f"before), {len(result.failed)} failed, {result.pending} pending; {result.wall_time_s:.1f} s")
    for jid, error in result.failed.items():
        click.echo(f"  failed {jid}: {error} (traceback in {out}/jobs/{jid}.error.json)")
    click.echo(f"wrote {result.summary_csv}" + (f", {result.figure}" if result.figure else ""))
    write_run_report(out)
    if result.failed:
        raise SystemExit(1)
