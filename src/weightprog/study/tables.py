"""The study's tables from its data (`StudyData`): each strategy's metric with its 95 % interval
(`summary_rows`), the paired comparisons with their verdicts (`paired_rows`), and the Markdown
that summary.md and docs/RESULTS.md hold (`markdown`). Pure functions of the CSV files: the
committed copy under docs/study/ rebuilds docs/RESULTS.md's tables exactly."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import astuple, dataclass, fields

import torch

from ..nn.stats import interval_from_terms
from ..timeunits import format_time
from .data import FP_DIGITAL, PAIRS, StudyData
from .settings import ROLES


@dataclass(frozen=True)
class SummaryRow:
    """One strategy of one cell at one time: the mean over realisations and its 95 % interval."""

    workload: str
    device: str
    variant: str
    role: str
    strategy: str
    time_s: float
    mean: float
    ci_low: float
    ci_high: float
    realisations: int
    examples: int
    interval_over: str
    fp_digital: float | None
    """The FP model's digital metric on the same test items (the criteria's reference)."""


@dataclass(frozen=True)
class PairedRow:
    """A − B on common realisations and examples at one time, with its interval and verdict for A."""

    workload: str
    device: str
    variant: str
    strategy: str
    versus: str
    time_s: float
    diff: float
    ci_low: float
    ci_high: float
    verdict: str
    realisations: int


def _cells(data: StudyData) -> dict[tuple, dict[int, dict[float, float]]]:
    """(workload, device, variant, role) -> realisation -> time -> metric."""
    out: dict[tuple, dict[int, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in data.realisations:
        out[(r.workload, r.device, r.variant, r.role)][r.realisation][r.time_s] = r.metric
    return out


def _direction(data: StudyData) -> dict[str, bool]:
    return {d.workload: d.higher_is_better for d in data.digital}


def fp_digital(data: StudyData) -> dict[str, float]:
    """The FP model's digital metric per workload."""
    return {d.workload: d.value for d in data.digital if d.variant == "fp"}


def summary_rows(data: StudyData) -> list[SummaryRow]:
    """Every (cell, strategy, time) with its mean and 95 % interval (over realisations, and over
    examples where the per-example term is there)."""
    terms = {(t.workload, t.device, t.variant, t.role, t.time_s): t for t in data.terms if not t.versus}
    labels = {(r.workload, r.device, r.variant, r.role): r.strategy for r in data.realisations}
    ref = fp_digital(data)
    rows = []
    for key, by_r in _cells(data).items():
        w, d, v, role = key
        times = sorted({t for m in by_r.values() for t in m})
        for t in times:
            values = torch.tensor([m[t] for m in by_r.values() if t in m], dtype=torch.float64)
            term = terms.get((*key, t))
            iv = interval_from_terms(float(values.mean()), values, None if term is None else term.example_var,
                                     0 if term is None else term.examples)
            rows.append(SummaryRow(w, d, v, role, labels[key], t, iv.mean, iv.low, iv.high, values.numel(),
                                   0 if term is None else term.examples, iv.over, ref.get(w)))
    return sorted(rows, key=_order)


def paired_rows(data: StudyData) -> list[PairedRow]:
    """Every comparison of PAIRS in every cell and time: the difference A − B on common
    realisations, its 95 % interval, and the verdict for A (better, worse or unresolved, in the
    metric's direction)."""
    cells = _cells(data)
    terms = {(t.workload, t.device, t.variant, t.role, t.versus, t.time_s): t for t in data.terms if t.versus}
    higher, ref = _direction(data), fp_digital(data)
    rows = []
    for (w, d, v, role), by_r in cells.items():
        for a, b in PAIRS:
            if a != role or (b != FP_DIGITAL and (w, d, v, b) not in cells) or (b == FP_DIGITAL and w not in ref):
                continue
            other = cells.get((w, d, v, b), {})
            for t in sorted({t for m in by_r.values() for t in m}):
                if b == FP_DIGITAL:
                    diffs = [m[t] - ref[w] for m in by_r.values() if t in m]
                else:
                    diffs = [m[t] - other[r][t] for r, m in by_r.items() if t in m and t in other.get(r, {})]
                if not diffs:
                    continue
                term = terms.get((w, d, v, a, b, t))
                x = torch.tensor(diffs, dtype=torch.float64)
                iv = interval_from_terms(float(x.mean()), x, None if term is None else term.example_var,
                                         0 if term is None else term.examples)
                rows.append(PairedRow(w, d, v, a, b, t, iv.mean, iv.low, iv.high,
                                      iv.verdict(higher.get(w, True)), x.numel()))
    return sorted(rows, key=lambda r: (r.workload, r.device, r.variant, PAIRS.index((r.strategy, r.versus)),
                                       r.time_s))


def _order(row: SummaryRow) -> tuple:
    return (row.workload, row.device, row.variant, ROLES.index(row.role), row.time_s)


def rows_csv(rows: list) -> str:
    """results.csv / paired.csv: one line per row, every field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(rows[0])] if rows else [])
    for row in rows:
        writer.writerow(astuple(row))
    return out.getvalue()


# --- Markdown --------------------------------------------------------------------------------------

def _num(x: float, big: bool) -> str:
    return f"{x:.1f}" if big else f"{x:.3f}"


def _cell(row: SummaryRow) -> str:
    big = abs(row.mean) >= 10
    return f"{_num(row.mean, big)} [{_num(row.ci_low, big)}, {_num(row.ci_high, big)}]"


def _diff(row: PairedRow, higher: bool) -> str:
    """A difference in points (accuracy, a fraction: × 100) or in the metric's units (perplexity),
    with its interval and verdict."""
    scale = 100.0 if higher else 1.0
    return f"{scale * row.diff:+.2f} [{scale * row.ci_low:+.2f}, {scale * row.ci_high:+.2f}] {row.verdict}"


def markdown(data: StudyData) -> str:
    """The study's tables: per workload, each strategy's metric over time with its 95 % interval,
    the paired comparisons with their verdicts, the searches, and the gradient correlation."""
    summary, paired = summary_rows(data), paired_rows(data)
    higher, ref = _direction(data), fp_digital(data)
    digital = {(d.workload, d.variant): d for d in data.digital}
    md: list[str] = []
    for w in sorted({r.workload for r in summary}):
        rows = [r for r in summary if r.workload == w]
        times = sorted({r.time_s for r in rows})
        hib = higher.get(w, True)
        fp = digital.get((w, "fp"))
        name = fp.metric_name if fp else "metric"
        md.append(f"### {w}: {name} ({'higher' if hib else 'lower'} is better), "
                  f"{rows[0].examples or '?'} test items\n")
        md.append(f"Mean over realisations [95 % interval over {rows[0].interval_over}]; FP digital "
                  f"{ref[w]:.4g}." if w in ref else "Mean over realisations [95 % interval].")
        md.append("")
        md.append("| device | trained | strategy | R | digital | " + " | ".join(format_time(t) for t in times) + " |")
        md.append("|---|---|---|---|---|" + "---|" * len(times))
        by_key: dict[tuple, dict[float, SummaryRow]] = defaultdict(dict)
        for r in rows:
            by_key[(r.device, r.variant, r.role, r.strategy)][r.time_s] = r
        for (d, v, role, label), at in by_key.items():
            dig = digital.get((w, v))
            cells = " | ".join(_cell(at[t]) if t in at else "—" for t in times)
            md.append(f"| {d} | {v} | {role}: {label} | {max(x.realisations for x in at.values())} | "
                      f"{dig.value:.4g} | {cells} |" if dig else f"| {d} | {v} | {role}: {label} | — | {cells} |")
        pr = [p for p in paired if p.workload == w]
        if pr:
            unit = "points" if hib else name
            md.append(f"\nPaired differences A − B ({unit}) [95 % interval], verdict for A:\n")
            md.append("| device | trained | A − B | " + " | ".join(format_time(t) for t in times) + " |")
            md.append("|---|---|---|" + "---|" * len(times))
            by_pair: dict[tuple, dict[float, PairedRow]] = defaultdict(dict)
            for p in pr:
                by_pair[(p.device, p.variant, p.strategy, p.versus)][p.time_s] = p
            for (d, v, a, b), pairs_at in by_pair.items():
                cells = " | ".join(_diff(pairs_at[t], hib) if t in pairs_at else "—" for t in times)
                md.append(f"| {d} | {v} | {a} − {b} | {cells} |")
        searches = [s for s in data.searches if s.workload == w]
        if searches:
            md.append("\nStrategies searched for these times (optimised: chosen by "
                      f"{searches[0].select} among the search's candidates):\n")
            md.append("| device | searched on | strategy | method | F | clips | TNMSE |")
            md.append("|---|---|---|---|---|---|---|")
            for s in searches:
                md.append(f"| {s.device} | {s.variant} | {s.role}: {s.strategy} | {s.method} | {s.significance} | "
                          f"{'yes' if s.clips else 'no'} | {s.tnmse:.3e} |")
        grads = [g for g in data.gradients if g.workload == w]
        if grads:
            pooled = next(g for g in grads if g.layer == "all")
            layers = [g for g in grads if g.layer != "all"]
            md.append(f"\nGradient–weight correlation ({pooled.variant.upper()} model, one batch): pooled "
                      f"r = {pooled.r:+.3f}, r(|W|) = {pooled.r_abs:+.3f}; per layer r from "
                      f"{min(g.r for g in layers):+.3f} to {max(g.r for g in layers):+.3f} "
                      f"({len(layers)} layers).\n" if layers else "")
        md.append("")
    return "\n".join(md).rstrip() + "\n"
