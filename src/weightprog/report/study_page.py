"""report.html of a study folder, from its plan (study.json) and its jobs' records: a partial
study draws what it has, and says how many jobs are left."""

from __future__ import annotations

from pathlib import Path

from ..devices import get_device
from ..errors import WeightprogError
from ..study.run import read_state
from ..study.tables import markdown, paired_rows, summary_rows
from ..timeunits import format_time
from .page import (
    RunCommand,
    card,
    device_curves_figure,
    device_row,
    esc,
    files_section,
    kv_table,
    page,
    png_figure,
    reproduce_section,
    section,
    table,
    times_text,
)


def markdown_html(text: str) -> str:
    """The subset of markdown the study writes: ### headings, pipe tables, paragraphs."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush():
        if rows:
            out.append(table(rows[0], rows[1:], set()))
            rows.clear()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        flush()
        if line.startswith("#"):
            out.append(f"<h3>{esc(line.lstrip('#').strip())}</h3>")
        elif line:
            out.append(f"<p>{esc(line)}</p>")
    flush()
    return "".join(out)


def _cards(state) -> str:
    """Per cell: the optimised strategy at the last time, with its interval and its verdicts."""
    rows = [r for r in summary_rows(state.data) if r.role == "optimised" and not r.beside]
    paired = {(p.workload, p.device, p.variant, p.versus, p.time_s): p for p in paired_rows(state.data)
              if p.strategy == "optimised" and p.versus != p.strategy}
    cards = []
    for r in rows:
        if r.time_s != max(x.time_s for x in rows if (x.workload, x.device, x.variant) ==
                           (r.workload, r.device, r.variant)):
            continue
        subs = []
        for versus in ("FP digital", "best hand-crafted", "naive"):
            p = paired.get((r.workload, r.device, r.variant, versus, r.time_s))
            if p is not None:
                subs.append(f"vs {versus}: {p.diff:+.4g} [{p.ci_low:+.4g}, {p.ci_high:+.4g}] {p.verdict}")
        cards.append(card(f"{r.workload} {r.variant.upper()} on {r.device}: optimised at {format_time(r.time_s)}",
                          esc(f"{r.mean:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]"), esc("; ".join(subs))))
    return '<div class="cards">' + "".join(cards) + "</div>"


def study_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    state = read_state(folder)
    if state is None:
        raise WeightprogError(f"{folder}: no study.json (a study written before weightprog ran studies as jobs: "
                              f"rerun `weightprog study` into a new folder)")
    st = state.settings
    question = (f"Do the reference workloads ({esc(', '.join(st['workloads']))}) keep their metric from "
                f"{esc(format_time(st['times_s'][0]))} to {esc(format_time(st['times_s'][-1]))} after programming: "
                f"naive vs best hand-crafted vs optimised vs the device's limit "
                f"({esc(' and '.join(v.upper() for v in st['variants']))}-trained)?")
    status = "" if state.done else f"<p><b>{state.finished} of {len(state.planned)} jobs finished</b>: " \
                                   f"rerun the same command to resume.</p>"
    devices = [get_device(d).describe() for d in st["devices"]]
    inputs = kv_table([
        ("workloads", ", ".join(st["workloads"])),
        ("devices", "; ".join(device_row(d) for d in devices)),
        ("times after programming", times_text(st["times_s"])),
        ("realisations", f"{st['repeats']} per strategy, in jobs of {st['block']}"),
        ("periphery", st["periphery"]),
        ("strategies", ", ".join(st["roles"])),
        ("choice of the optimised strategy", f"{st['select']} ({st['network_repeats']} realisations per candidate "
                                             f"on held-out data)" if st["select"] != "tnmse" else st["select"]),
        ("search", f"popsize {st['popsize']}, {st['max_generations']} generations per F, F = 1…{st['f_max']}, "
                   f"{st['sample_size']} sampled weights, polish {st['polish_steps']} steps, searched on "
                   f"{st['search_on']}"),
        ("seed", st["seed"]),
    ])
    figures = "".join(png_figure(p, f"{p.stem}: mean and 95 % interval per strategy, FP digital dotted")
                      for p in sorted((folder / "figures").glob("*_metric_vs_time.png")))
    sections = [section("Result", status + _cards(state)),
                section("Question and inputs", inputs + device_curves_figure(devices)),
                section("Figures", figures),
                section("Tables", markdown_html(markdown(state.data)) + '<p class="note">Every realisation and '
                        'the intervals\' terms: data/*.csv; every job: jobs/.</p>'),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog study: {', '.join(st['workloads'])}", question, state.done, sections), state.done
