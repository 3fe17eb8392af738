"""Sweeps: a declarative grid of optimisations and device comparisons, run as independent jobs.

A sweep file (YAML) names the axes of a grid; every combination is one job with a stable id (a
hash of the job's settings as written). Jobs run in processes on this machine or as tasks on a Ray
cluster; the driver writes each finished job's record atomically to `OUT/jobs/<id>.json`, so a
killed sweep keeps every finished job and a re-run does only the jobs without a record. The summary
table (`summary.csv`) and figure (`summary.png`) aggregate the finished jobs.

One module per concern, dependencies one way (spec ← parse, execute, store ← engines):

* `spec`     `Sweep`, `Job`s with stable ids, `SampleSettings`
* `parse`    the sweep file → `Sweep`, one parser per axis (format in its docstring)
* `execute`  one job in this process (optimize or compare) → its record (`run_job`, the workers' task)
* `store`    the output folder: records, status, events, summary.csv (the figure: `report.sweep_plots`)
* `engines`  the driver `run_sweep` and its engines: this process, local processes, Ray

This module re-exports the public names.
"""

from .engines import RAY_VERSION, SweepProgress, SweepResult, ray_module, run_sweep
from .execute import execute_job, run_job
from .parse import load_sweep, parse_sweep
from .spec import Job, SampleSettings, Sweep, SweepError, job_id
from .store import SweepStatus, comparable_records, read_record, summary_rows, sweep_status, write_summary

__all__ = ["Job", "SampleSettings", "Sweep", "SweepError", "SweepProgress", "SweepResult", "SweepStatus",
           "load_sweep", "parse_sweep", "job_id", "run_job", "execute_job", "run_sweep", "sweep_status",
           "read_record", "comparable_records", "write_summary", "summary_rows", "ray_module", "RAY_VERSION"]
