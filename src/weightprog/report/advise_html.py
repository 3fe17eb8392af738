"""report.html of `weightprog device advise` and `weightprog device flipmap` folders, built from
their advice.json / flipmap.json with the shared page pieces of report/page.py."""

from __future__ import annotations

from pathlib import Path

from ..flipcheck import PairedChange
from ..records.advice import ADVICE_FILE, FLIPMAP_FILE, read_advice_record, read_flip_map_record
from ..records.flipsearch import FILE as SEARCH_FILE
from ..records.flipsearch import read_flip_search_record
from .page import (
    Raw,
    RunCommand,
    cell_text,
    esc,
    files_section,
    fmt,
    kv_table,
    num,
    page,
    pct,
    png_figure,
    reproduce_section,
    section,
    table,
    times_text,
)


def advise_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    r = read_advice_record(folder)
    b, file = r.base, ADVICE_FILE
    question = (f"Which property of device {esc(r.device)} should be improved to lower the weight error "
                f"of {esc(r.weights or 'the weights')} once the strategy is re-optimised, and does naive "
                f"programming tell the same story? Each property improved by {esc(pct(r.improvement))[1:]}.")
    rows = []
    for i, p in enumerate(r.properties):
        change = p.change
        row = [p.label, f"×{p.factor:g}",
               Raw(num(change.optimised, f"/properties/{i}/change_optimised", file, pct(change.optimised))),
               pct(change.naive), pct(change.hand_crafted)]
        if r.with_bound:
            row.append(pct(change.bound) if change.bound is not None else "n/a")
        row += [f"{p.elasticity.optimised:+.3f}", f"{p.elasticity.naive:+.3f}", cell_text(p.scores.cell)]
        rows.append(row)
    header = (["property", "step", "Δ optimised", "Δ naive", "Δ best hand-crafted"]
              + (["Δ bound"] if r.with_bound else [])
              + ["elasticity optimised", "elasticity naive", "cell after"])
    headline = ("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in r.words) + "</ul>"
                + table(header, rows, set(range(1, len(header) - 1))))
    s = r.settings
    inputs = kv_table([
        ("device", r.device), ("weights", r.weights),
        ("base device", Raw(
            f"naive {num(b.naive.mean, '/base/naive/mean', file)}, best hand-crafted "
            f"{esc(fmt(b.hand_crafted.mean))} ({esc(b.hand_crafted_name)}), optimised "
            f"{num(b.optimised.mean, '/base/optimised/mean', file)} (cell {esc(cell_text(b.cell))})"
            + (f", bound {esc(fmt(b.bound))}" if r.with_bound else ""))),
        ("times after programming", times_text(r.times_s)),
        ("cell", f"{s.pairs} pair(s), F = 1…{s.f_max} searched" if s.significance is None
         else cell_text(s.significance)),
        ("seed", s.seed), ("wall time", f"{fmt(r.wall_time_s)} s"),
    ])
    sections = [section("Result", headline), section("Question and inputs", inputs),
                section("Figure", png_figure(folder / "advice.png", "change of the weight error per improved "
                                             "property: re-optimised vs naive")),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog device advise: {r.device}", question, True, sections), True


def flipmap_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    if (folder / SEARCH_FILE).is_file():
        return flipsearch_page(folder, command)
    r = read_flip_map_record(folder)
    x, y = r.x.prop, r.y.prop
    question = (f"Scaled variants of {esc(r.base)} over {esc(x)} × {esc(y)}: where does "
                f"comparing them with {esc(r.base)} under naive programming disagree with comparing them at "
                f"their optimum (the paper's Fig. 5 question)?")
    counts = table(["verdict", "devices"], [[k, Raw(num(v, f"/counts/{k}", FLIPMAP_FILE))]
                                            for k, v in r.counts.items()], {1})
    points = table([x, y, "Δ naive", "Δ optimised", "verdict"],
                   [[p.point.x, p.point.y, pct(p.point.naive_change), pct(p.point.optimised_change), p.verdict]
                    for p in r.points], {0, 1, 2, 3})
    sections = [section("Result", f"<p><strong>{esc(r.sentence)}</strong></p>" + counts),
                section("Figure", png_figure(folder / "flipmap.png", "verdict per scaled device; each cell: "
                                             "change of the optimised (top) and naive (bottom) weight error, %")),
                section("Every device", points
                        + '<p class="note">Each optimisation is a job of the sweep in this folder (sweep.json, '
                          'jobs/); better or worse only beyond 2 standard errors of the change.</p>'),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog device flipmap: {r.base}", question, True, sections), True


def flipsearch_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    """`device flipmap --search`: the sentence, the checks and the figure."""
    r = read_flip_search_record(folder)
    lo, hi = r.plan.bounds
    question = (f"Is there a scaled {esc(r.base)} (programming noise, drift mean, drift spread, read noise and "
                f"range each ×{lo:g}…{hi:g}) that naive programming ranks against {esc(r.base)} one way and "
                f"optimal programming the other (the paper's Fig. 5 question)?")
    checks = table(["direction searched", "device", "expected margin", "Δ naive", "Δ optimised", "verdict"],
                   [[s.direction, c.device, f"{100 * c.trial.margin:+.2f} %", _pm(c.naive), _pm(c.optimised), c.verdict]
                    for s, c in zip(r.searches, r.checks)], {2, 3, 4})
    sections = [section("Result", f"<p><strong>{esc(r.sentence)}</strong></p>" + checks
                        + '<p class="note">Δ: re-scored TNMSE change against the base, ± one paired standard '
                          'error (same samples and draws); a verdict needs 2.</p>'),
                section("Figure", png_figure(folder / "flipsearch.png", "every scaled device searched: expected "
                                             "change naive vs optimised; black: the checked candidates")),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog device flipmap --search: {r.base}", question, True, sections), True


def _pm(change: PairedChange) -> str:
    return f"{100 * change.change:+.2f} ± {100 * change.stderr:.2f} %"
