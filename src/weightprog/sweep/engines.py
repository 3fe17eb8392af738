"""Running a sweep: the driver (`run_sweep`) and the engines it hands the jobs to.

Jobs run in processes on this machine (`concurrent.futures.ProcessPoolExecutor`), in this process
one after the other, or as tasks on a Ray cluster (`ray="auto"` or an address); nothing here
schedules work itself. The driver writes each finished job's record as it arrives (`store`), so a
killed sweep keeps every finished job and a re-run does only the jobs without a record (a job that
was running when the sweep died is simply run again: its result was never written). One driver per
output folder at a time (a lock file: a second driver stops with a message naming the first).
Ctrl-C or SIGTERM stops the driver and its worker processes within seconds (the jobs they were
running are run again next time); a worker whose driver was killed (kill -9) exits within a second.

On a multi-machine Ray cluster the files a sweep names must be readable at the same paths on every
node (and weightprog installed there).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..fileio import folder_lock
from ..progress import Event, ProgressCallback
from .execute import failed_record, run_job
from .parse import load_sweep
from .spec import Job, Sweep, SweepError
from .store import sweep_status, write_manifest, write_record, write_summary

RAY_VERSION = "2.60.0"
"""The Ray release this was tested with (`pip install 'weightprog[scale]'`)."""

Handle = Callable[[dict], None]
"""What an engine calls with each job's record as it arrives (in the driver's process)."""


@dataclass
class SweepProgress:
    """A sweep's counts after every finished or failed job (and once at the start): the `detail`
    of its `sweep` progress events."""

    total: int
    done: int
    failed: int
    pending: int
    job: Job | None = None
    event: str = "start"
    """start, done or failed."""
    error: str | None = None


@dataclass
class SweepResult:
    """What a run of a sweep did, and where it wrote."""

    out: Path
    total: int
    done: list[str]
    """Every finished job of the sweep (this run's and earlier runs')."""
    ran: list[str]
    """Jobs this run finished."""
    skipped: list[str]
    """Jobs already finished before this run."""
    failed: dict[str, str]
    wall_time_s: float
    engine: str
    summary_csv: Path | None = None
    figure: Path | None = None

    @property
    def pending(self) -> int:
        """Jobs neither finished nor failed."""
        return self.total - len(self.done) - len(self.failed)


# --- engines ----------------------------------------------------------------------------------

Task = Callable[[dict], dict]
"""What a worker runs: a job (plain data) in, its record out; never raises (errors become records)."""


def _run_inline(jobs: list[dict], handle: Handle, task: Task = run_job) -> None:
    for job in jobs:
        handle(task(job))


def _run_processes(jobs: list[dict], workers: int, handle: Handle, task: Task = run_job) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # forkserver: workers fork from a clean server process that has imported weightprog but run
    # nothing (forking a process that has used torch's thread pools can hang); the server is
    # started once per driver process and reused by later pools
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["weightprog.sweep", "weightprog.search.run", "weightprog.compare",
                                    "weightprog.study"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(task, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    record = future.result()
                except BrokenProcessPool as exc:
                    record = failed_record(job, f"a worker process died (killed or out of memory): {exc}")
                handle(record)
        except BaseException:  # Ctrl-C, SIGTERM, a failing callback: stop the workers now, not after their jobs
            processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            raise


def _worker_init(driver_pid: int) -> None:
    """In each worker process: Ctrl-C is the driver's to handle (it stops the workers), and a worker
    whose driver is gone (kill -9) exits within a second instead of computing for nobody; freed
    memory is kept for reuse and the fused kernels run built ahead of time, as in the command line's
    own process (`heap.keep_freed_memory`, `aot.use_kernel_cache`)."""
    import signal
    import threading

    from ..aot import use_kernel_cache
    from ..heap import keep_freed_memory

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    use_kernel_cache()

    def driver_alive() -> bool:
        try:  # a killed driver not yet reaped by its parent is a zombie: gone all the same
            return Path(f"/proc/{driver_pid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
        except OSError:
            pass
        try:
            os.kill(driver_pid, 0)
            return True
        except OSError:  # no such process, or one we may not signal now holds the pid
            return False

    def watch() -> None:
        while driver_alive():
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="weightprog-driver-watch", daemon=True).start()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a sweep as Ctrl-C does (finished jobs kept, workers stopped), from the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ray_module() -> ModuleType:
    """The `ray` package.

    Returns
    -------
    module
        `ray`, imported.

    Raises
    ------
    SweepError
        Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise SweepError(f"--ray needs Ray, which is not installed: pip install 'ray=={RAY_VERSION}' "
                         f"(or pip install 'weightprog[scale]')") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody answers at (ray.init itself retries for minutes)."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise SweepError(f"--ray {address}: no Ray cluster answers there ({exc}); start one with "
                         f"`ray start --head` and pass its address, or use --ray auto") from None


def _run_ray(jobs: list[dict], address: str, cpus_per_job: float, handle: Handle, task: Task = run_job) -> None:
    ray = ray_module()
    started = not ray.is_initialized()
    if started:
        _check_reachable(address)
        try:  # 'auto' is ray.init()'s own search: RAY_ADDRESS, a `ray start` cluster here, else a new local one
            ray.init(address=None if address == "auto" else address, include_dashboard=False,
                     log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"--ray {address}: cannot connect to a Ray cluster ({exc})") from None
    try:
        _ray_tasks(ray, jobs, cpus_per_job, handle, task)
    finally:
        if started:  # disconnect (and stop a local instance this started); a caller's own stays up
            ray.shutdown()


def _ray_tasks(ray: ModuleType, jobs: list[dict], cpus_per_job: float, handle: Handle, task: Task) -> None:
    remote = ray.remote(num_cpus=cpus_per_job, max_retries=0)(task)
    refs = {remote.remote(job): job for job in jobs}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                job = refs[ref]
                try:
                    record = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a worker died; run_job itself never raises
                    record = failed_record(job, f"Ray task failed: {type(exc).__name__}: {exc}")
                handle(record)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def run_tasks(jobs: list[dict], task: Task, handle: Handle, workers: int = 0, ray: str | None = None,
              cpus_per_job: float = 1.0) -> str:
    """Run `task` on every job with one of the engines, calling `handle` with each record as it
    arrives (in this process); Ctrl-C and SIGTERM stop the workers. The study uses this.

    Parameters
    ----------
    jobs
        The jobs, as plain data.
    task
        A module-level function (it is sent to worker processes or Ray by reference).
    handle
        Called with each record in the driver's process.
    workers
        Local processes (0: in this process, one after the other).
    ray
        None, "auto" or a cluster address (then `workers` is not used).
    cpus_per_job
        Ray CPUs per task.

    Returns
    -------
    str
        The engine used: `none`, `inline`, `processes:N` or `ray:ADDRESS`.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise SweepError(f"workers: need an integer >= 0, got {workers!r}")
    with _sigterm_interrupts():
        if not jobs:
            return "none"
        if ray is not None:
            _run_ray(jobs, ray, cpus_per_job, handle, task)
            return f"ray:{ray}"
        if workers == 0:
            _run_inline(jobs, handle, task)
            return "inline"
        _run_processes(jobs, workers, handle, task)
        return f"processes:{workers}"


# --- the driver -------------------------------------------------------------------------------

def run_sweep(sweep: Sweep | str | Path, out: str | Path, workers: int = 1, ray: str | None = None,
              retry_failed: bool = True, progress: ProgressCallback | None = None,
              summary: bool = True) -> SweepResult:
    """Run the jobs of `sweep` that have no record in `out`; write each record as it finishes.

    Parameters
    ----------
    sweep
        The sweep, or the path of its file.
    out
        The output folder (made if missing; one driver at a time).
    workers
        Local processes (0 runs the jobs in this process, one after the other).
    ray
        None runs locally; "auto" (a running cluster if found, otherwise a local Ray instance) or a
        cluster address runs every job as a Ray task (one CPU per torch thread of a job); an already
        initialised Ray (`ray.init(...)` by the caller) is used as it is.
    retry_failed
        Re-run jobs whose last try failed (default), or leave them failed.
    progress
        Receives a `sweep` event (`Event`) once at the start and after every finished or failed
        job: the job's id, jobs finished (done or failed) of all, and the counts (`SweepProgress`).
    summary
        Write summary.csv and summary.png at the end.

    Returns
    -------
    SweepResult
        The jobs done (this run and before), failed and pending, the engine and the files written.

    Raises
    ------
    SweepError
        A bad sweep file or `workers`, Ray missing or unreachable, or another driver on `out`.
    """
    start = time.perf_counter()
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if ray is None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise SweepError(f"workers: need an integer >= 0, got {workers!r}")
    out = Path(out)
    with folder_lock(out, "weightprog sweep"), _sigterm_interrupts():  # one driver per folder
        return _run_locked(sweep, out, workers, ray, retry_failed, progress, summary, start)


def _run_locked(sweep: Sweep, out: Path, workers: int, ray: str | None, retry_failed: bool,
                progress: ProgressCallback | None, summary: bool, start: float) -> SweepResult:
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    write_manifest(sweep, out)
    status = sweep_status(sweep, out)
    skipped = list(status.done)
    failed = {} if retry_failed else dict(status.failed)
    todo = [j for j in sweep.jobs if j.id in set(status.pending) | (set(status.failed) if retry_failed else set())]
    done = list(status.done)
    ran: list[str] = []
    total = len(sweep.jobs)

    def report(job: Job | None = None, event: str = "start", error: str | None = None) -> None:
        if progress is not None:
            counts = SweepProgress(total, len(done), len(failed), total - len(done) - len(failed), job, event, error)
            progress(Event("sweep", (job.id,) if job else (), counts.done + counts.failed, total, counts))

    def handle(record: dict) -> None:
        job = sweep.job(record["id"])
        if write_record(out, record):
            done.append(job.id)
            ran.append(job.id)
            failed.pop(job.id, None)
            report(job, "done")
        else:
            failed[job.id] = record["error"]
            report(job, "failed", record["error"])

    report()
    payload = [j.to_dict() for j in todo]
    if not payload:
        engine = "none"
    elif ray is not None:
        threads = max(j.sample_settings().threads for j in todo)
        engine = f"ray:{ray}"
        _run_ray(payload, ray, float(threads), handle)
    elif workers == 0:
        engine = "inline"
        _run_inline(payload, handle)
    else:
        engine = f"processes:{workers}"
        _run_processes(payload, workers, handle)
    result = SweepResult(out, total, done, ran, skipped, failed, time.perf_counter() - start, engine)
    if summary:
        result.summary_csv, result.figure = write_summary(sweep, out)
    return result
