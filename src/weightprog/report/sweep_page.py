"""report.html of a sweep folder, built from its sweep.json (`SweepManifest`), its job records and summary.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from ..records.sweep import SweepManifest, job_error
from .page import (
    RunCommand,
    card,
    esc,
    files_section,
    fmt,
    kv_table,
    page,
    png_figure,
    read_json,
    reproduce_section,
    section,
    table,
)

COLUMNS = ["id", "kind", "device", "pairs", "significance", "grid_points", "times", "weights", "seed", "cell",
           "tnmse_optimised", "stderr_optimised", "best_hand_crafted", "tnmse_best_hand",
           "improvement_vs_best_hand", "rank_by_optimum", "rank_by_naive", "wall_time_s"]
"""The columns of summary.csv the page shows."""


def _status(folder: Path, meta: SweepManifest) -> tuple[list[str], dict[str, str]]:
    """The finished jobs, and the failed ones with their errors."""
    done, failed = [], {}
    for jid in meta.job_ids:
        rec = folder / "jobs" / f"{jid}.json"
        err = folder / "jobs" / f"{jid}.error.json"
        if rec.is_file() and "result" in read_json(rec):
            done.append(jid)
        elif err.is_file():
            failed[jid] = job_error(err)
    return done, failed


def _cell(c: str, v: str) -> str:
    if c in ("tnmse_optimised", "stderr_optimised", "tnmse_best_hand") and v:
        return fmt(float(v))
    if c == "improvement_vs_best_hand" and v:
        return f"{100 * float(v):.1f} %"
    return v


def sweep_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    meta = SweepManifest.from_json(read_json(folder / "sweep.json"))
    jobs = meta.job_ids
    done, failed = _status(folder, meta)
    pending = len(jobs) - len(done) - len(failed)
    rows: list[dict[str, str]] = []
    if (folder / "summary.csv").is_file():
        with open(folder / "summary.csv", newline="") as f:
            rows = [{c: (row[c] or "") if c in row else "" for c in COLUMNS}
                    for row in csv.DictReader(f)]
    question = (f"Sweep {esc(meta.name)} ({esc(meta.source)}): how do the optimised strategy and the "
                "best hand-crafted one compare across its configurations?")
    gains = [float(r["improvement_vs_best_hand"]) for r in rows if r["improvement_vs_best_hand"]]
    cards = [card("jobs finished", f"{len(done)} of {len(jobs)}", f"{len(failed)} failed, {pending} pending")]
    if gains:
        cards.append(card("optimised vs best hand-crafted", f"{100 * min(gains):.1f} … {100 * max(gains):.1f} %",
                          f"lower TNMSE, over {len(gains)} rows of summary.csv"))
    headline = '<div class="cards">' + "".join(cards) + "</div>"
    tables = ("<h3>Every finished job (summary.csv)</h3>"
              + table([c.replace("_", " ") for c in COLUMNS], [[_cell(c, r[c]) for c in COLUMNS] for r in rows],
                      {10, 11, 13, 14, 17}))
    if failed:
        tables += "<h3>Failed jobs</h3>" + table(["job", "error (traceback in jobs/&lt;id&gt;.error.json)"],
                                                 [[k, v] for k, v in failed.items()])
    inputs = kv_table([("sweep file", meta.source), ("jobs", len(jobs)), ("kinds", ", ".join(meta.kinds)),
                       ("weightprog version", meta.weightprog_version),
                       ("wall time", f"{fmt(sum(float(r['wall_time_s']) for r in rows if r['wall_time_s']))} s "
                                     "(sum over finished jobs)" if rows else None)])
    figures = png_figure(folder / "summary.png",
                         "optimised (filled) vs best hand-crafted (ring) TNMSE per configuration")
    finished = not failed and pending == 0
    sections = [section("Result", headline), section("Question and inputs", inputs), section("Figures", figures),
                section("Tables", tables), reproduce_section(command), files_section(folder)]
    status = "finished" if finished else f"{len(done)} of {len(jobs)} jobs finished"
    return page(f"weightprog sweep: {meta.name}", question, finished, sections, status), finished
