"""Which jobs a study consists of (`first_jobs`, then `evaluate_jobs` once the searches and the
limit's choices are in), and where their records live (`<out>/jobs/<id>.json`, per-example sums
in `<id>.pt`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..baselines import baseline
from ..cell import Cell
from ..choices import LIMIT_CHOSEN
from ..devices import get_device
from ..errors import WeightprogError
from ..fileio import atomic_write, atomic_write_json
from .jobs import StudyJob
from .settings import StudySettings

Rounds = dict[str, tuple[int, int | None]]
"""Per workload, `--precision`'s round and its test items; a workload not listed: round 0 on the
settings' own eval size."""


def _common(settings: StudySettings, workload: str, rounds: Rounds | None = None) -> dict:
    size = (rounds or {}).get(workload, (0, settings.eval_size.get(workload)))[1]
    return {"eval_size": size, "seed": settings.seed, "threads": settings.threads}


def _round(rounds: Rounds | None, workload: str) -> int:
    return (rounds or {}).get(workload, (0, None))[0]


def _search_params(settings: StudySettings, workload: str) -> dict:
    study = {k: v for k, v in settings.to_dict().items()
             if k not in ("workloads", "devices", "variants", "repeats", "block", "roles", "eval_size", "threads",
                          "precision", "beside")}
    return {**_common(settings, workload), "study": study}


def _evaluate_params(settings: StudySettings, workload: str, rounds: Rounds | None) -> dict:
    return {**_common(settings, workload, rounds), "times_s": list(settings.times_s), "periphery": settings.periphery}


def searched_on(settings: StudySettings, variant: str) -> str:
    """The variant whose weights `variant`'s strategies were searched on."""
    return variant if settings.search_on == "each" else settings.variants[0]


def first_jobs(settings: StudySettings, rounds: Rounds | None = None) -> list[StudyJob]:
    """Jobs that need nothing else: digital runs (always the FP model's: the reference), the
    gradient correlation, the searches, the limit's choices on held-out data, and the naive
    evaluations (digital runs and evaluations on each workload's round of test items)."""
    jobs = []
    for w in settings.workloads:
        for v in dict.fromkeys(("fp",) + settings.variants):
            jobs.append(StudyJob("digital", w, v, params=_common(settings, w, rounds), round=_round(rounds, w)))
        jobs.append(StudyJob("gradients", w, settings.variants[0], params=_common(settings, w)))
        for d in settings.devices:
            for v in dict.fromkeys(searched_on(settings, v) for v in settings.variants):
                if {"best hand-crafted", "optimised"} & set(settings.roles):
                    jobs.append(StudyJob("search", w, v, d, params=_search_params(settings, w)))
            for v in settings.variants:
                jobs += _blocks(settings, w, v, d, "naive", _naive(d), rounds) if "naive" in settings.roles else []
                if "limit" in settings.roles:  # on held-out data: one choice whatever the test round
                    jobs += [StudyJob("limit-choice", w, v, d, "limit", params=p, beside=beside)
                             for p, beside in _runs(settings, w, "limit", None)]
    return jobs


def evaluate_jobs(settings: StudySettings, results: dict[str, dict], rounds: Rounds | None = None) -> list[StudyJob]:
    """The evaluations of the searched strategies (best hand-crafted, optimised) and of the limit,
    from the results of the searches and the limit's choices by job id; a cell whose search or
    choice has no record yet has none."""
    jobs = []
    for w in settings.workloads:
        for d in settings.devices:
            for v in settings.variants:
                found = results.get(StudyJob("search", w, searched_on(settings, v), d).id)
                for role in ("best hand-crafted", "optimised"):
                    if role in settings.roles and found is not None:
                        jobs += _blocks(settings, w, v, d, role, found["strategies"][role], rounds)
                jobs += _limit_blocks(settings, w, v, d, results, rounds) if "limit" in settings.roles else []
    return jobs


def _limit_blocks(settings: StudySettings, w: str, v: str, d: str, results: dict[str, dict],
                  rounds: Rounds | None) -> list[StudyJob]:
    """The limit's evaluation jobs under each periphery whose choice (`limit-choice`, made once on
    held-out data whatever the test round) has a record, the choice in their params."""
    jobs = []
    for (on, beside), (params, _) in zip(_runs(settings, w, "limit", None), _runs(settings, w, "limit", rounds)):
        choice = results.get(StudyJob("limit-choice", w, v, d, "limit", params=on, beside=beside).id)
        if choice is not None:
            jobs += [StudyJob("evaluate", w, v, d, "limit", first, count, None, {**params, "choice": choice["limit"]},
                              _round(rounds, w), beside) for first, count in settings.blocks()]
    return jobs


def _naive(device: str) -> dict:
    """lsp-first at F = 1 on two pairs (the paper's naive programming)."""
    dev = get_device(device)
    return baseline("lsp-first", Cell.with_pairs(2, 1.0), dev.g_min, dev.g_max).to_dict()


def _runs(settings: StudySettings, w: str, role: str, rounds: Rounds | None) -> list[tuple[dict, bool]]:
    """A strategy's evaluation settings under the study's periphery and each periphery beside it (at
    its times), with whether it is beside."""
    params = _evaluate_params(settings, w, rounds)
    if role == "limit":  # the limit's kind is part of the job: records of another kind are not its own
        params["limit"] = LIMIT_CHOSEN
        params["limit_gain"] = "validate"  # its read-out gain chosen on held-out data (older records: none)
        params["choice_repeats"] = settings.network_repeats  # its choices' realisations, as the search's
    return [(params, False)] + [({**params, "times_s": list(b.times_s), "periphery": b.periphery}, True)
                                for b in settings.beside_runs()]


def _blocks(settings: StudySettings, w: str, v: str, d: str, role: str, strategy: dict,
            rounds: Rounds | None) -> list[StudyJob]:
    """A strategy's evaluation jobs: per block of realisations, under each periphery (`_runs`)."""
    return [StudyJob("evaluate", w, v, d, role, first, count, strategy, p, _round(rounds, w), beside)
            for p, beside in _runs(settings, w, role, rounds) for first, count in settings.blocks()]


# --- records -------------------------------------------------------------------------------------

def record_path(out: Path, job_id: str) -> Path:
    return out / "jobs" / f"{job_id}.json"


def write_record(out: Path, record: dict) -> bool:
    """Write a finished job's record (its per-example sums first, so a JSON file means complete);
    an error record goes to `<id>.error.json`. Returns whether the job finished."""
    jid = record["id"]
    if "error" in record:
        atomic_write_json(out / "jobs" / f"{jid}.error.json", record)
        return False
    result = dict(record["result"])
    tensors = {k: result.pop(k) for k in ("example_sums", "examples") if isinstance(result.get(k), torch.Tensor)}
    if tensors:
        atomic_write(out / "jobs" / f"{jid}.pt", lambda tmp: torch.save(tensors, tmp))
    result["tensors"] = sorted(tensors)
    atomic_write_json(record_path(out, jid), {**record, "result": result})
    (out / "jobs" / f"{jid}.error.json").unlink(missing_ok=True)
    return True


def read_record(out: Path, job: StudyJob) -> dict | None:
    """The record of exactly this job (same kind, cell, realisations, strategy and settings), or None."""
    path = record_path(out, job.id)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a damaged record is recomputed, not trusted
    return record if record.get("job") == json.loads(json.dumps(job.to_dict())) else None


def read_tensors(out: Path, job_id: str, record: dict) -> dict:
    """A record's tensors (per-example sums, digital examples), {} when it has none."""
    if not record["result"].get("tensors"):
        return {}
    path = out / "jobs" / f"{job_id}.pt"
    try:
        return torch.load(path, weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise WeightprogError(f"{path}: cannot read the job's per-example values ({exc}); delete "
                              f"{record_path(out, job_id).name} to rerun the job") from None
