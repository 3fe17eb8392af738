"""report.html of `weightprog device advise` and `weightprog device flipmap` folders, built from
their advice.json / flipmap.json with the shared page pieces of report/page.py."""

from __future__ import annotations

from pathlib import Path

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
    read_json,
    reproduce_section,
    section,
    table,
    times_text,
)


def advise_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    r = read_json(folder / "advice.json")
    b = r["base"]
    question = (f"Which property of device {esc(r['device'])} should be improved to lower the weight error "
                f"of {esc(r.get('weights', 'the weights'))} once the strategy is re-optimised, and does naive "
                f"programming tell the same story? Each property improved by {esc(pct(r['improvement']))[1:]}.")
    with_bound = b.get("bound") is not None
    rows = []
    for i, p in enumerate(r["properties"]):
        row = [p["label"], f"×{p['factor']:g}",
               Raw(num(p["change_optimised"], f"/properties/{i}/change_optimised", "advice.json",
                       pct(p["change_optimised"]))),
               pct(p["change_naive"]), pct(p["change_hand_crafted"])]
        if with_bound:
            row.append(pct(p["change_bound"]))
        row += [f"{p['elasticity_optimised']:+.3f}", f"{p['elasticity_naive']:+.3f}", cell_text(p["scores"]["cell"])]
        rows.append(row)
    header = (["property", "step", "Δ optimised", "Δ naive", "Δ best hand-crafted"]
              + (["Δ bound"] if with_bound else [])
              + ["elasticity optimised", "elasticity naive", "cell after"])
    headline = ("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in r["words"]) + "</ul>"
                + table(header, rows, set(range(1, len(header) - 1))))
    s = r.get("settings", {})
    inputs = kv_table([
        ("device", r["device"]), ("weights", r.get("weights")),
        ("base device", Raw(
            f"naive {num(b['naive']['mean'], '/base/naive/mean', 'advice.json')}, best hand-crafted "
            f"{esc(fmt(b['hand_crafted']['mean']))} ({esc(b['hand_crafted_name'])}), optimised "
            f"{num(b['optimised']['mean'], '/base/optimised/mean', 'advice.json')} (cell {esc(cell_text(b['cell']))})"
            + (f", bound {esc(fmt(b['bound']))}" if with_bound else ""))),
        ("times after programming", times_text(r["times_s"])),
        ("cell", f"{s.get('pairs')} pair(s), F = 1…{s.get('f_max')} searched" if s.get("significance") is None
         else cell_text(s["significance"])),
        ("seed", s.get("seed")), ("wall time", f"{fmt(r['wall_time_s'])} s"),
    ])
    sections = [section("Result", headline), section("Question and inputs", inputs),
                section("Figure", png_figure(folder / "advice.png", "change of the weight error per improved "
                                             "property: re-optimised vs naive")),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog device advise: {r['device']}", question, True, sections), True


def flipmap_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    r = read_json(folder / "flipmap.json")
    x, y = r["x"], r["y"]
    question = (f"Scaled variants of {esc(r['base'])} over {esc(x['property'])} × {esc(y['property'])}: where does "
                f"comparing them with {esc(r['base'])} under naive programming disagree with comparing them at "
                f"their optimum (the paper's Fig. 5 question)?")
    counts = table(["verdict", "devices"], [[k, Raw(num(v, f"/counts/{k}", "flipmap.json"))]
                                            for k, v in r["counts"].items()], {1})
    points = table([x["property"], y["property"], "Δ naive", "Δ optimised", "verdict"],
                   [[p["x"], p["y"], pct(p["naive_change"]), pct(p["optimised_change"]), p["verdict"]]
                    for p in r["points"]], {0, 1, 2, 3})
    sections = [section("Result", f"<p><strong>{esc(r['sentence'])}</strong></p>" + counts),
                section("Figure", png_figure(folder / "flipmap.png", "verdict per scaled device; each cell: "
                                             "change of the optimised (top) and naive (bottom) weight error, %")),
                section("Every device", points
                        + '<p class="note">Each optimisation is a job of the sweep in this folder (sweep.json, '
                          'jobs/); better or worse only beyond 2 standard errors of the change.</p>'),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog device flipmap: {r['base']}", question, True, sections), True
