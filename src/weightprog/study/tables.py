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
    periphery: str
    beside: bool
    """Run beside the study's own periphery, at some of its times (`StudySettings.beside`)."""


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
    periphery: str
    versus_periphery: str
    """The periphery of `versus`: `periphery` for two strategies, the study's own for a strategy
    run beside it versus itself there (`strategy` = `versus`); empty for the FP digital metric."""


Cell = tuple[str, str, str, str, str, bool]
"""(workload, device, variant, role, periphery, beside)."""


def _cells(data: StudyData) -> dict[Cell, dict[int, dict[float, float]]]:
    """Cell -> realisation -> time -> metric."""
    out: dict[Cell, dict[int, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in data.realisations:
        out[(r.workload, r.device, r.variant, r.role, r.periphery, r.beside)][r.realisation][r.time_s] = r.metric
    return out


def _direction(data: StudyData) -> dict[str, bool]:
    return {d.workload: d.higher_is_better for d in data.digital}


def fp_digital(data: StudyData) -> dict[str, float]:
    """The FP model's digital metric per workload."""
    return {d.workload: d.value for d in data.digital if d.variant == "fp"}


def summary_rows(data: StudyData) -> list[SummaryRow]:
    """Every (cell, strategy, time) with its mean and 95 % interval (over realisations, and over
    examples where the per-example term is there)."""
    terms = {(t.workload, t.device, t.variant, t.role, t.periphery, t.time_s): t for t in data.terms if not t.versus}
    labels = {(r.workload, r.device, r.variant, r.role): r.strategy for r in data.realisations}
    ref = fp_digital(data)
    rows = []
    for key, by_r in _cells(data).items():
        w, d, v, role, periphery, beside = key
        times = sorted({t for m in by_r.values() for t in m})
        for t in times:
            values = torch.tensor([m[t] for m in by_r.values() if t in m], dtype=torch.float64)
            term = terms.get((w, d, v, role, periphery, t))
            iv = interval_from_terms(float(values.mean()), values, None if term is None else term.example_var,
                                     0 if term is None else term.examples)
            rows.append(SummaryRow(w, d, v, role, labels[(w, d, v, role)], t, iv.mean, iv.low, iv.high,
                                   values.numel(), 0 if term is None else term.examples, iv.over, ref.get(w),
                                   periphery, beside))
    return sorted(rows, key=_order)


def paired_rows(data: StudyData) -> list[PairedRow]:
    """Every comparison of PAIRS in every cell and time under the study's periphery, and each
    strategy run beside it versus itself under the study's periphery: the difference A − B on
    common realisations, its 95 % interval, and the verdict for A (better, worse or unresolved, in
    the metric's direction)."""
    cells = _cells(data)
    terms = {(t.workload, t.device, t.variant, t.role, t.versus, t.periphery, t.time_s): t
             for t in data.terms if t.versus}
    higher, ref = _direction(data), fp_digital(data)
    main = {(w, d, v, role): (w, d, v, role, p, False) for (w, d, v, role, p, beside) in cells if not beside}
    rows = []
    for (w, d, v, role, periphery, beside), by_r in cells.items():
        if beside:
            versus: list[tuple[str, Cell | None]] = [(role, main.get((w, d, v, role)))]
        else:
            versus = [(b, None if b == FP_DIGITAL else (w, d, v, b, periphery, False)) for a, b in PAIRS if a == role]
        for b, other_cell in versus:
            if (b == FP_DIGITAL and w not in ref) or (b != FP_DIGITAL and other_cell not in cells):
                continue
            other = cells.get(other_cell, {}) if other_cell else {}
            for t in sorted({t for m in by_r.values() for t in m}):
                if b == FP_DIGITAL:
                    diffs = [m[t] - ref[w] for m in by_r.values() if t in m]
                else:
                    diffs = [m[t] - other[r][t] for r, m in by_r.items() if t in m and t in other.get(r, {})]
                if not diffs:
                    continue
                term = terms.get((w, d, v, role, b, periphery, t))
                x = torch.tensor(diffs, dtype=torch.float64)
                iv = interval_from_terms(float(x.mean()), x, None if term is None else term.example_var,
                                         0 if term is None else term.examples)
                rows.append(PairedRow(w, d, v, role, b, t, iv.mean, iv.low, iv.high, iv.verdict(higher.get(w, True)),
                                      x.numel(), periphery, other_cell[4] if other_cell else ""))
    return sorted(rows, key=_paired_order)


def _paired_order(row: PairedRow) -> tuple:
    beside = row.strategy == row.versus
    return (row.workload, row.device, row.variant, beside,
            ROLES.index(row.strategy) if beside else PAIRS.index((row.strategy, row.versus)), row.periphery,
            row.time_s)


def _order(row: SummaryRow) -> tuple:
    return (row.workload, row.device, row.variant, row.beside, row.periphery, ROLES.index(row.role), row.time_s)


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
        rows = [r for r in summary if r.workload == w and not r.beside]
        if not rows:
            continue
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
        pr = [p for p in paired if p.workload == w and p.strategy != p.versus]
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
        md += _beside_table([r for r in summary if r.workload == w], [p for p in paired if p.workload == w], hib)
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


def _beside_table(summary: list[SummaryRow], paired: list[PairedRow], higher: bool) -> list[str]:
    """Markdown lines: each strategy under each periphery run beside the study's own, at its times,
    against itself under the study's periphery (paired); none without such runs."""
    beside = [r for r in summary if r.beside]
    if not beside:
        return []
    main = {(r.device, r.variant, r.role, r.time_s): r for r in summary if not r.beside}
    diffs = {(p.device, p.variant, p.strategy, p.periphery, p.time_s): p for p in paired if p.strategy == p.versus}
    own = next(iter(main.values())).periphery if main else "?"
    unit = "points" if higher else "the metric's units"
    md = [f"\nBeside `{own}`: each strategy under another periphery at some times, and its difference from "
          f"itself under `{own}` on the same realisations and examples ({unit}) [95 % interval], verdict for the "
          f"other periphery:\n",
          f"| device | trained | strategy | time | {own} | periphery | there | there − {own} |",
          "|---|---|---|---|---|---|---|---|"]
    for r in beside:
        m, p = main.get((r.device, r.variant, r.role, r.time_s)), diffs.get((r.device, r.variant, r.role,
                                                                            r.periphery, r.time_s))
        md.append(f"| {r.device} | {r.variant} | {r.role}: {r.strategy} | {format_time(r.time_s)} | "
                  f"{_cell(m) if m else '—'} | {r.periphery} | {_cell(r)} | {_diff(p, higher) if p else '—'} |")
    return md
