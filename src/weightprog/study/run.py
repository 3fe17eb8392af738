"""Running (or resuming) the study: its jobs through an engine, then its tables and figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_write_json, atomic_write_text, folder_lock
from ..nn.precision import PrecisionReport
from ..progress import Event, ProgressCallback
from .data import StudyData, collect
from .jobs import StudyJob, run_job, task
from .plan import Rounds, evaluate_jobs, first_jobs, read_record, record_path, write_record
from .precision import PrecisionRounds
from .settings import StudySettings
from .tables import PairedRow, SummaryRow, markdown, paired_rows, rows_csv, summary_rows


@dataclass(frozen=True)
class StudyResult:
    """What `run_study` wrote, and the numbers in it."""

    out: Path
    data: StudyData
    summary: list[SummaryRow]
    """Each strategy's metric per cell and time, with its 95 % interval."""
    paired: list[PairedRow]
    """Each comparison per cell and time, with its interval and verdict."""
    markdown: str
    """summary.md: the tables."""
    done: int
    """Jobs finished (this run's and earlier runs')."""
    failed: dict[str, str]
    """Jobs that failed this time, and why."""
    engine: str

    @property
    def complete(self) -> bool:
        return not self.failed


def _records(out: Path, jobs: list[StudyJob]) -> dict[str, dict]:
    """The records of `jobs` already in `out` (those of exactly these jobs)."""
    found = {}
    for job in jobs:
        rec = read_record(out, job)
        if rec is not None:
            found[job.id] = rec
    return found


@dataclass(frozen=True)
class StudyState:
    """A study folder as it stands: its settings, its planned jobs and the data of those finished."""

    settings: dict
    planned: list[str]
    finished: int
    data: StudyData
    precision: dict
    """`--precision`'s outcome per workload (PrecisionReport's JSON form); empty without it."""

    @property
    def done(self) -> bool:
        return self.finished == len(self.planned)


def read_state(out: Path) -> StudyState | None:
    """The study in `out` (partial or finished), from its plan (study.json) and job records; None
    when `out` holds no study plan."""
    plan_path = out / "study.json"
    if not plan_path.is_file():
        return None
    plan = json.loads(plan_path.read_text())
    records = {}
    for jid in plan["jobs"]:
        path = record_path(out, jid)
        if path.is_file():
            records[jid] = json.loads(path.read_text())
    return StudyState(plan["settings"], list(plan["jobs"]), len(records), collect(out, records),
                      plan.get("precision", {}))


def write_outputs(out: Path, log: Callable[[str], None] = lambda m: None) -> StudyResult | None:
    """results.csv, paired.csv, summary.md, the data CSVs and the figures from the records in
    `out/jobs` (a partial study draws what it has); None when `out` holds no study plan."""
    from ..report.study_plots import plot_study

    state = read_state(out)
    if state is None:
        return None
    data = state.data
    data.write(out / "data")
    summary, paired = summary_rows(data), paired_rows(data)
    text = markdown(data) + "".join(f"\n{w}: {PrecisionReport.from_dict(r).format()}\n"
                                    for w, r in state.precision.items())
    atomic_write_text(out / "results.csv", rows_csv(summary))
    atomic_write_text(out / "paired.csv", rows_csv(paired))
    atomic_write_text(out / "summary.md", text)
    for path in plot_study(data, out / "figures"):
        log(f"figure {path}")
    return StudyResult(out, data, summary, paired, text, state.finished, {}, "none")


@dataclass
class _Handler:
    """Writes each record as it arrives, and says so."""

    out: Path
    finished: int
    total: int
    failed: dict[str, str]
    log: Callable[[str], None]
    progress: ProgressCallback | None

    def __call__(self, record: dict) -> None:
        if write_record(self.out, record):
            self.finished += 1
            self.failed.pop(record["id"], None)
            self.log(f"[{self.finished}/{self.total}] {record['id']} ({record['run']['wall_time_s']:.0f} s)")
        else:
            self.failed[record["id"]] = record["error"]
            self.log(f"FAILED {record['id']}: {record['error']}")
        if self.progress is not None:
            self.progress(Event("study", (record["id"],), self.finished + len(self.failed), self.total))


def run_study(settings: StudySettings, out: str | Path, log: Callable[[str], None] = lambda m: None,
              workers: int = 0, ray: str | None = None, progress: ProgressCallback | None = None) -> StudyResult:
    """Run (or resume) the study in `out`: the jobs without a record, then the tables and figures.

    Parameters
    ----------
    settings
        Workloads, devices, variants, roles, times, realisations and the search's size.
    out
        The output folder (locked while the study runs): `jobs/` (one record per job), `data/`
        (the CSV files every table is computed from), results.csv, paired.csv, summary.md, figures/.
    log
        Called with one line per finished job and phase.
    workers
        Local worker processes (0: in this process).
    ray
        None, "auto" or a Ray cluster address: every job a Ray task.
    progress
        Called with an `Event` (task `study`, the job's id) after each finished or failed job.

    Returns
    -------
    StudyResult
    """
    out = Path(out)
    with folder_lock(out, "weightprog study"):  # one driver per folder: two would mix their records
        (out / "jobs").mkdir(parents=True, exist_ok=True)
        failed: dict[str, str] = {}
        rounds: Rounds = {}
        targets = settings.precision_targets()
        tracker = PrecisionRounds.start(targets) if targets else None
        while True:
            jobs, engine = _run_round(settings, out, rounds, log, workers, ray, progress, failed)
            if tracker is None or failed:
                break
            records = _records(out, jobs)
            nxt = tracker.step(rounds, collect(out, records), records, settings.eval_size)
            if nxt == rounds:
                break
            for w, (index, size) in nxt.items():
                if rounds.get(w) != (index, size):
                    log(f"precision: {w} round {index + 1} on {size} test items")
            rounds = nxt
        if tracker is not None:
            for w, report in tracker.reports.items():
                log(f"{w}: {report.format()}")
            _record_plan(out, settings, jobs, {w: r.to_dict() for w, r in tracker.reports.items()})
        result = write_outputs(out, log)
        assert result is not None
        return StudyResult(out, result.data, result.summary, result.paired, result.markdown, result.done, failed,
                           engine)


def _record_plan(out: Path, settings: StudySettings, jobs: list[StudyJob], precision: dict | None = None) -> None:
    """study.json: the settings and the jobs whose records make the tables (and `--precision`'s outcome)."""
    plan = {"settings": settings.to_dict(), "jobs": [j.id for j in jobs]}
    atomic_write_json(out / "study.json", plan | ({"precision": precision} if precision else {}))


def _run_round(settings: StudySettings, out: Path, rounds: Rounds, log: Callable[[str], None], workers: int,
               ray: str | None, progress: ProgressCallback | None,
               failed: dict[str, str]) -> tuple[list[StudyJob], str]:
    """The jobs of one round of test items (the searches run in the first): its jobs and the engine used."""
    from ..sweep.engines import run_tasks

    engine = "none"
    jobs = first_jobs(settings, rounds)
    have: dict[str, dict] = {}
    for phase in ("searches, the limit's choices, digital runs and naive", "hand-crafted, optimised and limit"):
        if phase == "hand-crafted, optimised and limit":  # from the searches' and the choices' records
            have = _records(out, jobs)
            more = evaluate_jobs(settings, {jid: rec["result"] for jid, rec in have.items()}, rounds)
            jobs = jobs + more
            have.update(_records(out, more))  # only the new jobs' records are read
        else:
            have = _records(out, jobs)
        _record_plan(out, settings, jobs)
        todo = [task(j) for j in jobs if j.id not in have]
        log(f"{phase}: {len(have)} of {len(jobs)} jobs done before, {len(todo)} to run")
        handle = _Handler(out, len(have), len(jobs), failed, log, progress)
        used = run_tasks(todo, run_job, handle, workers, ray, float(settings.threads or 1))
        engine = used if used != "none" else engine
    return jobs, engine
