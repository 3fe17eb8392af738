"""One job of a sweep, run in this process: an optimisation (`search.run.optimize`) or a device
comparison (`compare.compare_devices`), and the record a worker sends back to the driver.

Each job runs with its `threads` torch threads, so results do not depend on the engine or the
worker count: the same sweep gives identical numbers locally and on Ray.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import time
import traceback

import torch

from .._version import __version__
from ..threadcount import torch_threads
from .spec import Job


@functools.lru_cache(maxsize=4)
def _values(weights: str, path: str | None, normalise: str, values_size: int, seed: int) -> tuple[torch.Tensor, str]:
    """Normalised weights of a job (kept per worker process for the next job with the same)."""
    from ..sample import load_distribution

    if path is None:
        return load_distribution(weights.split(":", 1)[1]), weights
    from ..largescale import iter_file_tensors, stream_values

    values, _, _ = stream_values(iter_file_tensors(path), values_size, seed, normalise, source=weights)
    return values, weights


def execute_job(job: Job) -> dict:
    """Run one job in this process.

    Parameters
    ----------
    job
        The job (its params and the files they name).

    Returns
    -------
    dict
        Its result as JSON: an optimisation's report (with the strategy) or a comparison's.

    Raises
    ------
    Exception
        Whatever the job raised (`run_job` records it).
    """
    from ..sample import sample_from_values

    p = job.params
    opts = job.sample_settings()
    with torch_threads(opts.threads):
        values, source = _values(p["weights"], job.files.get("weights"), opts.normalise, opts.values_size,
                                 int(p["seed"]))
        sample = sample_from_values(values, opts.sample_size, opts.rows, seed=int(p["seed"]), source=source)
        settings = job.optimize_settings()
        if job.kind == "optimize":
            from ..records.optimize import OptimizeRecord
            from ..search.run import optimize

            outcome = optimize(sample, values, job.files.get("device", p["device"]), settings)
            result = OptimizeRecord.of(outcome, source).to_json()
            result["strategy"] = outcome.strategy.to_dict()
            return result
        from ..compare import compare_devices
        from ..records.comparison import ComparisonRecord

        dev_files = job.files.get("devices", {})
        comparison = compare_devices([dev_files.get(d, d) for d in p["devices"]], sample, values, settings,
                                     naive=opts.naive, source=source)
        return ComparisonRecord.of(comparison).to_json()


def failed_record(job: dict, error: str, run: dict | None = None, trace: str = "") -> dict:
    """The record of a job that did not finish.

    Parameters
    ----------
    job
        The job as a dict (`Job.to_dict`).
    error
        One line: what went wrong.
    run
        Where and how long it ran (empty when the worker died before saying).
    trace
        The traceback, if there is one.

    Returns
    -------
    dict
        The record (`id`, `kind`, `params`, `run`, `error`, `traceback`).
    """
    return {"id": job["id"], "kind": job["kind"], "params": job["params"], "run": run or {},
            "error": error, "traceback": trace}


def run_job(job: dict) -> dict:
    """The task a worker runs: a job in, its record out; errors become an error record (with the
    traceback), so one bad job never stops a sweep.

    Parameters
    ----------
    job
        The job as a dict (`Job.to_dict`: plain data, sent to a worker process or a Ray task).

    Returns
    -------
    dict
        The record: `id`, `kind`, `params`, `run` (host, pid, versions, wall_time_s) and `result`,
        or `error` and `traceback` in place of `result`.
    """
    j = Job.from_dict(job)
    start = time.perf_counter()
    run = {"host": socket.gethostname(), "pid": os.getpid(), "weightprog_version": __version__,
           "python": platform.python_version()}
    try:
        result = execute_job(j)
    except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
        run["wall_time_s"] = time.perf_counter() - start
        return failed_record(job, f"{type(exc).__name__}: {exc}", run, traceback.format_exc())
    run["wall_time_s"] = time.perf_counter() - start
    run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"id": j.id, "kind": j.kind, "params": j.params, "run": run, "result": result}
