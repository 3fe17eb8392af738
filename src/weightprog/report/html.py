"""report.html: one self-contained page per output folder, built only from the files the run wrote.

Every command that writes an output folder (optimize, evaluate, compare-devices, device fit,
study, sweep) ends by calling `write_report`; `weightprog report DIR` calls it again on a finished
or interrupted folder. The page holds everything inline — CSS, figures as embedded PNG (the
command's own figures) or SVG (drawn here from the JSON: device curves, an interrupted search's
progress) — so it opens from disk or a mail attachment with no network and no script.

Order of a page: the question the run answered (one line), the headline result, the inputs
(weights, device with its curves, cell, times, seed, version, wall time), the figures, the full
tables, and the exact command that reproduces the run. Every number is read from the run's
JSON/CSV files and only formatted here; headline numbers carry `data-key` (a JSON pointer into
the file named by `data-file`) and `data-value` (the full-precision value), so a test can check
the page against the files.
"""

from __future__ import annotations

import csv
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import runfolder
from .._version import __version__
from ..errors import WeightprogError
from ..fileio import atomic_write_json, atomic_write_text
from ..scores import Scoreboard, json_key
from ..timeunits import format_time, format_times
from .page import (
    GENERATOR,
    REPORT_NAME,
    Raw,
    Report,
    RunCommand,
    card,
    cell_text,
    device_curves_figure,
    device_row,
    esc,
    files_section,
    fmt,
    kv_table,
    mark_unfinished,
    num,
    page,
    pct,
    png_figure,
    read_command,
    read_json,
    reproduce_section,
    section,
    svg_figure,
    table,
    times_text,
    vs_digital,
)
from .palette import strategy_label


def detect_kind(folder: Path) -> str:
    """Which command wrote `folder` (from the files in it)."""
    if (folder / "flipmap.json").is_file():  # before sweep: a flip map is a sweep with a map on top
        return "device-flipmap"
    if (folder / "advice.json").is_file():
        return "device-advise"
    if (folder / "comparison.json").is_file() or list(folder.glob("checkpoints/*/checkpoint_*.json")):
        return "compare-devices"
    if (folder / "sweep.json").is_file():
        return "sweep"
    if (folder / "report.json").is_file() or list(folder.glob("checkpoint_*.json")):
        return "optimize"
    if list(folder.glob("*" + FIT_SUFFIX)):
        return "device-fit"
    results = folder / "results.json"
    if results.is_file() and read_json(results).get("format") == "weightprog.evaluate":
        return "evaluate"
    if (folder / "summary.md").is_file() or list(folder.glob("*/results.json")):
        return "study"
    raise WeightprogError(f"{folder}: no weightprog results here (report.json, results.json, comparison.json, "
                          f"sweep.json, *.fit.json or <workload>/results.json)")


def bound_items(report: dict, prefix: str = "", lists: bool = False) -> list[tuple[str, str, Any]]:
    """(label, JSON pointer, value) for every number under a key named *bound* or gap* (at any depth;
    the run's settings and search histories aside), so the page shows them whatever the run names them."""
    out = []

    def walk(x, pointer, label, inside):
        if isinstance(x, dict):
            for k, v in x.items():
                key = str(k).lower()
                hit = inside or "bound" in key or key.startswith("gap")
                walk(v, f"{pointer}/{k}", f"{label}.{k}" if label else str(k), hit)
        elif isinstance(x, list) and inside and lists and len(x) <= 12:  # per-time values, not histories
            for i, v in enumerate(x):
                walk(v, f"{pointer}/{i}", f"{label}[{i}]", inside)
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and inside:
            out.append((label, pointer, x))
    walk({k: v for k, v in report.items() if k not in ("settings", "search")}, prefix, "", False)
    return out


# --- optimize ---------------------------------------------------------------------------------------

def _swatch(name: str) -> str:
    from .palette import strategy_colour
    return f'<span class="swatch" style="background:{strategy_colour(name)}"></span>'


def tnmse_table(scores: dict, times_s, file: str, pointer: str, gaps: dict | None = None) -> str:
    """Every strategy's TNMSE, time-averaged and per time; with `gaps` ({column title: (JSON
    pointer of a {strategy: gap} dict, that dict)}) a column per gap, in % above the limit."""
    labels = format_times(times_s)
    gaps = gaps or {}
    rows = []
    for key, s in scores.items():
        per = [Raw(f"{num(m, f'{pointer}/{key}/per_time/{i}', file)}{se(e)}")
               for i, (m, e) in enumerate(zip(s["per_time"], s.get("per_time_stderr", [0.0] * len(labels))))]
        gap_cells = [Raw(num(g[key], f"{ptr}/{key}", file, f"{100 * g[key]:+.1f} %")) if key in g else ""
                     for ptr, g in gaps.values()]
        rows.append([Raw(f'<span class="name">{_swatch(key)}{esc(strategy_label(key, s))}</span>'),
                     Raw(num(s["mean"], f"{pointer}/{key}/mean", file) + se(s["stderr"])), *gap_cells, *per])
    return (table(["strategy", "TNMSE (time-averaged)", *gaps, *(f"t = {t}" for t in labels)], rows,
                  set(range(1, 2 + len(gaps) + len(labels))))
            + '<p class="note">Each cell: the mean, and under it its standard error'
            + ("; gaps: (TNMSE − limit) / limit" if gaps else "") + ".</p>")


def se(x: Any) -> str:
    """A standard error under the number it belongs to."""
    return f'<br><span class="se">± {esc(fmt(x, 2))}</span>'


def _below(imp: dict, key: str, pointer: str, file: str) -> str:
    if key not in imp:
        return ""
    return f"optimised is {num(imp[key], f'{pointer}/improvement/{key}', file, f'{100 * imp[key]:.1f} %')} below this"


def optimize_headline(r: dict, file: str = "report.json", pointer: str = "") -> str:
    t = r["tnmse"]
    opt = t["optimised"]
    scores = Scoreboard.from_json(t)
    hand, f1 = (scores.key_of(s) for s in (scores.best_hand_crafted, scores.best_f1_baseline))
    imp = r.get("improvement", {})
    cards = [
        card("optimised TNMSE", num(opt["mean"], f"{pointer}/tnmse/optimised/mean", file),
             f"± {fmt(opt['stderr'])} s.e.; cell {cell_text(r['cell']['significance'])}"),
        card(f"best hand-crafted: {strategy_label(hand, t[hand])}",
             num(t[hand]["mean"], f"{pointer}/tnmse/{hand}/mean", file),
             _below(imp, "vs_best_hand_crafted", pointer, file)),
        card(f"best F=1 baseline: {strategy_label(f1, t[f1])}", num(t[f1]["mean"], f"{pointer}/tnmse/{f1}/mean", file),
             _below(imp, "vs_best_f1_baseline", pointer, file)),
    ]
    b = r.get("bound")
    if isinstance(b, dict) and isinstance(b.get("tnmse"), (int, float)):
        cards.append(card(f"bound: lowest expected TNMSE (F={fmt(b.get('f'))})",
                          num(b["tnmse"], f"{pointer}/bound/tnmse", file),
                          "any mapping weight → targets, one free read-out scale per time"
                          + _gap(r, "gap_to_bound", pointer, file)))
        if isinstance(b.get("compensated_tnmse"), (int, float)):
            cards.append(card(f"bound under the deployed compensation (F={fmt(b.get('compensated_f'))})",
                              num(b["compensated_tnmse"], f"{pointer}/bound/compensated_tnmse", file),
                              "α from calibration reads, β free" + _gap(r, "gap_to_compensated", pointer, file)))
    else:
        for label, ptr, value in bound_items(r, pointer):
            cards.append(card(label.replace("_", " "), num(value, ptr, file),
                              "expected-error bound / gap recorded by the run"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _gap(r: dict, key: str, pointer: str, file: str) -> str:
    g = r.get(key)
    if not (isinstance(g, dict) and isinstance(g.get("optimised"), (int, float))):
        return ""
    value = g["optimised"]
    return f"; optimised: (TNMSE − it) / it = {num(value, f'{pointer}/{key}/optimised', file, f'{100 * value:+.1f} %')}"


def optimize_fallback_command(r: dict, folder: Path) -> str:
    s = r.get("settings", {})
    sig = s.get("significance")
    args = ["weightprog", "optimize", "--device", r["device"]["name"], "--pairs", str(s.get("pairs")),
            "--significance", "auto" if sig is None else ",".join(f"{f:g}" for f in sig),
            "--f-max", str(s.get("f_max")), "--times", ",".join(format_times(r["times_s"])),
            "--grid", str(s.get("grid_points")), "--grid-placement", str(s.get("grid_placement")),
            "--mode", str(s.get("mode")), "--max-generations", str(s.get("max_generations")),
            "--popsize", str(s.get("popsize")), "--seed", str(r.get("seed")),
            "--rescore-blocks", str(s.get("rescore_blocks")), "--out", str(folder)]
    w = str(r.get("weights", ""))
    args[2:2] = ["--distribution", w.split(":", 1)[1]] if w.startswith("distribution:") else ["--weights", w]
    if s.get("budget_s") is not None:
        args[-2:-2] = ["--budget", f"{s['budget_s']:g}"]
    if not s.get("polish", True):
        args[-2:-2] = ["--no-polish"]
    return shlex.join(args)


def _search_progress_figure(histories: dict[str, list[float]], chosen: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .palette import legend_outside, sequence_colours

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (label, h), colour in zip(histories.items(), sequence_colours(len(histories))):
        ax.plot(range(len(h)), h, color=colour, lw=2.2 if label == chosen else 1.2, label=label)
    ax.set(xlabel="generation", ylabel="best TNMSE of the search sample", title="searches so far")
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return svg_figure(fig, "best loss per generation of each search, from the checkpoints")


def _interrupted_page(kind: str, folder: Path, checkpoints: list[Path], command: RunCommand | None) -> str:
    """An interrupted search: how far each search got, from its checkpoint."""
    rows, histories = [], {}
    for p in checkpoints:
        c = read_json(p)
        h = [x for x in c.get("history", []) if x is not None and math.isfinite(x)]
        label = str(p.relative_to(folder).with_suffix("")).replace("checkpoints/", "").replace("checkpoint_", "")
        histories[label] = h
        rows.append([str(p.relative_to(folder)), c.get("generation"), min(h) if h else None])
    body = (table(["checkpoint", "generations done", "best loss (search sample)"], rows, {1, 2})
            + (_search_progress_figure(histories) if any(histories.values()) else ""))
    sections = [section("Search so far", body), reproduce_section(command), files_section(folder)]
    return page(f"weightprog {kind}: {folder.name}", "The run stopped before its results; rerun the same command "
                "to resume from these checkpoints.", False, sections)


def optimize_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    path = folder / "report.json"
    if not path.is_file():  # interrupted: what the checkpoints say
        return _interrupted_page("optimize", folder, sorted(folder.glob("checkpoint_*.json")), command), False
    r = read_json(path)
    s = r.get("settings", {})
    question = (f"Which programming strategy gives {esc(r['weights'])} the lowest time-averaged weight error "
                f"on {esc(r['device']['name'])}, with {r['cell']['pairs']} pair(s) per weight, over "
                f"{esc(times_text(r['times_s']))}?")
    headline = optimize_headline(r)
    search_rows = [[label + (" (chosen)" if label == r.get("chosen_search") else ""), x.get("generations"),
                    x.get("evaluations"), x.get("loss"), "yes" if x.get("converged") else "no", x.get("message", ""),
                    x.get("wall_time_s"),
                    ("kept" if x["polish"].get("kept") else "not kept") if x.get("polish") else "—"]
                   for label, x in r.get("search", {}).items()]
    inputs = kv_table([
        ("weights", f"{r['weights']} (search sample {fmt(r.get('search_weights'))} weights)"),
        ("device", device_row(r["device"])),
        ("cell", f"{r['cell']['pairs']} pair(s), {cell_text(r['cell']['significance'])}, β = {fmt(r.get('beta'))}"
                 + (" (searched F = 1…" + str(s.get("f_max")) + ")" if s.get("significance") is None else "")),
        ("times after programming", times_text(r["times_s"])),
        ("grid", f"{s.get('grid_points')} points, {s.get('grid_placement')} placement, {s.get('mode')} mode"),
        ("search", f"popsize {s.get('popsize')}, at most {s.get('max_generations')} generations, tol {s.get('tol')}, "
                   f"budget {s.get('budget_s') if s.get('budget_s') is not None else 'none'}"
                   + (f"; method {r['method']}" if r.get("method") else "")
                   + (f"; objective {s['objective']}" if s.get("objective") else "")),
        ("aihwkit", None if "expressible" not in r else
         "the strategy is expressible by aihwkit's CustomPairConductanceConverter" if r["expressible"]
         else "not expressible by aihwkit's converter (strategy.aihwkit.json holds the best one that is)"),
        ("re-scoring", f"{r.get('rescore', {}).get('blocks')} fresh samples, "
                       f"{fmt(r.get('rescore', {}).get('weights'))} weights, fresh draws"),
        ("seed", r.get("seed")),
        ("weightprog version", r.get("weightprog_version")),
        ("wall time", f"{fmt(r.get('wall_time_s'))} s"),
    ])
    figures = "".join([
        png_figure(folder / "strategy.png", "optimised strategy: target conductance of each device vs weight, "
                                            "weight density behind"),
        png_figure(folder / "tnmse_vs_time.png", "weight error (NMSE) vs time after programming, ± s.e., fresh draws"),
        png_figure(folder / "error_distribution.png", "distribution of the weight error at each time"),
        png_figure(folder / "convergence.png", "best loss per generation of each search"),
    ])
    gaps = {title: (f"/{key}", r[key]) for key, title in (("gap_to_bound", "above the bound"),
                                                          ("gap_to_compensated", "above the compensated bound"))
            if isinstance(r.get(key), dict)}
    tables = ("<h3>Weight error (re-scored on fresh samples and draws)</h3>"
              + tnmse_table(r["tnmse"], r["times_s"], "report.json", "/tnmse", gaps)
              + "<h3>Searches</h3>"
              + table(["search", "generations", "evaluations", "loss", "converged", "stopped because", "wall s",
                       "polish"], search_rows, {1, 2, 3, 6}))
    b = r.get("bound")
    if isinstance(b, dict) and isinstance(b.get("per_f"), list):
        tables += ("<h3>Bound per significance factor F (expected TNMSE, large-column limit)</h3>"
                   + table(["F", "bound (free scale per time)", "under the deployed compensation",
                            "β (µS per unit weight)", "wall s"],
                           [[x.get("f"), Raw(num(x.get("bound"), f"/bound/per_f/{i}/bound", "report.json")),
                             Raw(num(x.get("compensated"), f"/bound/per_f/{i}/compensated", "report.json"))
                             if isinstance(x.get("compensated"), (int, float)) else "n/a",
                             x.get("beta"), x.get("wall_time_s")]
                            for i, x in enumerate(b["per_f"])], {0, 1, 2, 3, 4})
                   + (f'<p class="note">{esc(b["note"])}</p>' if b.get("note") else ""))
    else:
        bound_rows = bound_items(r, lists=True)
        if bound_rows:
            tables += "<h3>Bound and gap (as report.json records them)</h3>" + table(
                ["field", "value"], [[label, Raw(num(v, ptr, "report.json"))] for label, ptr, v in bound_rows], {1})
    if r.get("per_layer"):
        tables += "<h3>Per-layer strategies</h3>" + table(
            ["layer", "weights", "own strategy TNMSE", "network-wide TNMSE", "gain", "file"],
            [[x["layer"], x["weights"], x["tnmse_layer_strategy"]["mean"], x["tnmse_network_strategy"]["mean"],
              pct(1 - x["tnmse_layer_strategy"]["mean"] / x["tnmse_network_strategy"]["mean"]), x["strategy"]]
             for x in r["per_layer"]], {1, 2, 3, 4})
    if r.get("error_split"):
        tables += _error_split_table(r["error_split"])
    if (folder / "strategy.json").is_file():
        st = read_json(folder / "strategy.json")
        cols = len(st["conductances"][0]) if st.get("conductances") else 0
        head = ["w / w_max"] + [f"g{'+' if k % 2 == 0 else '−'} pair {k // 2 + 1} (µS)" for k in range(cols)]
        tables += ("<h3>Optimised strategy (strategy.json)</h3>"
                   + table(head, [[g, *row] for g, row in zip(st["grid"], st["conductances"])], set(range(cols + 1))))
    sections = [section("Result", headline),
                *([section("On the network", _network_section(r["network"]))] if r.get("network") else []),
                section("Question and inputs", inputs + device_curves_figure([r["device"]])),
                section("Figures", figures), section("Tables", tables),
                reproduce_section(command, optimize_fallback_command(r, folder)), files_section(folder)]
    return page(f"weightprog optimize: {folder.name}", question, True, sections), True


def _error_split_table(splits: list[dict]) -> str:
    """Systematic and random parts of each strategy's expected error per time, and how large the largest
    weight reads (E[αŵ]/w at the largest node)."""
    times = splits[0]["times_s"]
    rows = [[Raw(_swatch(e["strategy"]) + esc(e["strategy"])),
             *(f"{fmt(x)} / {fmt(y)}" for x, y in zip(e["systematic"], e["random"])),
             f"{100 * e['curve_ratio'][-1][-1]:.1f} % of itself" if e["curve_ratio"][-1][-1] is not None else ""]
            for e in splits]
    return ("<h3>Where the error comes from: systematic / random part of the expected NMSE</h3>"
            + table(["strategy", *(f"t = {format_time(t)}" for t in times),
                     f"largest weight at {format_time(times[-1])}"], rows, set(range(1, len(times) + 2))))


def _network_section(n: dict) -> str:
    """optimize --model: every candidate's metric on the network (mean and 95 % interval per time),
    the limit, the one chosen, and whether weight error ranked them the same way."""
    times = sorted({x["time_s"] for x in n["rows"]})
    rows = []
    for name in n["network_ranking"] + (["limit"] if n.get("limit") else []):
        got = {x["time_s"]: (i, x) for i, x in enumerate(n["limit"] if name == "limit" else n["rows"])
               if name == "limit" or x["strategy"] == name}
        base = "/network/limit" if name == "limit" else "/network/rows"
        rows.append([Raw(_swatch(name) + esc(name) + (" (chosen)" if name == n["chosen"] else "")),
                     *(Raw(num(got[t][1]["mean"], f"{base}/{got[t][0]}/mean", "report.json") + _ci(got[t][1]))
                       for t in times)])
    split = ("held-out (validate) data" if n["split"] == "validate" else "the test data (the spec has no validate)")
    agree = n["tnmse_ranking"][0] == n["network_ranking"][0]
    words = (f"<p>Every candidate programmed onto the network {n['repeats']} times (the same seeds and examples for "
             f"each) and scored on {esc(split)}: {esc(n['metric'])}, {'higher' if n['higher_is_better'] else 'lower'} "
             f"is better; chosen by {esc(n['rule'])}: <b>{esc(n['chosen'])}</b>. 95 % intervals over "
             f"{esc(n.get('interval_over', 'realisations'))}.</p>"
             + ("<p>Weight error and the network agree on the best candidate.</p>" if agree else
                f"<p><b>Weight error and the network disagree.</b> By weight error: "
                f"{esc(' < '.join(n['tnmse_ranking']))}; on the network (best first): "
                f"{esc(' > '.join(n['network_ranking']))}.</p>"))
    return words + table(["strategy", *(f"t = {format_time(t)}" for t in times)], rows, set(range(1, len(times) + 1)))


# --- evaluate ---------------------------------------------------------------------------------------

def _ci(row: dict) -> str:
    """` [low, high]` of a summary row with a 95 % interval (older files: ± std)."""
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return se(row["std"])
    return f'<br><span class="se">[{esc(fmt(row["ci_low"]))}, {esc(fmt(row["ci_high"]))}]</span>'


def evaluate_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    r = read_json(folder / "results.json")
    name = r.get("metric_name", "metric")
    times = r["times_s"]
    last = format_time(times[-1])
    digital = r.get("digital_metric")
    summary = r.get("summary", [])
    strategies = list(dict.fromkeys(x["strategy"] for x in summary))
    question = (f"How does {esc(name)} of {esc(r['model'])} hold up from {esc(format_time(times[0]))} to "
                f"{esc(last)} after programming it into {esc(r['device']['name'])} with each strategy?")
    higher = r.get("higher_is_better", True)
    cards = [card(f"digital (FP) {name}", num(digital, "/digital_metric", "results.json"),
                  f"no analogue noise; {'higher' if higher else 'lower'} is better")]
    for i, x in enumerate(summary):
        if x["time_s"] == times[-1]:
            sub = f"± {fmt(x['std'])} (std of {x['n']} realisations)"
            if isinstance(digital, (int, float)) and isinstance(x["mean"], (int, float)):
                sub += f"; {vs_digital(x['mean'], digital, higher)}"
            if x.get("weight_nmse_mean") is not None:
                sub += f"; weight NMSE {num(x['weight_nmse_mean'], f'/summary/{i}/weight_nmse_mean', 'results.json')}"
            cards.append(card(f"{x['strategy']} at {last}",
                              _swatch(x["strategy"]) + num(x["mean"], f"/summary/{i}/mean", "results.json"), sub))
    headline = '<div class="cards">' + "".join(cards) + "</div>"
    m = r.get("mapping", {})
    p = r.get("periphery", {})
    inputs = kv_table([
        ("model", r["model"]),
        ("strategies", ", ".join(strategies)),
        ("device", device_row(r["device"])),
        ("cells", "; ".join(f"{st['name']}: {cell_text(st['significance'])}" if "significance" in st
                            else f"{st['name']}: per time" for st in r.get("strategies", []))),
        ("mapping", f"{fmt(m.get('analog_weights'))} analogue weights on {m.get('tiles')} tile(s) of ≤ "
                    f"{m.get('tile_rows')}×{m.get('tile_cols')}; {fmt(m.get('digital_params'))} parameters digital; "
                    f"normalise {m.get('normalise')}, compensation {m.get('compensation')}"),
        ("periphery", ", ".join(f"{k} {v}" for k, v in p.items())),
        ("times after programming", times_text(times)),
        ("realisations", r.get("repeats")),
        ("seed", r.get("seed")),
        ("compute", r.get("compute")),
        ("weightprog version", r.get("version")),
        ("wall time", f"{fmt(r.get('wall_time_s', r.get('wall_s')))} s"),
    ])
    labels = format_times(times)
    by = {(x["strategy"], x["time_s"]): (i, x) for i, x in enumerate(summary)}
    rows = []
    for s_name in strategies:
        cells = []
        for t in times:
            i, x = by.get((s_name, t), (-1, None))
            cells.append(Raw(num(x['mean'], f'/summary/{i}/mean', 'results.json') + _ci(x)) if x else "")
        rows.append([Raw(_swatch(s_name) + esc(s_name)), *cells])
    nmse_rows = [[Raw(_swatch(s_name) + esc(s_name)),
                  *(f"{fmt(x['weight_nmse_mean'])} ± {fmt(x.get('weight_nmse_std'))}"
                    if (x := by.get((s_name, t), (None, {}))[1]) and x.get("weight_nmse_mean") is not None else ""
                    for t in times)] for s_name in strategies]
    layer_rows = [[x["strategy"], x["layer"], x["weight_nmse_mean"], x.get("weight_nmse_std")]
                  for x in r.get("weight_nmse_per_layer", []) if x["time_s"] == times[-1]]
    over = r.get("interval_over")
    paired = [[x["strategy"], x["versus"], x["time"], fmt(x["diff"]), f"[{fmt(x['ci_low'])}, {fmt(x['ci_high'])}]",
               x["verdict"]] for x in r.get("paired", [])]
    tables = ((f"<h3>{esc(name)}: mean and 95 % interval over {esc(over)} ({r.get('repeats')} realisations)</h3>"
               if over else f"<h3>{esc(name)}: mean ± std over {r.get('repeats')} realisations</h3>")
              + table(["strategy", *(f"t = {t}" for t in labels)], rows, set(range(1, len(labels) + 1)))
              + ("<h3>Paired differences (same realisations and examples), 95 % intervals</h3>"
                 + table(["strategy", "versus", "time", "difference", "95 % interval", "verdict"], paired, {3})
                 if paired else "")
              + (("<h3>Weight NMSE of the analogue layers (mean ± std over realisations)</h3>"
                  + table(["strategy", *(f"t = {t}" for t in labels)], nmse_rows, set(range(1, len(labels) + 1))))
                 if any(x.get("weight_nmse_mean") is not None for x in summary) else "")
              + (f"<h3>Weight NMSE per layer at {esc(last)}</h3>"
                 + table(["strategy", "layer", "weight NMSE", "± std"], layer_rows, {2, 3}) if layer_rows else "")
              + "<h3>Analogue layers</h3>"
              + table(["layer", "kind", "shape", "matrix", "tiles", "weights"],
                      [[x["name"], x["kind"], "×".join(map(str, x["shape"])), "×".join(map(str, x["matrix"])),
                        "×".join(map(str, x["tiles"])), x["weights"]] for x in m.get("layers", [])], {5})
              + f'<p class="note">Every realisation: results.csv ({len(r.get("rows", []))} rows).</p>')
    figures = png_figure(folder / "accuracy_vs_time.png", f"{name} vs time after programming, mean and its 95 % "
                                                          "interval as a band, digital (FP) dotted")
    sections = [section("Result", headline),
                section("Question and inputs", inputs + device_curves_figure([r["device"]])),
                section("Figures", figures), section("Tables", tables),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog evaluate: {folder.name}", question, True, sections), True


# --- compare-devices ---------------------------------------------------------------------------------

def compare_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    from .palette import device_colour

    if not (folder / "comparison.json").is_file():
        checkpoints = sorted(folder.glob("checkpoints/*/checkpoint_*.json"))
        return _interrupted_page("compare-devices", folder, checkpoints, command), False
    r = read_json(folder / "comparison.json")
    naive_key = json_key(r["naive"].split()[0])  # "lsp-first F=1" (older files: "lsp_first F=1")
    names = [d["device"] for d in r["devices"]]
    s = r.get("settings", {})
    question = (f"Which memory device is best for {esc(r['weights'])}: ranked by naive programming "
                f"({esc(r['naive'])}) and at each device's optimum, over {esc(times_text(r['times_s']))}?")
    rows = []
    for i, d in enumerate(r["devices"]):
        naive, opt = d["tnmse"][naive_key], d["tnmse"]["optimised"]
        rows.append([Raw(f'<span class="swatch" style="background:{device_colour(d["device"])}"></span>'
                         + esc(d["device"])),
                     Raw(num(naive["mean"], f"/devices/{i}/tnmse/{naive_key}/mean", "comparison.json")),
                     naive["stderr"],
                     Raw(num(opt["mean"], f"/devices/{i}/tnmse/optimised/mean", "comparison.json")), opt["stderr"],
                     pct(-(1 - opt["mean"] / naive["mean"])), cell_text(d["cell"]),
                     r["ranking"]["by_naive"].index(d["device"]) + 1,
                     r["ranking"]["by_optimum"].index(d["device"]) + 1])
    headline = (f"<p><strong>{esc(r['ranking']['sentence'])}</strong></p>"
                + table(["device", f"naive ({r['naive']})", "± s.e.", "optimised", "± s.e.", "optimised vs naive",
                         "cell", "rank naive", "rank optimised"], rows, {1, 2, 3, 4, 5, 7, 8}))
    inputs = kv_table([
        ("weights", f"{r['weights']} (search sample {fmt(r.get('search_weights'))}, re-scored on "
                    f"{fmt(r.get('rescore_weights'))} weights)"),
        ("devices", Raw("<br>".join(esc(device_row(d["model"])) for d in r["devices"]))),
        ("cell", f"{s.get('pairs')} pair(s), " + ("F = 1…" + str(s.get("f_max")) + " searched"
                                                 if s.get("significance") is None else cell_text(s["significance"]))),
        ("times after programming", times_text(r["times_s"])),
        ("search", f"grid {s.get('grid_points')}, popsize {s.get('popsize')}, at most {s.get('max_generations')} "
                   f"generations, polish {'on' if s.get('polish') else 'off'}"),
        ("seed", s.get("seed")),
        ("weightprog version", r.get("weightprog_version")),
        ("wall time", f"{fmt(sum(d.get('wall_time_s', 0) for d in r['devices']))} s (sum over devices)"),
    ])
    labels = format_times(r["times_s"])
    full = []
    for i, d in enumerate(r["devices"]):
        for key, sc in d["tnmse"].items():
            full.append([d["device"], Raw(_swatch(key) + esc(strategy_label(key, sc))),
                         Raw(num(sc["mean"], f"/devices/{i}/tnmse/{key}/mean", "comparison.json")), sc["stderr"],
                         *sc["per_time"]])
    tables = ("<h3>Every strategy on every device (TNMSE, fresh draws)</h3>"
              + table(["device", "strategy", "TNMSE", "± s.e.", *(f"t = {t}" for t in labels)], full,
                      set(range(2, 4 + len(labels))))
              + f'<p class="note">Also in comparison.csv. Ties within 2 s.e.: by optimum '
                f'{esc(r["ranking"].get("ties_by_optimum"))}, by naive {esc(r["ranking"].get("ties_by_naive"))}.</p>')
    figures = png_figure(folder / "tnmse_vs_time.png", "weight error vs time per device: naive dashed, optimised solid")
    sections = [section("Result", headline),
                section("Question and inputs", inputs + device_curves_figure([d["model"] for d in r["devices"]])),
                section("Figures", figures), section("Tables", tables), reproduce_section(command),
                files_section(folder)]
    return page(f"weightprog compare-devices: {', '.join(names)}", question, True, sections), True


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


# --- sweep ------------------------------------------------------------------------------------------

def sweep_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    meta = read_json(folder / "sweep.json")
    jobs = meta.get("jobs", [])
    done, failed = [], {}
    for job in jobs:
        jid = job["id"]
        rec = folder / "jobs" / f"{jid}.json"
        err = folder / "jobs" / f"{jid}.error.json"
        if rec.is_file() and "result" in read_json(rec):
            done.append(jid)
        elif err.is_file():
            failed[jid] = read_json(err).get("error", "")
    pending = len(jobs) - len(done) - len(failed)
    rows = []
    if (folder / "summary.csv").is_file():
        with open(folder / "summary.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    question = (f"Sweep {esc(meta.get('name'))} ({esc(meta.get('source', ''))}): how do the optimised strategy and the "
                "best hand-crafted one compare across its configurations?")
    gains = [float(r["improvement_vs_best_hand"]) for r in rows if r.get("improvement_vs_best_hand")]
    cards = [card("jobs finished", f"{len(done)} of {len(jobs)}", f"{len(failed)} failed, {pending} pending")]
    if gains:
        cards.append(card("optimised vs best hand-crafted", f"{100 * min(gains):.1f} … {100 * max(gains):.1f} %",
                          f"lower TNMSE, over {len(gains)} rows of summary.csv"))
    headline = '<div class="cards">' + "".join(cards) + "</div>"
    columns = ["id", "kind", "device", "pairs", "significance", "grid_points", "times", "weights", "seed", "cell",
               "tnmse_optimised", "stderr_optimised", "best_hand_crafted", "tnmse_best_hand",
               "improvement_vs_best_hand", "rank_by_optimum", "rank_by_naive", "wall_time_s"]

    def cell(c, v):
        if c in ("tnmse_optimised", "stderr_optimised", "tnmse_best_hand") and v:
            return fmt(float(v))
        if c == "improvement_vs_best_hand" and v:
            return f"{100 * float(v):.1f} %"
        return v
    tables = ("<h3>Every finished job (summary.csv)</h3>"
              + table([c.replace("_", " ") for c in columns], [[cell(c, r.get(c, "")) for c in columns] for r in rows],
                      {10, 11, 13, 14, 17}))
    if failed:
        tables += "<h3>Failed jobs</h3>" + table(["job", "error (traceback in jobs/&lt;id&gt;.error.json)"],
                                                 [[k, v] for k, v in failed.items()])
    inputs = kv_table([("sweep file", meta.get("source")), ("jobs", len(jobs)),
                       ("kinds", ", ".join(sorted({j.get('kind', '') for j in jobs}))),
                       ("weightprog version", meta.get("weightprog_version")),
                       ("wall time", f"{fmt(sum(float(r['wall_time_s']) for r in rows if r.get('wall_time_s')))} s "
                                     "(sum over finished jobs)" if rows else None)])
    figures = png_figure(folder / "summary.png",
                         "optimised (filled) vs best hand-crafted (ring) TNMSE per configuration")
    finished = not failed and pending == 0
    sections = [section("Result", headline), section("Question and inputs", inputs), section("Figures", figures),
                section("Tables", tables), reproduce_section(command), files_section(folder)]
    status = "finished" if finished else f"{len(done)} of {len(jobs)} jobs finished"
    return page(f"weightprog sweep: {meta.get('name')}", question, finished, sections, status), finished


# --- device fit -------------------------------------------------------------------------------------

FIT_SUFFIX = ".fit.json"
BIN_COLUMNS = ("g", "n_devices", "sigma_p", "sigma_p_se", "nu_mean", "nu_mean_se", "nu_std", "nu_std_se", "q", "q_se",
               "clean", "bias")


def _finite(x) -> float | None:
    """JSON has no NaN: an estimate a bin could not give is null (shown as n/a)."""
    x = float(x)
    return x if math.isfinite(x) else None


def fit_record(result, device_file: Path, figure_file: Path, settings: dict) -> dict:
    """What `device fit` found, as JSON (<device file stem>.fit.json next to the device file): the
    per-bin estimates with their standard errors, the notes, and the measurements' extent."""
    import numpy as np

    m, b = result.measurements, result.bins
    return {"format": "weightprog.device-fit", "version": __version__, "measurements": str(m.source),
            "devices": int(m.n_devices), "reads": int(len(m)), "times_s": sorted(float(t) for t in np.unique(m.t)),
            "device_file": device_file.name, "figure": figure_file.name if figure_file.parent == device_file.parent
            else str(figure_file), "settings": settings, "device": result.device.describe(),
            "bins": [{c: (bool(getattr(b, c)[k]) if c == "clean" else int(getattr(b, c)[k]) if c == "n_devices"
                          else _finite(getattr(b, c)[k])) for c in BIN_COLUMNS} for k in range(len(b.g))],
            "notes": list(result.notes)}


def write_fit_record(result, device_file: str | Path, figure_file: str | Path, settings: dict) -> Path:
    device_file = Path(device_file)
    path = device_file.with_name(device_file.stem + FIT_SUFFIX)
    atomic_write_json(path, fit_record(result, device_file, Path(figure_file), settings))
    return path


def fit_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    fits = [(p, read_json(p)) for p in sorted(folder.glob("*" + FIT_SUFFIX))]
    sections, names = [], []
    for path, r in fits:
        file = path.name
        names.append(r["device"]["name"])
        s = r.get("settings", {})
        bins = r["bins"]
        rows = [[Raw(num(x["g"], f"/bins/{k}/g", file)), x["n_devices"],
                 Raw(f"{num(x['sigma_p'], f'/bins/{k}/sigma_p', file)} ± {esc(fmt(x['sigma_p_se']))}"),
                 Raw(f"{num(x['nu_mean'], f'/bins/{k}/nu_mean', file)} ± {esc(fmt(x['nu_mean_se']))}"),
                 f"{fmt(x['nu_std'])} ± {fmt(x['nu_std_se'])}", f"{fmt(x['q'])} ± {fmt(x['q_se'])}", x["bias"],
                 "yes" if x["clean"] else "no (copied from the nearest clean bin)"]
                for k, x in enumerate(bins)]
        headline = '<div class="cards">' + "".join([
            card("device fitted", esc(r["device"]["name"]), f"written to {esc(r['device_file'])}"),
            card("measurements", num(r["devices"], "/devices", file, f"{r['devices']:,}"),
                 f"devices, {r['reads']:,} reads, {len(bins)} conductance bins"),
            card("bins fitted directly", f"{sum(x['clean'] for x in bins)} of {len(bins)}",
                 "the others copy drift and Q from their nearest clean bin"),
        ]) + "</div>" + "".join(f'<p class="note">note: {esc(n)}</p>' for n in r.get("notes", []))
        inputs = kv_table([
            ("measurements", r["measurements"]), ("times read", times_text(r["times_s"])),
            ("settings", ", ".join(f"{k} {v}" for k, v in s.items())),
            ("device", device_row(r["device"])),
            ("weightprog version", r.get("version")),
        ])
        figure_path = folder / r["figure"] if not Path(r["figure"]).is_absolute() else Path(r["figure"])
        body = (section("Result", headline)
                + section("Question and inputs", inputs + device_curves_figure([r["device"]]))
                + section("Figures", png_figure(figure_path, "fit diagnostics: measured vs fitted G(t), residuals of "
                                                             "the bin means, drift per device, programming error"))
                + section("Tables", "<h3>Per-bin estimates ± standard error</h3>" + table(
                    ["G (µS)", "devices", "σ_p (µS)", "ν mean", "ν std", "Q", "first-read bias (µS)",
                     "fitted directly"],
                    rows, {0, 1, 2, 3, 4, 5, 6})))
        sections.append(f"<h2>{esc(r['device']['name'])} ({esc(file)})</h2>" + body if len(fits) > 1 else body)
    question = ("What tabulated device model do these measurements give (programming error, drift, read noise per "
                "conductance bin), and how well does it reproduce them?")
    sections += [reproduce_section(command), files_section(folder)]
    return page(f"weightprog device fit: {', '.join(names)}", question, True, sections), True


# --- the entry point ---------------------------------------------------------------------------------

def _builders() -> dict[str, Callable[[Path, RunCommand | None], tuple[str, bool]]]:
    from .advise_html import advise_page, flipmap_page  # they build on this module's pieces
    return {"optimize": optimize_page, "evaluate": evaluate_page, "compare-devices": compare_page,
            "study": study_page, "sweep": sweep_page, "device-fit": fit_page,
            "device-advise": advise_page, "device-flipmap": flipmap_page}


def _refuse_foreign(path: Path, ours: Callable[[str], bool], what: str) -> None:
    """A file of that name that weightprog did not write is the user's: never replaced."""
    if not path.exists():
        return
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise WeightprogError(f"{path}: cannot read ({exc.strerror}); not replaced") from None
    if not ours(text):
        raise WeightprogError(f"{path}: exists and is not {what}; not replaced (move it, or write elsewhere)")


def write_report(folder: str | Path, kind: str | None = None) -> Report:
    """(Re)write `folder`/report.html from the files in `folder` and its manifest (command.json:
    the command, and whether the run finished: a run that did not is shown as interrupted, however
    complete its files look)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightprogError(f"{folder}: not a folder")
    path = folder / REPORT_NAME
    _refuse_foreign(path, lambda text: GENERATOR in text[:2000], "a page weightprog wrote")
    unfinished = runfolder.unfinished(folder)
    if unfinished and unfinished.startswith("running"):  # its run writes report.html (and lists it) at its end
        raise WeightprogError(f"{folder}: {unfinished}; its report.html comes when it finishes")
    kind = kind or runfolder.recorded_kind(folder) or detect_kind(folder)
    builders = _builders()
    if kind not in builders:
        raise WeightprogError(f"report: no page for {kind!r} folders yet")
    command = read_command(folder)
    try:
        text, finished = builders[kind](folder, command)
    except (WeightprogError, OSError, KeyError):
        if not unfinished:
            raise
        text, finished = _interrupted_page(kind, folder, sorted(folder.glob("**/checkpoint_*.json")), command), False
    if unfinished:
        text, finished = mark_unfinished(text, unfinished), False
    runfolder.list_file(folder, REPORT_NAME)
    atomic_write_text(path, text)
    return Report(kind, path, finished, unfinished or ("finished" if finished else "partial"))
