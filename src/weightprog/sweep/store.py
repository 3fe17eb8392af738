"""A sweep's output folder: what is written there, and what is read back.

    OUT/sweep.json          the sweep's jobs (name, source, weightprog version)
    OUT/jobs/<id>.json      a finished job's record (written atomically)
    OUT/jobs/<id>.error.json  the error of a job's last failed try (removed when it finishes)
    OUT/events.jsonl        one line per job that finished or failed
    OUT/summary.csv         one row per finished optimize job, one per device of a compare job
    OUT/summary.png         the summary figure (`report.sweep_plots`)

A record exists only once its job finished (a half-written file cannot exist), so a killed sweep
keeps every finished job and a re-run does only the jobs without a record.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..fileio import atomic_write_json, atomic_write_text, before_write
from ..records.sweep import SweepJobRecord, SweepManifest
from ..scores import Scoreboard
from ..timeunits import format_times
from .spec import Job, Sweep


def result_path(out: str | Path, jid: str) -> Path:
    """Where the record of job `jid` is written in the output folder `out`."""
    return Path(out) / "jobs" / f"{jid}.json"


def error_path(out: str | Path, jid: str) -> Path:
    """Where the error of job `jid`'s last failed try is written in the output folder `out`."""
    return Path(out) / "jobs" / f"{jid}.error.json"


def read_record(out: str | Path, jid: str) -> dict | None:
    """A finished job's record.

    Parameters
    ----------
    out
        The sweep's output folder.
    jid
        The job's id.

    Returns
    -------
    dict or None
        The record, or None when there is none (records are written atomically; an unreadable one
        counts as not finished).
    """
    path = result_path(out, jid)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("id") == jid and "result" in data else None


def comparable_records(out: str | Path, jobs: Iterable[Job]) -> dict:
    """The records of `jobs` without what differs between runs of the same job (wall times, host,
    pid), to check that two runs (engines, worker counts, a resumed sweep) gave the same numbers.

    Parameters
    ----------
    out
        The sweep's output folder.
    jobs
        The jobs to read.

    Returns
    -------
    dict
        {job id: record without `run` and `wall_time_s` keys, or None when the job has none}.
    """
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("wall_time_s", "run")}
        return [strip(v) for v in x] if isinstance(x, list) else x
    return {j.id: strip(read_record(out, j.id)) for j in jobs}


@dataclass
class SweepStatus:
    """Which jobs of a sweep have a record in its output folder."""

    done: list[str]
    failed: dict[str, str]
    """Job id -> error message of its last failed try (and no result since)."""
    pending: list[str]


def sweep_status(sweep: Sweep, out: str | Path) -> SweepStatus:
    """The jobs of `sweep` that are done, failed (last try) and pending in the output folder `out`.

    Parameters
    ----------
    sweep
        The sweep.
    out
        Its output folder (need not exist: every job is then pending).

    Returns
    -------
    SweepStatus
        Job ids in the order of the sweep.
    """
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


def write_manifest(sweep: Sweep, out: Path) -> None:
    """sweep.json: the sweep's name, source, the weightprog version and every job (`Job.to_dict`)."""
    manifest = SweepManifest(sweep.name, sweep.source, __version__, tuple(j.to_dict() for j in sweep.jobs))
    atomic_write_json(out / "sweep.json", manifest.to_json())


def _append_event(out: Path, event: dict) -> None:
    before_write(out / "events.jsonl")
    with open(out / "events.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_record(out: Path, record: dict) -> bool:
    """Write a job's record (atomically) and log it in events.jsonl.

    Parameters
    ----------
    out
        The sweep's output folder (with its `jobs` folder).
    record
        What `run_job` returned: a result (its error file, if any, is removed) or an error.

    Returns
    -------
    bool
        True for a result, False for an error.
    """
    jid = record["id"]
    if "result" in record:
        atomic_write_json(result_path(out, jid), record)
        with contextlib.suppress(FileNotFoundError):
            error_path(out, jid).unlink()
        _append_event(out, {"event": "done", "id": jid, "time": time.time()})
        return True
    atomic_write_json(error_path(out, jid), record)
    _append_event(out, {"event": "failed", "id": jid, "time": time.time(), "error": record["error"]})
    return False


# --- summary ----------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["id", "kind", "device", "pairs", "significance", "f_max", "grid_points", "times", "weights",
                   "seed", "cell", "tnmse_optimised", "stderr_optimised", "best_f1_baseline", "tnmse_best_f1",
                   "best_hand_crafted", "tnmse_best_hand", "improvement_vs_best_f1",
                   "improvement_vs_best_hand", "rank_by_optimum", "rank_by_naive", "wall_time_s"]


def _row(job: Job, device: str, board: Scoreboard, cell: Sequence[float], wall: float,
         ranks: tuple[int | str, int | str] = ("", "")) -> dict:
    p = job.params
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
    """The rows of summary.csv (`SUMMARY_COLUMNS`).

    Parameters
    ----------
    sweep
        The sweep.
    out
        Its output folder.

    Returns
    -------
    list of dict
        One row per finished optimize job, and one per device of each finished compare job, in the
        order of the sweep; the best F = 1 and hand-crafted baselines as `scores.Scoreboard` decides.
    """
    rows = []
    for job in sweep.jobs:
        raw = read_record(out, job.id)
        if raw is None:
            continue
        record = SweepJobRecord.from_json(raw)
        wall = record.wall_time_s
        if record.optimize is not None:
            r = record.optimize
            rows.append(_row(job, job.params["device"], r.tnmse, r.cell.significance, wall))
        elif record.comparison is not None:
            by_opt, by_naive = record.comparison.ranking.by_optimum, record.comparison.ranking.by_naive
            for d in record.comparison.devices:
                rows.append(_row(job, d.device, d.tnmse, d.cell, wall,
                                 (by_opt.index(d.device) + 1, by_naive.index(d.device) + 1)))
    return rows


def summary_csv(rows: list[dict]) -> str:
    """The text of summary.csv: a header of `SUMMARY_COLUMNS`, then `rows` (`summary_rows`)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_summary(sweep: Sweep, out: str | Path) -> tuple[Path, Path | None]:
    """Write summary.csv (every finished job) and summary.png (optimised vs best hand-crafted TNMSE
    per configuration, one point per seed; `report.sweep_plots.plot_summary`).

    Parameters
    ----------
    sweep
        The sweep.
    out
        Its output folder.

    Returns
    -------
    tuple of Path
        summary.csv, and summary.png or None while no job has finished (no figure is drawn).
    """
    out = Path(out)
    rows = summary_rows(sweep, out)
    atomic_write_text(out / "summary.csv", summary_csv(rows))
    if not rows:
        return out / "summary.csv", None
    from ..report.sweep_plots import plot_summary  # matplotlib only when there is something to draw

    plot_summary(rows, out / "summary.png", sweep.name)
    return out / "summary.csv", out / "summary.png"
