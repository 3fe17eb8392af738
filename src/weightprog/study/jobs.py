"""The study as jobs: what each one computes, and the task a worker runs (`run_job`).

A study is a set of independent jobs, run in this process, in local worker processes or on Ray by
the sweep engines (sweep/engines.py `run_tasks`):
- `digital`: a trained variant's test metric, unprogrammed (the FP model's is every criterion's reference);
- `gradients`: the gradient–weight correlation of a workload's first variant, per layer;
- `search`: a cell's (workload, variant, device) optimisation, its candidates chosen on the network's
  held-out data, and the best hand-crafted strategy;
- `limit-choice`: a cell's `limit-chosen` under one periphery: its mapping and read-out gain per
  time, chosen on the workload's held-out data (once, for every block of the limit's realisations);
- `evaluate`: one strategy of a cell on the test data over the study's times, for one block of
  realisations. Realisation r draws from the seed (seed, r) whatever the block, so blocks add up to
  the same numbers as one run of all realisations, and every strategy shares them (paired comparisons).

A job is plain data (a dict), so it travels to a worker process or a Ray task; its record comes
back as plain data too, with the per-example values as a tensor.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from .._version import __version__
from ..threadcount import SEARCH_THREADS, torch_threads

KINDS = ("digital", "gradients", "search", "limit-choice", "evaluate")


@dataclass(frozen=True)
class StudyJob:
    """One job of the study (see the module's docstring for the kinds)."""

    kind: str
    workload: str
    variant: str
    device: str | None = None
    role: str | None = None
    first: int = 0
    """First realisation of an `evaluate` job."""
    count: int = 0
    """Realisations of an `evaluate` job."""
    strategy: dict | None = None
    """An `evaluate` job's strategy (JSON form); None for the limit, which is computed per time."""
    params: dict = field(default_factory=dict)
    """The settings the job's numbers depend on (times, seed, sizes, periphery, search)."""
    round: int = 0
    """`--precision`'s round of test items (0: the first, on the settings' own eval size)."""
    beside: bool = False
    """An `evaluate` job under a periphery run beside the study's own (`StudySettings.beside`;
    `params` name it)."""

    @property
    def id(self) -> str:
        """File-name-safe and unique within a study."""
        cell = f"{self.workload}@{self.variant}"
        if self.kind == "gradients":
            return f"{cell}_{self.kind}"
        if self.kind == "search":
            return f"{cell}_{self.device}_search"
        if self.kind == "digital":
            return f"{cell}_digital{self._round}"
        beside = f"_{self.params['periphery']}" if self.beside else ""
        if self.kind == "limit-choice":
            return f"{cell}_{self.device}_limit-choice{beside}"
        role = str(self.role).replace(" ", "-")
        return f"{cell}_{self.device}_{role}{beside}_r{self.first:03d}-{self.first + self.count - 1:03d}{self._round}"

    @property
    def _round(self) -> str:
        return f"_p{self.round}" if self.round else ""

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.round:  # records of studies without --precision stay as they were
            del d["round"]
        if not self.beside:  # and those of the study's own periphery
            del d["beside"]
        return {"id": self.id, **d}

    @classmethod
    def from_dict(cls, data: dict) -> StudyJob:
        return cls(**{k: v for k, v in data.items() if k != "id"})


@functools.lru_cache(maxsize=2)
def _workload(name: str, variant: str, eval_size: int | None):
    """A reference workload (kept per process for the next job on the same model)."""
    from ..workloads import get_workload

    return get_workload(name, variant, eval_size=eval_size)


@functools.lru_cache(maxsize=8)
def _limit(workload: str, variant: str, eval_size: int | None, device: str, times_s: tuple[float, ...],
           unbiased: bool = True):
    """The device's limit (`limit`, or `limit-mse` without `unbiased`) for a model's weights at the
    study's times (computed once per process: it is the same for every block of realisations)."""
    from ..devices import get_device
    from ..hardware import Mapping
    from ..nn.discover import find_analog_weights
    from ..nn.limit import compute_limit, deployed_values

    model = _workload(workload, variant, eval_size).model
    with torch_threads(SEARCH_THREADS):
        return compute_limit(deployed_values(find_analog_weights(model), Mapping()), get_device(device), times_s,
                             unbiased=unbiased)


def _limit_choice(job: StudyJob) -> dict:
    """`limit-chosen` for a cell and periphery (`nn.evaluate.choose_limit`, on held-out data with
    `choice_repeats` realisations), in its JSON form for the limit's evaluation jobs."""
    from ..devices import get_device
    from ..hardware import Mapping
    from ..nn.evaluate import choose_limit
    from ..nn.periphery import get_periphery

    p = job.params
    cell = _cell(job)
    unbiased, mse = (_limit(*cell, kind) for kind in (True, False))
    spec = _workload(job.workload, job.variant, p.get("eval_size")).spec()
    chosen = choose_limit(spec, unbiased, mse, get_device(str(job.device)), cell[-1], int(p["seed"]), Mapping(),
                          get_periphery(p["periphery"]), repeats=int(p["choice_repeats"]))
    return {"limit": chosen.to_dict()}


def _cell(job: StudyJob) -> tuple:
    """(workload, variant, eval size, device, times) of an `evaluate` or `limit-choice` job: `_limit`'s key."""
    p = job.params
    return job.workload, job.variant, p.get("eval_size"), str(job.device), tuple(float(t) for t in p["times_s"])


def _digital(job: StudyJob) -> dict:
    wl = _workload(job.workload, job.variant, job.params.get("eval_size"))
    spec = wl.spec()
    got = spec.measure("test", f"{job.workload}@{job.variant}, digital run", finite=True)
    return {"value": got.value, "metric": spec.metric_name, "higher_is_better": spec.higher_is_better,
            "examples": got.examples, "aggregate": _aggregate_name(spec.aggregate),
            "checkpoint": wl.metadata.get("checkpoint"), "available": wl.metadata.get("available")}


def _gradients(job: StudyJob) -> dict:
    from ..nn import gradient_weight_correlation

    wl = _workload(job.workload, job.variant, job.params.get("eval_size"))
    g = gradient_weight_correlation(wl.model, wl.metadata["loss_fn"], seed=int(job.params["seed"]))
    return {"r": g.r, "r_abs": g.r_abs, "layers": [{"name": x.name, "r": x.r, "r_abs": x.r_abs} for x in g.layers]}


def _search(job: StudyJob) -> dict:
    from ..devices import get_device
    from ..hardware import Mapping
    from ..nn.discover import find_analog_weights
    from ..nn.limit import deployed_values
    from ..sample import sample_from_values
    from ..search.run import is_expressible, optimize
    from ..select import NetworkSettings, select_on_network, tnmse_scores
    from .settings import StudySettings

    p = job.params
    settings = StudySettings(**{k: v for k, v in p["study"].items()})
    wl = _workload(job.workload, job.variant, p.get("eval_size"))
    spec = wl.spec()
    device = get_device(str(job.device))
    mapping = Mapping()
    values = deployed_values(find_analog_weights(spec.model), mapping)
    sample = sample_from_values(values, settings.sample_size, seed=settings.seed,
                                source=f"{job.workload}-{job.variant}")
    with torch_threads(SEARCH_THREADS):
        result = optimize(sample, values, device, settings.optimize_settings())
    selection = None
    chosen_name, chosen = "optimised", result.strategy
    if settings.select != "tnmse":  # chosen on held-out data
        network = NetworkSettings(repeats=settings.network_repeats, seed=settings.seed,
                                  periphery=settings.periphery, mapping=mapping, limit=False)
        selection, chosen = select_on_network(spec, result, device, network, settings.select)
        chosen_name = selection.chosen
    method = result.method if chosen_name == "optimised" else chosen_name
    hand = result.scores.best_hand_crafted
    naive = result.scores.naive
    tnmse = {name: s.mean for name, s in tnmse_scores(result).items()}
    f = ",".join(f"{x:g}" for x in chosen.significance[0].tolist())
    return {"strategies": {  # naive is not searched: the plan builds it (lsp-first, F = 1)
                "best hand-crafted": replace(result.strategy_of(hand), names=[hand.label]).to_dict(),
                "optimised": replace(chosen, names=[f"{method} (f={f})"]).to_dict()},
            "method": method, "clips": not is_expressible(chosen), "select": settings.select,
            "tnmse": {"naive": naive.score.mean, "best hand-crafted": hand.score.mean,
                      "optimised": tnmse.get(chosen_name, result.scores.optimised.mean)},
            "selection": None if selection is None else selection.to_dict(),
            "search_wall_time_s": result.wall_time_s}


def _evaluate(job: StudyJob) -> dict:
    from ..devices import get_device
    from ..hardware import Mapping
    from ..nn import evaluate_over_time
    from ..nn.limit import LIMIT, LIMIT_CHOSEN, chosen_from_dict
    from ..strategy import Strategy

    p = job.params
    wl = _workload(job.workload, job.variant, p.get("eval_size"))
    spec = wl.spec()
    cell = _cell(job)
    times = cell[-1]
    strategy: Any = Strategy.from_dict(job.strategy) if job.strategy is not None else p.get("limit", LIMIT)
    limit = None if job.strategy is not None else \
        chosen_from_dict(_limit(*cell, True), _limit(*cell, False), p["choice"]) if strategy == LIMIT_CHOSEN \
        else _limit(*cell)
    res = evaluate_over_time(spec, strategies=[strategy], device=get_device(str(job.device)), times_s=times,
                             repeats=job.count, seed=int(p["seed"]), periphery=p["periphery"], mapping=Mapping(),
                             first_realisation=job.first, limit=limit)
    examples = None if res.examples is None else res.examples[0].double().sum(0)  # (T, N) over the block
    return {"label": res.strategies[0], "metrics": res.metrics[0].tolist(), "digital": res.digital,
            "example_sums": examples, "calibrated_on": res.calibrated_on, "limit": res.limit,
            "weight_nmse": (res.weight_errors[0].sum(-1) / res.weight_energy.sum()).tolist()}


def _aggregate_name(fn) -> str | None:
    """`module:name` of a workload's aggregate (None: the mean), so the driver can linearise it."""
    return None if fn is None else f"{fn.__module__}:{fn.__qualname__}"


_RUN = {"digital": _digital, "gradients": _gradients, "search": _search, "limit-choice": _limit_choice,
        "evaluate": _evaluate}

LIBRARY = "library"
"""The key of a task's library fingerprint (`library_fingerprint`), beside the job's own fields."""


@functools.cache
def library_fingerprint() -> str:
    """A hash of this process's weightprog source (every .py file under the package, by path and
    content): a worker whose library differs from the driver's (upgraded under a running study,
    another version on a Ray node) would mix two codes in one study, so it refuses its tasks."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def task(job: StudyJob) -> dict:
    """What the driver hands a worker: the job's fields and the driver's library fingerprint."""
    return job.to_dict() | {LIBRARY: library_fingerprint()}


def run_job(job: dict) -> dict:
    """The task a worker runs: a job in, its record out; an error becomes an error record (with the
    traceback), so one bad job never stops the study.

    Parameters
    ----------
    job
        `task(job)`: `StudyJob.to_dict()` and the driver's library fingerprint (`LIBRARY`; a worker
        whose own differs refuses the job), or `StudyJob.to_dict()` alone (not checked).

    Returns
    -------
    dict
        `id`, `job`, `run` (host, pid, version, wall time) and `result`, or `error` and `traceback`.
    """
    start = time.perf_counter()
    driver = job.get(LIBRARY)
    job = {k: v for k, v in job.items() if k != LIBRARY}  # the record keeps the job itself (plan.py compares it)
    j = StudyJob.from_dict(job)
    if driver is not None and driver != library_fingerprint():
        return {"id": j.id, "job": job, "run": _run_info(start),
                "error": f"LibraryChanged: this worker's weightprog source ({library_fingerprint()}) is not the "
                         f"study driver's ({driver}): it changed under the running study, or the workers run "
                         f"another copy; rerun the same command with one library everywhere"}
    try:
        with torch_threads(j.params.get("threads")):  # a worker owns its count: numbers do not depend on the engine
            result = _RUN[j.kind](j)
        return {"id": j.id, "job": job, "run": _run_info(start), "result": result}
    except Exception as exc:  # noqa: BLE001 - recorded, never raised: one job must not stop the others
        return {"id": j.id, "job": job, "run": _run_info(start), "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}


def _run_info(start: float) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "version": __version__, LIBRARY: library_fingerprint(),
            "torch": torch.__version__,
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "wall_time_s": time.perf_counter() - start}
