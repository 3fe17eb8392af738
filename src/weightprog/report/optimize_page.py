"""report.html of an `optimize` folder, built from its report.json (`OptimizeRecord`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..records.optimize import ErrorSplitRecord, OptimizeRecord
from ..scores import Scoreboard
from ..select import NetworkRow, NetworkSelection
from ..timeunits import format_time, format_times
from .cells import interval, se, swatch
from .interrupted import interrupted_page
from .page import (
    Raw,
    RunCommand,
    card,
    cell_text,
    device_curves_figure,
    device_row,
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

FILE = "report.json"


def tnmse_table(scores: Scoreboard, labels: dict[str, str], times_s, file: str, pointer: str,
                gaps: dict[str, tuple[str, dict[str, float]]] | None = None) -> str:
    """Every strategy's TNMSE, time-averaged and per time; with `gaps` ({column title: (JSON
    pointer of a {strategy: gap} dict, that dict)}) a column per gap, in % above the limit."""
    times = format_times(times_s)
    gaps = gaps or {}
    rows = []
    for key, s in scores.items():
        stderrs = s.per_time_stderr or (0.0,) * len(times)
        per = [Raw(f"{num(m, f'{pointer}/{key}/per_time/{i}', file)}{se(e)}")
               for i, (m, e) in enumerate(zip(s.per_time, stderrs))]
        gap_cells = [Raw(num(g[key], f"{ptr}/{key}", file, f"{100 * g[key]:+.1f} %")) if key in g else ""
                     for ptr, g in gaps.values()]
        rows.append([Raw(f'<span class="name">{swatch(key)}{esc(labels[key])}</span>'),
                     Raw(num(s.mean, f"{pointer}/{key}/mean", file) + se(s.stderr)), *gap_cells, *per])
    return (table(["strategy", "TNMSE (time-averaged)", *gaps, *(f"t = {t}" for t in times)], rows,
                  set(range(1, 2 + len(gaps) + len(times))))
            + '<p class="note">Each cell: the mean, and under it its standard error'
            + ("; gaps: (TNMSE − limit) / limit" if gaps else "") + ".</p>")


def _below(r: OptimizeRecord, key: str) -> str:
    if r.improvement is None:
        return ""
    value = getattr(r.improvement, key)
    return f"optimised is {num(value, f'/improvement/{key}', FILE, f'{100 * value:.1f} %')} below this"


def _gap(r: OptimizeRecord, key: str) -> str:
    value = r.gap(key)
    if value is None:
        return ""
    return f"; optimised: (TNMSE − it) / it = {num(value, f'/{key}/optimised', FILE, f'{100 * value:+.1f} %')}"


def optimize_headline(r: OptimizeRecord) -> str:
    """The cards: the optimised TNMSE, the best hand-crafted and F = 1 strategies, the bounds."""
    scores, labels = r.tnmse, r.labels
    opt, hand, f1 = scores.optimised, scores.best_hand_crafted, scores.best_f1_baseline
    hand_key, f1_key = scores.key_of(hand), scores.key_of(f1)
    cards = [
        card("optimised TNMSE", num(opt.mean, "/tnmse/optimised/mean", FILE),
             f"± {fmt(opt.stderr)} s.e.; cell {cell_text(list(r.cell.significance))}"),
        card(f"best hand-crafted: {labels[hand_key]}", num(hand.score.mean, f"/tnmse/{hand_key}/mean", FILE),
             _below(r, "vs_best_hand_crafted")),
        card(f"best F=1 baseline: {labels[f1_key]}", num(f1.score.mean, f"/tnmse/{f1_key}/mean", FILE),
             _below(r, "vs_best_f1_baseline")),
    ]
    b = r.bound
    if b is not None:
        cards.append(card(f"bound: lowest expected TNMSE (F={fmt(b.f)})", num(b.tnmse, "/bound/tnmse", FILE),
                          "any mapping weight → targets, one free read-out scale per time" + _gap(r, "gap_to_bound")))
        if isinstance(b.compensated_tnmse, (int, float)):
            cards.append(card(f"bound under the deployed compensation (F={fmt(b.compensated_f)})",
                              num(b.compensated_tnmse, "/bound/compensated_tnmse", FILE),
                              "α from calibration reads, β free" + _gap(r, "gap_to_compensated")))
    else:
        for label, ptr, value in r.legacy_bounds:
            cards.append(card(label.replace("_", " "), num(value, ptr, FILE),
                              "expected-error bound / gap recorded by the run"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def optimize_fallback_command(r: OptimizeRecord, folder: Path) -> str:
    """The command that reproduces the run, rebuilt from its settings (when command.json is missing)."""
    s = r.settings
    sig = s.significance
    args = ["weightprog", "optimize", "--device", r.device["name"], "--pairs", str(s.pairs),
            "--significance", "auto" if sig is None else ",".join(f"{f:g}" for f in sig),
            "--f-max", str(s.f_max), "--times", ",".join(format_times(r.times_s)),
            "--grid", str(s.grid_points), "--grid-placement", str(s.grid_placement),
            "--mode", str(s.mode), "--max-generations", str(s.max_generations),
            "--popsize", str(s.popsize), "--seed", str(r.seed),
            "--rescore-blocks", str(s.rescore_blocks), "--out", str(folder)]
    w = r.weights
    args[2:2] = ["--distribution", w.split(":", 1)[1]] if w.startswith("distribution:") else ["--weights", w]
    if s.budget_s is not None:
        args[-2:-2] = ["--budget", f"{s.budget_s:g}"]
    if s.polish is False:
        args[-2:-2] = ["--no-polish"]
    return shlex.join(args)


def _inputs(r: OptimizeRecord) -> str:
    s = r.settings
    rescore = r.rescore
    return kv_table([
        ("weights", f"{r.weights} (search sample {fmt(r.search_weights)} weights)"),
        ("device", device_row(r.device)),
        ("cell", f"{r.cell.pairs} pair(s), {cell_text(list(r.cell.significance))}, β = {fmt(r.beta)}"
                 + (" (searched F = 1…" + str(s.f_max) + ")" if s.significance is None else "")),
        ("times after programming", times_text(list(r.times_s))),
        ("grid", f"{s.grid_points} points, {s.grid_placement} placement, {s.mode} mode"),
        ("search", f"popsize {s.popsize}, at most {s.max_generations} generations, tol {s.tol}, "
                   f"budget {s.budget_s if s.budget_s is not None else 'none'}"
                   + (f"; method {r.method}" if r.method else "")
                   + (f"; objective {s.objective}" if s.objective else "")
                   + (f"; weighting {s.weighting}" if s.weighting else "")),
        ("aihwkit", None if r.expressible is None else
         "the strategy is expressible by aihwkit's CustomPairConductanceConverter" if r.expressible
         else "not expressible by aihwkit's converter (strategy.aihwkit.json holds the best one that is)"),
        ("re-scoring", f"{rescore.blocks if rescore else None} fresh samples, "
                       f"{fmt(rescore.weights if rescore else None)} weights, fresh draws"),
        ("seed", r.seed),
        ("weightprog version", r.weightprog_version),
        ("wall time", f"{fmt(r.wall_time_s)} s"),
    ])


def _bound_tables(r: OptimizeRecord) -> str:
    b = r.bound
    if b is not None and b.per_f:
        return ("<h3>Bound per significance factor F (expected TNMSE, large-column limit)</h3>"
                + table(["F", "bound (free scale per time)", "under the deployed compensation",
                         "β (µS per unit weight)", "wall s"],
                        [[x.f, Raw(num(x.bound, f"/bound/per_f/{i}/bound", FILE)),
                          Raw(num(x.compensated, f"/bound/per_f/{i}/compensated", FILE))
                          if isinstance(x.compensated, (int, float)) else "n/a", x.beta, x.wall_time_s]
                         for i, x in enumerate(b.per_f)], {0, 1, 2, 3, 4})
                + (f'<p class="note">{esc(b.note)}</p>' if b.note else ""))
    if b is None and r.legacy_bound_rows:
        return "<h3>Bound and gap (as report.json records them)</h3>" + table(
            ["field", "value"], [[label, Raw(num(v, ptr, FILE))] for label, ptr, v in r.legacy_bound_rows], {1})
    return ""


def _tables(r: OptimizeRecord, folder: Path) -> str:
    search_rows = [[label + (" (chosen)" if label == r.chosen_search else ""), x.generations, x.evaluations, x.loss,
                    "yes" if x.converged else "no", x.message, x.wall_time_s,
                    "—" if x.polish_kept is None else "kept" if x.polish_kept else "not kept"]
                   for label, x in r.search.items()]
    gaps = {title: (f"/{key}", g) for key, title, g in (("gap_to_bound", "above the bound", r.gap_to_bound),
                                                        ("gap_to_compensated", "above the compensated bound",
                                                         r.gap_to_compensated)) if g is not None}
    tables = ("<h3>Weight error (re-scored on fresh samples and draws)</h3>"
              + tnmse_table(r.tnmse, r.labels, r.times_s, FILE, "/tnmse", gaps)
              + "<h3>Searches</h3>"
              + table(["search", "generations", "evaluations", "loss", "converged", "stopped because", "wall s",
                       "polish"], search_rows, {1, 2, 3, 6})) + _bound_tables(r)
    if r.per_layer:
        tables += "<h3>Per-layer strategies</h3>" + table(
            ["layer", "weights", "own strategy TNMSE", "network-wide TNMSE", "gain", "file"],
            [[x.layer, x.weights, x.tnmse_layer_strategy.mean, x.tnmse_network_strategy.mean,
              pct(1 - x.tnmse_layer_strategy.mean / x.tnmse_network_strategy.mean), x.strategy]
             for x in r.per_layer], {1, 2, 3, 4})
    if r.error_split:
        tables += error_split_table(r.error_split)
    if (folder / "strategy.json").is_file():
        st = read_json(folder / "strategy.json")
        cols = len(st["conductances"][0]) if st.get("conductances") else 0
        head = ["w / w_max"] + [f"g{'+' if k % 2 == 0 else '−'} pair {k // 2 + 1} (µS)" for k in range(cols)]
        tables += ("<h3>Optimised strategy (strategy.json)</h3>"
                   + table(head, [[g, *row] for g, row in zip(st["grid"], st["conductances"])], set(range(cols + 1))))
    return tables


def optimize_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    path = folder / FILE
    if not path.is_file():  # interrupted: what the checkpoints say
        return interrupted_page("optimize", folder, sorted(folder.glob("checkpoint_*.json")), command), False
    r = OptimizeRecord.from_json(read_json(path))
    question = (f"Which programming strategy gives {esc(r.weights)} the lowest time-averaged weight error "
                f"on {esc(r.device['name'])}, with {r.cell.pairs} pair(s) per weight, over "
                f"{esc(times_text(list(r.times_s)))}?")
    figures = "".join([
        png_figure(folder / "strategy.png", "optimised strategy: target conductance of each device vs weight, "
                                            "weight density behind"),
        png_figure(folder / "tnmse_vs_time.png", "weight error (NMSE) vs time after programming, ± s.e., fresh draws"),
        png_figure(folder / "error_distribution.png", "distribution of the weight error at each time"),
        png_figure(folder / "convergence.png", "best loss per generation of each search"),
    ])
    sections = [section("Result", optimize_headline(r)),
                *([section("On the network", network_section(r.network))] if r.network else []),
                section("Question and inputs", _inputs(r) + device_curves_figure([r.device])),
                section("Figures", figures), section("Tables", _tables(r, folder)),
                reproduce_section(command, optimize_fallback_command(r, folder)), files_section(folder)]
    return page(f"weightprog optimize: {folder.name}", question, True, sections), True


def error_split_table(splits: tuple[ErrorSplitRecord, ...]) -> str:
    """Systematic and random parts of each strategy's expected error per time, and how large the largest
    weight reads (E[αŵ]/w at the largest node)."""
    times = splits[0].times_s
    rows = [[Raw(swatch(e.strategy) + esc(e.strategy)),
             *(f"{fmt(x)} / {fmt(y)}" for x, y in zip(e.systematic, e.random)),
             f"{100 * top:.1f} % of itself" if (top := e.largest_weight_ratio) is not None else ""]
            for e in splits]
    return ("<h3>Where the error comes from: systematic / random part of the expected NMSE</h3>"
            + table(["strategy", *(f"t = {format_time(t)}" for t in times),
                     f"largest weight at {format_time(times[-1])}"], rows, set(range(1, len(times) + 2))))


def network_section(n: NetworkSelection) -> str:
    """optimize --model: every candidate's metric on the network (mean and 95 % interval per time),
    the limit, the one chosen, and whether weight error ranked them the same way."""
    times = sorted({x.time_s for x in n.rows})
    rows = []
    for name in n.network_ranking + ([n.limit_name] if n.limit_name else []):
        is_limit = name == n.limit_name
        got: dict[float, tuple[int, NetworkRow]] = {x.time_s: (i, x) for i, x in enumerate(n.limit if is_limit
                                                                                          else n.rows)
                                                    if x.strategy == name}
        base = "/network/limit" if is_limit else "/network/rows"
        rows.append([Raw(swatch(name) + esc(name) + (" (chosen)" if name == n.chosen else "")),
                     *(Raw(num(got[t][1].mean, f"{base}/{got[t][0]}/mean", FILE)
                           + interval(got[t][1].ci_low, got[t][1].ci_high)) for t in times)])
    split = ("held-out (validate) data" if n.split == "validate" else "the test data (the spec has no validate)")
    words = (f"<p>Every candidate programmed onto the network {n.repeats} times (the same seeds and examples for "
             f"each) and scored on {esc(split)}: {esc(n.metric)}, {'higher' if n.higher_is_better else 'lower'} "
             f"is better; chosen by {esc(n.rule)}: <b>{esc(n.chosen)}</b>. 95 % intervals over "
             f"{esc(n.interval_over)}.</p>"
             + ("<p>Weight error and the network agree on the best candidate.</p>" if n.agrees else
                f"<p><b>Weight error and the network disagree.</b> By weight error: "
                f"{esc(' < '.join(n.tnmse_ranking))}; on the network (best first): "
                f"{esc(' > '.join(n.network_ranking))}.</p>"))
    return words + table(["strategy", *(f"t = {format_time(t)}" for t in times)], rows, set(range(1, len(times) + 1)))
