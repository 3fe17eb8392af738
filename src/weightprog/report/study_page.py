"""report.html of a study folder, built from its <workload>/results.json and summary.md (the study
record is read as the dict it is until study.py gives it a typed record)."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightprogError
from ..timeunits import format_time
from .page import (
    Raw,
    RunCommand,
    card,
    device_curves_figure,
    device_row,
    esc,
    files_section,
    fmt,
    kv_table,
    num,
    page,
    png_figure,
    read_json,
    reproduce_section,
    section,
    table,
    times_text,
)

# --- markdown tables (study summary.md) ----------------------------------------------------------------

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


# --- study ------------------------------------------------------------------------------------------

def study_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    paths = sorted(folder.glob("*/results.json"))
    records = [(p.parent.name, read_json(p)) for p in paths]
    if not records:
        raise WeightprogError(f"{folder}: no <workload>/results.json yet")
    first = records[0][1]
    st = first.get("settings", {})
    names = [r["workload"] for _, r in records]
    variants = sorted({v for _, r in records for d in r.get("devices", {}).values() for v in d.get("variants", {})})
    question = (f"Do the reference workloads ({esc(', '.join(names))}) keep their {esc(first.get('metric', 'metric'))} "
                f"from {esc(format_time(st['times_s'][0]))} to {esc(format_time(st['times_s'][-1]))} after "
                f"programming, naive vs best hand-crafted vs optimised "
                f"({esc(' and '.join(v.upper() for v in variants))}-trained)?")
    cards, device_models, done = [], {}, True
    last = format_time(st["times_s"][-1])
    for folder_name, r in records:
        file = f"{folder_name}/results.json"
        done &= set(r.get("devices", {})) >= set(r.get("settings", {}).get("devices", []))
        for dev, drec in r.get("devices", {}).items():
            device_models[dev] = drec.get("device", {})
            for v, vrec in drec.get("variants", {}).items():
                opt = vrec["strategies"]["optimised"]
                naive = vrec["strategies"]["naive"]
                k = len(opt["mean"]) - 1
                sub = (f"naive {num(naive['mean'][k], f'/devices/{dev}/variants/{v}/strategies/naive/mean/{k}', file)}"
                       f"; digital {num(vrec['digital'], f'/devices/{dev}/variants/{v}/digital', file)}")
                cards.append(card(f"{r['workload']} {v.upper()} on {dev}: optimised {r['metric']} at {last}",
                                  num(opt["mean"][k], f"/devices/{dev}/variants/{v}/strategies/optimised/mean/{k}",
                                      file),
                                  sub))
    summary = (folder / "summary.md").read_text() if (folder / "summary.md").is_file() else ""
    criteria = summary[summary.find("### Criteria"):] if "### Criteria" in summary else ""
    headline = '<div class="cards">' + "".join(cards) + "</div>" + markdown_html(criteria)
    inputs = kv_table([
        ("workloads", Raw("<br>".join(
            esc(f"{r['workload']}: {r['metric']} ({'higher' if r['higher_is_better'] else 'lower'} "
                f"is better), {r['eval_size']} test items; checkpoints "
                + ", ".join(f"{k} {str(c.get('sha256', ''))[:12]}" for k, c in r['checkpoints'].items()))
            for _, r in records))),
        ("devices", Raw("<br>".join(esc(device_row(d)) for d in device_models.values()))),
        ("times after programming", times_text(st["times_s"])),
        ("realisations", st.get("repeats")),
        ("periphery", first.get("periphery")),
        ("search", f"popsize {st.get('popsize')}, {st.get('max_generations')} generations per F, "
                   f"F = 1…{st.get('f_max')}, {st.get('sample_size')} sampled weights, "
                   f"polish {st.get('polish_steps')} steps, searched on "
                   f"{st.get('search_on', st.get('optimise_on'))}" if "popsize" in st else None),
        ("seed", st.get("seed")),
        ("weightprog version", first.get("version")),
        ("machine", ", ".join(f"{k} {v}" for k, v in first.get("machine", {}).items()) or None),
        ("wall time", "; ".join(f"{r['workload']} {fmt(r.get('wall_time_s'))} s" for _, r in records)),
    ])
    figures = ""
    for name in names:
        for p in sorted((folder / "figures").glob(f"{name}_*metric_vs_time.png")):
            figures += png_figure(p, f"{name}: metric vs time after programming, mean ± 1σ, FP digital dotted")
        for p in sorted((folder / "figures").glob(f"{name}_*_strategy.png")):
            figures += png_figure(p, f"{name}: optimised strategy")
        for p in sorted((folder / "figures").glob(f"{name}_gradient_weight.png")):
            figures += png_figure(p, f"{name}: gradient vs weight per layer")
    tables = markdown_html(summary[:summary.find("### Criteria")] if criteria else summary)
    sections = [section("Result", headline),
                section("Question and inputs", inputs + device_curves_figure(list(device_models.values()))),
                section("Figures", figures),
                section("Tables", tables + '<p class="note">Every realisation: '
                                           'results.csv and &lt;workload&gt;/results.json.</p>'),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog study: {', '.join(names)}", question, done, sections), done
