"""Sweeps: a declarative grid of optimisations and device comparisons, run as independent jobs.

A sweep file (YAML) names the axes of a grid; every combination is one job with a stable id (a
hash of the job's settings as written). Jobs run in processes on this machine
(`concurrent.futures.ProcessPoolExecutor`) or as tasks on a Ray cluster (`ray="auto"` or an
address); nothing here schedules work itself. The driver writes each finished job's record
atomically to `OUT/jobs/<id>.json` (a failed job's error to `OUT/jobs/<id>.error.json`), so a
killed sweep keeps every finished job and a re-run does only the jobs without a record (a job
that was running when the sweep died is simply run again: its result was never written). The
summary table (`summary.csv`) and figure (`summary.png`) aggregate the finished jobs of the sweep;
`sweep.json` lists its jobs and `events.jsonl` logs every job that finished or failed. One driver
per output folder at a time (a lock file: a second driver stops with a message naming the first).
Ctrl-C or SIGTERM stops the driver and its worker processes within seconds (the jobs they were
running are run again next time); a worker whose driver was killed (kill -9) exits within a second.

Sweep file::

    name: cells-vs-devices            # optional
    kind: optimize                    # optimize (default), compare, or a list of both
    devices: [pcm, pcm-lowdrift]      # names, or device files (relative to this file)
    cells:                            # P (searches F = 1..f_max), "1,2" (a fixed cell),
      - 1                             #   or {pairs: 2, significance: auto | "1,2", f_max: 3}
      - {pairs: 2, f_max: 3}
    grid_points: [4, 6]
    times: ["1s,1h,1d,1y"]            # each item is one set of times ("1s,1h" or a list)
    weights: [distribution:default]   # distribution:NAME, or a weights file (streamed, see largescale)
    seeds: [0, 1]                     # a list, or N for 0..N-1
    settings:                         # the same for every job: OptimizeSettings fields
      max_generations: 50             #   (f_max, f_integer, grid_placement, mode, budget_s,
      popsize: 10                     #   max_generations, popsize, tol, polish, polish_steps,
      rescore_blocks: 4               #   rescore_blocks, compensation, compute, compile) and
      sample_size: 10240              #   sample_size, rows, normalise, values_size, threads, naive

`optimize` jobs are one per (device, cell, grid, times, weights, seed); `compare` jobs are one per
(cell, grid, times, weights, seed) and compare all the devices (at least two). Each job runs with
`threads` torch threads (default 1), so results do not depend on the engine or the worker count:
the same sweep gives identical numbers locally and on Ray.

Ids hash the expanded axes and the settings the file gives; settings it leaves out take the
library's defaults, are not part of the id, and are recorded in full in every result. File paths
are resolved against the sweep file's folder on the driver; on a multi-machine Ray cluster they
must be readable at the same paths on every node (and weightprog installed there).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import json
import os
import platform
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .._version import __version__
from ..errors import WeightprogError
from ..fileio import atomic_write_json, atomic_write_text, folder_lock, read_text
from ..validate import SettingError, integer, unknown_keys

KINDS = ("optimize", "compare")
AXES = ("devices", "cells", "grid_points", "times", "weights", "seeds")
TOP_KEYS = ("name", "kind") + AXES + ("settings",)
SAMPLE_SETTINGS = {"sample_size": 10_240, "rows": 512, "normalise": "column", "values_size": 1 << 20,
                   "threads": 1, "naive": "lsp_first"}
"""Settings of a job that are not OptimizeSettings fields, with their defaults."""
PER_JOB = ("pairs", "significance", "times_s", "grid_points", "seed")
"""OptimizeSettings fields set by the grid's axes, not by `settings`."""
RAY_VERSION = "2.60.0"
"""The Ray release this was tested with (`pip install 'weightprog[scale]'`)."""


class SweepError(WeightprogError):
    """A sweep file or a sweep run is wrong."""


# --- the sweep file ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One job: its `params` (what is hashed into the id and recorded) and the file paths they name,
    resolved against the sweep file's folder (not hashed, so a moved sweep keeps its ids)."""

    id: str
    kind: str
    params: dict
    files: dict = field(default_factory=dict)

    def label(self) -> str:
        p = self.params
        cell = p["cell"]
        sig = cell["significance"]
        cell_text = f"P={cell['pairs']}," + ("F=auto" if sig == "auto" else "f=" + ",".join(f"{f:g}" for f in sig))
        dev = p["device"] if self.kind == "optimize" else "+".join(p["devices"])
        return f"{self.kind} {dev} {cell_text} grid={p['grid_points']} seed={p['seed']}"

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "params": self.params, "files": self.files}

    @staticmethod
    def from_dict(data: dict) -> Job:
        return Job(data["id"], data["kind"], data["params"], data.get("files", {}))


@dataclass
class Sweep:
    name: str
    jobs: list[Job]
    source: str = "sweep"

    def job(self, job_id: str) -> Job:
        for j in self.jobs:
            if j.id == job_id:
                return j
        raise KeyError(job_id)


def job_id(kind: str, params: dict) -> str:
    """16 hex digits of the SHA-256 of the job's settings (canonical JSON)."""
    text = json.dumps({"kind": kind, **params}, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fail(where: str, message: str):
    raise SweepError(f"{where}: {message}")


def _as_list(value, where: str) -> list:
    if value is None:
        _fail(where, "is empty; give a value or a list of values")
    out = value if isinstance(value, list) else [value]
    if not out:
        _fail(where, "is an empty list")
    return out


def _int(value, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        _fail(where, f"must be at least {minimum}, got {value}")
    return value


def _cells(value, where: str, f_max: int) -> list[dict]:
    from ..cell import Cell

    out = []
    for i, item in enumerate(_as_list(value, where)):
        w = f"{where}[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            cell = {"pairs": _int(item, w, 1), "significance": "auto", "f_max": f_max}
        elif isinstance(item, str):
            try:
                sig = list(Cell.parse(item).significance)
            except WeightprogError as exc:
                _fail(w, str(exc))
            cell = {"pairs": len(sig), "significance": sig, "f_max": f_max}
        elif isinstance(item, dict):
            unknown_keys(item, ("pairs", "significance", "f_max"), w, SweepError)
            sig = item.get("significance", "auto")
            if sig != "auto":
                try:
                    sig = list(Cell.parse(sig).significance) if isinstance(sig, str) else \
                        [float(x) for x in _as_list(sig, f"{w}.significance")]
                except (TypeError, ValueError) as exc:
                    _fail(f"{w}.significance", f"'auto', '1,2' or a list of numbers, got {sig!r} ({exc})")
            pairs = _int(item.get("pairs", len(sig) if sig != "auto" else 2), f"{w}.pairs", 1)
            if sig != "auto" and len(sig) != pairs:
                _fail(w, f"significance {sig} has {len(sig)} factors but pairs is {pairs}")
            cell = {"pairs": pairs, "significance": sig, "f_max": _int(item.get("f_max", f_max), f"{w}.f_max", 1)}
        else:
            _fail(w, f"a cell is P (an integer), '1,2', or {{pairs, significance, f_max}}; got {item!r}")
        out.append(cell)
    return out


def _times(value, where: str) -> list[list[float]]:
    from ..timeunits import DEFAULT_TIMES_S, check_times, parse_time, parse_times

    if value is None:
        return [list(DEFAULT_TIMES_S)]
    items = [value] if isinstance(value, str) else _as_list(value, where)
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        try:
            if isinstance(item, str):
                out.append(list(parse_times(item)))
            elif isinstance(item, list):
                out.append(list(check_times([parse_time(x) if isinstance(x, str) else float(x) for x in item])))
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                out.append(list(check_times([float(item)])))
            else:
                _fail(w, f"a set of times is '1s,1h,1y' or a list; got {item!r}")
        except WeightprogError as exc:
            _fail(w, str(exc))
        except (TypeError, ValueError) as exc:
            _fail(w, f"cannot read times {item!r} ({exc})")
    return out


def _settings(value, where: str) -> dict:
    """The file's `settings`: unknown keys refused (nearest key suggested); the OptimizeSettings
    fields checked by OptimizeSettings itself, so the file, the CLI and Python share one rule."""
    from ..search.run import OptimizeSettings

    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(where, f"must be a mapping of setting: value, got {type(value).__name__}")
    optimize_keys = [f.name for f in fields(OptimizeSettings) if f.name not in PER_JOB]
    for key in value:
        if key in PER_JOB:
            _fail(f"{where}.{key}", "is set with the grid's axes (cells, grid_points, times, seeds), not in settings")
    unknown_keys(value, sorted(optimize_keys + list(SAMPLE_SETTINGS)), where, SweepError)
    out = dict(value)
    try:
        OptimizeSettings(**{k: v for k, v in out.items() if k in optimize_keys})
        for key in ("sample_size", "rows", "values_size", "threads"):
            if key in out:
                out[key] = integer(out[key], key, 1)
    except SettingError as exc:
        _fail(f"{where}.{exc.field}", exc.message)
    if "tol" in out:
        out["tol"] = float(out["tol"])  # as written before: ids of existing sweeps stay the same
    if "normalise" in out and out["normalise"] not in ("column", "tensor"):
        _fail(f"{where}.normalise", f"column or tensor, got {out['normalise']!r}")
    if "naive" in out and out["naive"] not in ("lsp_first", "msp_first", "single_pair"):
        _fail(f"{where}.naive", f"lsp_first, msp_first or single_pair, got {out['naive']!r}")
    size, rows = out.get("sample_size", SAMPLE_SETTINGS["sample_size"]), out.get("rows", SAMPLE_SETTINGS["rows"])
    if size % rows:
        _fail(f"{where}.sample_size", f"{size} must be a multiple of rows ({rows})")
    return out


def _file_or_name(text, where: str, base: Path, known: Callable[[str], bool]) -> tuple[str, str | None]:
    """(as written, resolved path or None for a built-in name)."""
    if not isinstance(text, str) or not text:
        _fail(where, f"a name or a file path, got {text!r}")
    if known(text):
        return text, None
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        _fail(where, f"{text!r} is neither a known name nor an existing file ({path})")
    return text, str(path.resolve())


def _device_spec(text, where: str, base: Path, names: list[str]) -> tuple[str, str | None]:
    """A device name or file, optionally scaled (`pcm:read=2`, `dev.yaml:read=2`)."""
    name, sep, scales = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if sep and "=" in scales:
        _, path = _file_or_name(name, where, base, lambda t: t in names)
        return text, f"{path}:{scales}" if path else None
    return _file_or_name(text, where, base, lambda t: t in names)


def parse_sweep(data: Any, where: str = "sweep", base_dir: str | Path = ".") -> Sweep:
    """Expand a sweep mapping (as loaded from YAML) into jobs; errors name `where` and the field."""
    from ..devices import device_names, get_device
    from ..sample import DISTRIBUTIONS

    base = Path(base_dir)
    if not isinstance(data, dict):
        _fail(where, "expected a mapping with keys " + ", ".join(TOP_KEYS))
    unknown_keys(data, TOP_KEYS, where, SweepError)
    kinds = _as_list(data.get("kind", "optimize"), f"{where}: kind")
    for k in kinds:
        if k not in KINDS:
            _fail(f"{where}: kind", f"{k!r} is not one of {', '.join(KINDS)}")
    settings = _settings(data.get("settings"), f"{where}: settings")
    f_max = settings.get("f_max", 5)

    devices = []
    for i, d in enumerate(_as_list(data.get("devices", "pcm"), f"{where}: devices")):
        w = f"{where}: devices[{i}]"
        written, path = _device_spec(d, w, base, device_names())
        try:
            get_device(path or written)
        except WeightprogError as exc:
            _fail(w, str(exc))
        devices.append((written, path))
    if len({d for d, _ in devices}) != len(devices):
        _fail(f"{where}: devices", "a device is listed more than once")
    cells = _cells(data.get("cells", 2), f"{where}: cells", f_max)
    grids = [_int(g, f"{where}: grid_points[{i}]", 2)
             for i, g in enumerate(_as_list(data.get("grid_points", 6), f"{where}: grid_points"))]
    times = _times(data.get("times"), f"{where}: times")
    weights = []
    for i, wt in enumerate(_as_list(data.get("weights", "distribution:default"), f"{where}: weights")):
        w = f"{where}: weights[{i}]"
        if isinstance(wt, str) and (wt.startswith("distribution:") or wt in DISTRIBUTIONS):
            name = wt.split(":", 1)[-1]
            if name not in DISTRIBUTIONS:
                _fail(w, f"unknown distribution {name!r}; use one of {', '.join(DISTRIBUTIONS)}")
            weights.append((f"distribution:{name}", None))
        else:
            weights.append(_file_or_name(wt, w, base, lambda t: False))
    seeds_value = data.get("seeds", [0])
    if isinstance(seeds_value, int) and not isinstance(seeds_value, bool):
        seeds = list(range(_int(seeds_value, f"{where}: seeds", 1)))
    else:
        seeds = [_int(s, f"{where}: seeds[{i}]", 0) for i, s in enumerate(_as_list(seeds_value, f"{where}: seeds"))]

    jobs: list[Job] = []
    common = list(itertools.product(cells, grids, times, weights, seeds))
    for kind in kinds:
        if kind == "optimize":
            combos = [(dev, *rest) for dev in devices for rest in common]
        else:
            if len(devices) < 2:
                _fail(f"{where}: devices", "kind compare needs at least 2 devices")
            combos = [(None, *rest) for rest in common]
        for dev, cell, grid, ts, (weights_written, weights_path), seed in combos:
            params = {"cell": cell, "grid_points": grid, "times_s": ts, "weights": weights_written,
                      "seed": seed, "settings": settings}
            files = {"weights": weights_path} if weights_path else {}
            if kind == "optimize":
                params["device"] = dev[0]
                if dev[1]:
                    files["device"] = dev[1]
            else:
                params["devices"] = [d for d, _ in devices]
                dev_files = {d: p for d, p in devices if p}
                if dev_files:
                    files["devices"] = dev_files
            try:  # the grid's own values (pairs, f_max, grid, seed, times) against the settings' ranges
                _optimize_settings(params, cell)
            except SettingError as exc:
                _fail(where, f"{exc.field}: {exc.message} (in the job {kind} {cell}, grid {grid}, seed {seed})")
            jobs.append(Job(job_id(kind, params), kind, params, files))
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        _fail(where, "two jobs have the same settings (a value is repeated in an axis)")
    name = data.get("name", "sweep")
    if not isinstance(name, str):
        _fail(f"{where}: name", f"must be a string, got {name!r}")
    return Sweep(name, jobs, where)


def load_sweep(path: str | Path) -> Sweep:
    """Read and expand a sweep YAML file (yaml.safe_load)."""
    path = Path(path)
    text = read_text(path, "sweep file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SweepError(f"{path}: not valid YAML ({exc})") from None
    return parse_sweep(data, str(path), path.parent)


# --- one job ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _values(weights: str, path: str | None, normalise: str, values_size: int, seed: int):
    """Normalised weights of a job (kept per worker process for the next job with the same)."""
    from ..sample import load_distribution

    if path is None:
        return load_distribution(weights.split(":", 1)[1]), weights
    from ..largescale import iter_file_tensors, stream_values

    values, _, _ = stream_values(iter_file_tensors(path), values_size, seed, normalise, source=weights)
    return values, weights


def _optimize_settings(params: dict, cell: dict):
    from ..cell import Cell
    from ..search.run import OptimizeSettings

    s = {k: v for k, v in params["settings"].items() if k not in SAMPLE_SETTINGS}
    s["f_max"] = cell["f_max"]
    sig = cell["significance"]
    return OptimizeSettings(pairs=cell["pairs"], significance=None if sig == "auto" else Cell(tuple(sig)),
                            times_s=tuple(params["times_s"]), grid_points=params["grid_points"],
                            seed=params["seed"], **s)


def execute_job(job: Job) -> dict:
    """Run one job in this process and return its result (raises on error)."""
    import torch

    from ..sample import sample_from_values

    p = job.params
    opts = {**SAMPLE_SETTINGS, **p["settings"]}
    threads = torch.get_num_threads()
    torch.set_num_threads(int(opts["threads"]))
    try:
        values, source = _values(p["weights"], job.files.get("weights"), opts["normalise"],
                                 int(opts["values_size"]), int(p["seed"]))
        sample = sample_from_values(values, int(opts["sample_size"]), int(opts["rows"]), seed=int(p["seed"]),
                                    source=source)
        settings = _optimize_settings(p, p["cell"])
        if job.kind == "optimize":
            from ..search.run import optimize, report_dict

            outcome = optimize(sample, values, job.files.get("device", p["device"]), settings)
            result = report_dict(outcome, source)
            result["strategy"] = outcome.strategy.to_dict()
            return result
        from ..compare import compare_devices

        dev_files = job.files.get("devices", {})
        comparison = compare_devices([dev_files.get(d, d) for d in p["devices"]], sample, values, settings,
                                     naive=opts["naive"].replace("_", "-"), source=source)
        return comparison.to_dict()
    finally:
        torch.set_num_threads(threads)


def run_job(job: dict) -> dict:
    """The task a worker runs: a job (as a dict) in, its record out; errors become an error record
    (with the traceback), so one bad job never stops a sweep."""
    j = Job.from_dict(job)
    start = time.perf_counter()
    run = {"host": socket.gethostname(), "pid": os.getpid(), "weightprog_version": __version__,
           "python": platform.python_version()}
    try:
        result = execute_job(j)
    except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
        run["wall_time_s"] = time.perf_counter() - start
        return {"id": j.id, "kind": j.kind, "params": j.params, "run": run,
                "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    run["wall_time_s"] = time.perf_counter() - start
    run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"id": j.id, "kind": j.kind, "params": j.params, "run": run, "result": result}


# --- the output folder ------------------------------------------------------------------------

def result_path(out: str | Path, jid: str) -> Path:
    return Path(out) / "jobs" / f"{jid}.json"


def error_path(out: str | Path, jid: str) -> Path:
    return Path(out) / "jobs" / f"{jid}.error.json"


def read_record(out: str | Path, jid: str) -> dict | None:
    """A finished job's record, or None when there is none (a half-written file cannot exist:
    records are written atomically; an unreadable one counts as not finished)."""
    path = result_path(out, jid)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("id") == jid and "result" in data else None


def comparable_records(out: str | Path, jobs) -> dict:
    """{job id: record} without what differs between runs of the same job (wall times, host,
    pid), to check that two runs (engines, worker counts, a resumed sweep) gave the same numbers."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("wall_time_s", "run")}
        return [strip(v) for v in x] if isinstance(x, list) else x
    return {j.id: strip(read_record(out, j.id)) for j in jobs}


@dataclass
class SweepStatus:
    done: list[str]
    failed: dict[str, str]
    """Job id -> error message of its last failed try (and no result since)."""
    pending: list[str]


def sweep_status(sweep: Sweep, out: str | Path) -> SweepStatus:
    done, failed, pending = [], {}, []
    for job in sweep.jobs:
        if read_record(out, job.id) is not None:
            done.append(job.id)
            continue
        try:
            failed[job.id] = json.loads(error_path(out, job.id).read_text())["error"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pending.append(job.id)
    return SweepStatus(done, failed, pending)


@dataclass
class SweepProgress:
    """Passed to the progress callback after every finished or failed job (and once at the start)."""

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
        return self.total - len(self.done) - len(self.failed)


def _append_event(out: Path, event: dict) -> None:
    with open(out / "events.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _record(out: Path, record: dict) -> bool:
    """Write a job's record; True for a result, False for an error."""
    jid = record["id"]
    if "result" in record:
        atomic_write_json(result_path(out, jid), record)
        try:
            error_path(out, jid).unlink()
        except FileNotFoundError:
            pass
        _append_event(out, {"event": "done", "id": jid, "time": time.time()})
        return True
    atomic_write_json(error_path(out, jid), record)
    _append_event(out, {"event": "failed", "id": jid, "time": time.time(), "error": record["error"]})
    return False


# --- engines ----------------------------------------------------------------------------------

def _run_inline(jobs: list[dict], handle: Callable[[dict], None]) -> None:
    for job in jobs:
        handle(run_job(job))


def _run_processes(jobs: list[dict], workers: int, handle: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # forkserver: workers fork from a clean server process that has imported weightprog but run
    # nothing (forking a process that has used torch's thread pools can hang); the server is
    # started once per driver process and reused by later pools
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["weightprog.sweep", "weightprog.search.run", "weightprog.compare"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    record = future.result()
                except BrokenProcessPool as exc:
                    record = {"id": job["id"], "kind": job["kind"], "params": job["params"], "run": {},
                              "error": f"a worker process died (killed or out of memory): {exc}",
                              "traceback": ""}
                handle(record)
        except BaseException:  # Ctrl-C, SIGTERM, a failing callback: stop the workers now, not after their jobs
            processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            raise


def _worker_init(driver_pid: int) -> None:
    """In each worker process: Ctrl-C is the driver's to handle (it stops the workers), and a worker
    whose driver is gone (kill -9) exits within a second instead of computing for nobody."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

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

    def watch():
        while driver_alive():
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="weightprog-driver-watch", daemon=True).start()


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM stops a sweep as Ctrl-C does (finished jobs kept, workers stopped), from the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ray_module():
    """The `ray` package, or an error that says how to install it."""
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


def _run_ray(jobs: list[dict], address: str, cpus_per_job: float, handle: Callable[[dict], None]) -> None:
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
        _ray_tasks(ray, jobs, cpus_per_job, handle)
    finally:
        if started:  # disconnect (and stop a local instance this started); a caller's own stays up
            ray.shutdown()


def _ray_tasks(ray, jobs: list[dict], cpus_per_job: float, handle: Callable[[dict], None]) -> None:
    task = ray.remote(num_cpus=cpus_per_job, max_retries=0)(run_job)
    refs = {task.remote(job): job for job in jobs}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                job = refs[ref]
                try:
                    record = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a worker died; run_job itself never raises
                    record = {"id": job["id"], "kind": job["kind"], "params": job["params"], "run": {},
                              "error": f"Ray task failed: {type(exc).__name__}: {exc}", "traceback": ""}
                handle(record)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def run_sweep(sweep: Sweep | str | Path, out: str | Path, workers: int = 1, ray: str | None = None,
              retry_failed: bool = True, progress: Callable[[SweepProgress], None] | None = None,
              summary: bool = True) -> SweepResult:
    """Run the jobs of `sweep` that have no record in `out`; write each record as it finishes.

    workers: local processes (0 runs the jobs in this process, one after the other).
    ray: None runs locally; "auto" (a running cluster if found, otherwise a local Ray instance) or
    a cluster address runs every job as a Ray task (one CPU per torch thread of a job); an already
    initialised Ray (`ray.init(...)` by the caller) is used as it is.
    retry_failed: re-run jobs whose last try failed (default), or leave them failed.
    progress: called after every job with done / failed / pending counts.
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
                progress: Callable[[SweepProgress], None] | None, summary: bool, start: float) -> SweepResult:
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", {"name": sweep.name, "source": sweep.source,
                                           "weightprog_version": __version__,
                                           "jobs": [j.to_dict() for j in sweep.jobs]})
    status = sweep_status(sweep, out)
    skipped = list(status.done)
    failed = {} if retry_failed else dict(status.failed)
    todo = [j for j in sweep.jobs if j.id in set(status.pending) | (set(status.failed) if retry_failed else set())]
    done = list(status.done)
    ran: list[str] = []
    total = len(sweep.jobs)

    def report(job=None, event="start", error=None):
        if progress:
            progress(SweepProgress(total, len(done), len(failed), total - len(done) - len(failed), job, event, error))

    def handle(record: dict) -> None:
        job = sweep.job(record["id"])
        if _record(out, record):
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
        threads = max(int(j.params["settings"].get("threads", 1)) for j in todo)
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


# --- summary ----------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["id", "kind", "device", "pairs", "significance", "f_max", "grid_points", "times", "weights",
                   "seed", "cell", "tnmse_optimised", "stderr_optimised", "best_f1_baseline", "tnmse_best_f1",
                   "best_hand_crafted", "tnmse_best_hand", "improvement_vs_best_f1",
                   "improvement_vs_best_hand", "rank_by_optimum", "rank_by_naive", "wall_time_s"]


def _row(job: Job, device: str, scores: dict, cell: list[float], wall: float, ranks=("", "")) -> dict:
    from ..scores import Scoreboard
    from ..timeunits import format_times

    p = job.params
    board = Scoreboard.from_json(scores)
    f1, hand, opt = board.best_f1_baseline, board.best_hand_crafted, board.optimised
    sig = p["cell"]["significance"]
    return {"id": job.id, "kind": job.kind, "device": device, "pairs": p["cell"]["pairs"],
            "significance": sig if sig == "auto" else ",".join(f"{f:g}" for f in sig),
            "f_max": p["cell"]["f_max"], "grid_points": p["grid_points"],
            "times": ",".join(format_times(p["times_s"])), "weights": p["weights"], "seed": p["seed"],
            "cell": ",".join(f"{f:g}" for f in cell), "tnmse_optimised": repr(opt.mean),
            "stderr_optimised": repr(opt.stderr), "best_f1_baseline": f1.name,
            "tnmse_best_f1": repr(f1.score.mean), "best_hand_crafted": hand.label,
            "tnmse_best_hand": repr(hand.score.mean),
            "improvement_vs_best_f1": repr(board.improvement_vs_best_f1_baseline),
            "improvement_vs_best_hand": repr(board.improvement_vs_best_hand_crafted),
            "rank_by_optimum": ranks[0], "rank_by_naive": ranks[1], "wall_time_s": f"{wall:.3f}"}


def summary_rows(sweep: Sweep, out: str | Path) -> list[dict]:
    """One row per finished optimize job, and one per device of each finished compare job."""
    rows = []
    for job in sweep.jobs:
        record = read_record(out, job.id)
        if record is None:
            continue
        r, wall = record["result"], record.get("run", {}).get("wall_time_s", float("nan"))
        if job.kind == "optimize":
            rows.append(_row(job, job.params["device"], r["tnmse"], r["cell"]["significance"], wall))
        else:
            by_opt, by_naive = r["ranking"]["by_optimum"], r["ranking"]["by_naive"]
            for d in r["devices"]:
                rows.append(_row(job, d["device"], d["tnmse"], d["cell"], wall,
                                 (by_opt.index(d["device"]) + 1, by_naive.index(d["device"]) + 1)))
    return rows


def summary_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_summary(sweep: Sweep, out: str | Path) -> tuple[Path, Path | None]:
    """summary.csv (every finished job) and summary.png (optimised vs best hand-crafted TNMSE per
    configuration, one point per seed); the figure is left out while no job has finished."""
    out = Path(out)
    rows = summary_rows(sweep, out)
    atomic_write_text(out / "summary.csv", summary_csv(rows))
    if not rows:
        return out / "summary.csv", None
    from ..report.sweep_plots import plot_summary  # matplotlib only when there is something to draw

    plot_summary(rows, out / "summary.png", sweep.name)
    return out / "summary.csv", out / "summary.png"


__all__ = ["Job", "Sweep", "SweepError", "SweepProgress", "SweepResult", "SweepStatus", "load_sweep",
           "parse_sweep", "job_id", "run_job", "execute_job", "run_sweep", "sweep_status", "read_record",
           "write_summary", "summary_rows", "ray_module", "RAY_VERSION"]
