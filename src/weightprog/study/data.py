"""The study's numbers as small CSV files: every realisation's metric at every time, and the
per-example variance terms its intervals need (`StudyData`), built from the jobs' records
(`collect`) or read back from a folder (`StudyData.load`), e.g. the copy committed under docs/study/.

The per-example values themselves stay in the run folder (`jobs/*.pt`: up to 25 × 5 × 10,000 values
per strategy); what the intervals need from them is one number per strategy, time and comparison:
the variance over the N test examples of the realisation-averaged, linearised per-example values
(nn/stats.py), or of their difference for a paired comparison.
"""

from __future__ import annotations

import csv
import importlib
import io
from collections import defaultdict
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch

from ..errors import WeightprogError
from ..fileio import atomic_write_text
from ..nn.stats import linearised
from .jobs import StudyJob
from .plan import read_tensors

FP_DIGITAL = "FP digital"
"""The `versus` of a comparison with the FP model's digital metric on the same examples."""
PAIRS = (("optimised", "best hand-crafted"), ("optimised", "naive"), ("best hand-crafted", "naive"),
         ("limit", "optimised"), ("limit", "best hand-crafted"), ("limit", "naive"), ("optimised", FP_DIGITAL))
"""The paired comparisons of every cell (A versus B): the limit against every strategy, since it is
to be at least as good as each."""


@dataclass(frozen=True)
class RealisationRow:
    workload: str
    device: str
    variant: str
    role: str
    strategy: str
    realisation: int
    time_s: float
    metric: float
    periphery: str
    beside: bool
    """Run beside the study's own periphery (`StudySettings.beside`), at some of its times."""


@dataclass(frozen=True)
class TermRow:
    """The per-example variance term of one strategy (versus empty) or one comparison, at one time."""

    workload: str
    device: str
    variant: str
    role: str
    versus: str
    time_s: float
    examples: int
    example_var: float
    realisations: int
    """Realisations averaged per example (those common to both strategies of a comparison)."""
    periphery: str
    versus_periphery: str
    """The periphery of `versus` (empty for a strategy's own term): the same as `periphery` for a
    comparison of two strategies, the study's own for a strategy run beside it versus itself there."""


@dataclass(frozen=True)
class SearchRow:
    workload: str
    device: str
    variant: str
    role: str
    strategy: str
    method: str
    clips: bool
    significance: str
    tnmse: float
    select: str


@dataclass(frozen=True)
class DigitalRow:
    workload: str
    variant: str
    metric_name: str
    higher_is_better: bool
    examples: int
    value: float


@dataclass(frozen=True)
class GradientRow:
    workload: str
    variant: str
    layer: str
    """A layer's name, or `all` for every analog weight pooled."""
    r: float
    r_abs: float


TABLES = {"realisations.csv": RealisationRow, "example_terms.csv": TermRow, "searches.csv": SearchRow,
          "digital.csv": DigitalRow, "gradients.csv": GradientRow}


def _convert(text: str, kind: str, where: str):
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text not in ("True", "False"):
                raise ValueError(text)
            return text == "True"
    except ValueError:
        raise WeightprogError(f"{where}: expected {kind}, got {text!r}") from None
    return text


def _read(path: Path, cls) -> list:
    if not path.is_file():
        return []
    names = [f.name for f in fields(cls)]
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != names:
            raise WeightprogError(f"{path}: columns {reader.fieldnames} are not {names} (a study folder's "
                                  f"data is rewritten from its job records by rerunning its `weightprog study` "
                                  f"command, or weightprog.study.write_outputs(folder))")
        for i, row in enumerate(reader, start=2):
            rows.append(cls(*(_convert(row[f.name], str(f.type), f"{path}, line {i}, {f.name}")
                              for f in fields(cls))))
    return rows


def _csv(rows: list, cls) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(cls)])
    for row in rows:
        writer.writerow([repr(x) if isinstance(x, float) else x for x in astuple(row)])
    return out.getvalue()


@dataclass(frozen=True)
class StudyData:
    """Everything the study's tables and figures are computed from."""

    realisations: list[RealisationRow]
    terms: list[TermRow]
    searches: list[SearchRow]
    digital: list[DigitalRow]
    gradients: list[GradientRow]

    def write(self, folder: Path) -> None:
        """The five CSV files (atomically)."""
        tables: tuple[list, ...] = (self.realisations, self.terms, self.searches, self.digital, self.gradients)
        for (name, cls), rows in zip(TABLES.items(), tables):
            atomic_write_text(folder / name, _csv(rows, cls))

    @classmethod
    def load(cls, folder: Path) -> StudyData:
        """Read the CSV files of `folder` (a missing file: no rows)."""
        return cls(*(_read(folder / name, kind) for name, kind in TABLES.items()))


# --- from the jobs' records ----------------------------------------------------------------------

def _aggregate(name: str | None):
    """A workload's aggregate by `module:name`; only weightprog's own functions are looked up."""
    if name is None:
        return None
    module, _, attr = name.partition(":")
    if not module.startswith("weightprog."):
        raise WeightprogError(f"aggregate {name!r}: not a weightprog function")
    return getattr(importlib.import_module(module), attr)


def collect(out: Path, records: dict[str, dict]) -> StudyData:
    """The study's CSV rows from its finished jobs' records (by job id; tensors read from `out/jobs`)."""
    digital: dict[tuple[str, str], dict] = {}
    digital_rows, gradient_rows, search_rows, rows = [], [], [], []
    blocks: dict[Block, dict[tuple[int, int], torch.Tensor]] = defaultdict(dict)
    for jid, rec in sorted(records.items()):
        job, res = StudyJob.from_dict(rec["job"]), rec["result"]
        if job.kind == "digital":
            ex = read_tensors(out, jid, rec).get("examples")
            digital[(job.workload, job.variant)] = {**res, "examples": ex}
            digital_rows.append(DigitalRow(job.workload, job.variant, res["metric"], res["higher_is_better"],
                                           0 if ex is None else ex.numel(), res["value"]))
        elif job.kind == "gradients":
            gradient_rows.append(GradientRow(job.workload, job.variant, "all", res["r"], res["r_abs"]))
            gradient_rows += [GradientRow(job.workload, job.variant, x["name"], x["r"], x["r_abs"])
                              for x in res["layers"]]
        elif job.kind == "limit-choice":  # its choice is in the limit's evaluation records too
            continue
        elif job.kind == "search":
            for role, s in res["strategies"].items():
                if role == "naive":  # in records of the first runs: not searched, and not a search row
                    continue
                sig = ",".join(f"{x:g}" for x in s["significance"]) if "significance" in s else ""
                search_rows.append(SearchRow(job.workload, str(job.device), job.variant, role, s.get("name", role),
                                             res["method"] if role == "optimised" else "hand-crafted",
                                             bool(res["clips"]) if role == "optimised" else False, sig,
                                             float(res["tnmse"][role]), res["select"]))
        else:
            times, periphery = job.params["times_s"], job.params["periphery"]
            for i, values in enumerate(res["metrics"]):
                rows += [RealisationRow(job.workload, str(job.device), job.variant, str(job.role), res["label"],
                                        job.first + i, float(t), float(m), periphery, job.beside)
                         for t, m in zip(times, values)]
            sums = read_tensors(out, jid, rec).get("example_sums")
            if sums is not None:
                blocks[Block(job.workload, str(job.device), job.variant, str(job.role), tuple(times), periphery,
                             job.beside)][(job.first, job.count)] = sums
    terms = _terms(blocks, digital)
    return StudyData(rows, terms, search_rows, digital_rows, gradient_rows)


class Block(NamedTuple):
    """The realisation blocks of one strategy under one periphery, at the times its jobs ran."""

    workload: str
    device: str
    variant: str
    role: str
    times: tuple[float, ...]
    periphery: str
    beside: bool


def _linearised(sums: dict[tuple[int, int], torch.Tensor], k: int, keep: set, aggregate) -> torch.Tensor:
    """(N,) per-example values at time index k, averaged over the realisations of the blocks
    `keep` ((first, count) -> (T, N) sums), linearised through the aggregate."""
    mean = sum(sums[b][k] for b in keep) / sum(c for (_, c) in keep)
    return linearised(mean.unsqueeze(0), aggregate)


def _terms(blocks: dict[Block, dict], digital: dict) -> list[TermRow]:
    """Each strategy's and each comparison's per-example variance at each time: PAIRS under one
    periphery, and each strategy run beside the study's periphery versus itself there."""
    out = []
    main = {(k.workload, k.device, k.variant, k.role): k for k in blocks if not k.beside}
    for key, got in blocks.items():
        w, d, v, role, times, periphery, beside = key
        agg = _aggregate(digital.get((w, "fp"), digital.get((w, v), {})).get("aggregate"))
        for k, t in enumerate(times):
            own = _linearised(got, k, set(got), agg)
            out.append(TermRow(w, d, v, role, "", t, own.numel(), float(own.var()), sum(c for _, c in got),
                               periphery, ""))
            versus: list[tuple[str, Block | None]] = [(b, None) for a, b in PAIRS if a == role and not beside]
            if beside and (w, d, v, role) in main:
                versus.append((role, main[(w, d, v, role)]))
            for b, other_key in versus:
                if b == FP_DIGITAL:
                    ref = digital.get((w, "fp"), {}).get("examples")
                    if ref is None:
                        continue
                    diff, common = own - linearised(ref.unsqueeze(0), agg), set(got)
                    other_periphery = ""
                else:
                    other_key = other_key or Block(w, d, v, b, times, periphery, False)
                    other = blocks.get(other_key)
                    common = set(got) & set(other or {})
                    if other is None or not common or t not in other_key.times:
                        continue
                    k_other = other_key.times.index(t)
                    diff = _linearised(got, k, common, agg) - _linearised(other, k_other, common, agg)
                    other_periphery = other_key.periphery
                out.append(TermRow(w, d, v, role, b, t, diff.numel(), float(diff.var()), sum(c for _, c in common),
                                   periphery, other_periphery))
    return out
