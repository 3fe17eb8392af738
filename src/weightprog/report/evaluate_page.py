"""report.html of an `evaluate` folder, built from its results.json (`EvaluateRecord`)."""

from __future__ import annotations

from pathlib import Path

from ..records.evaluate import EvaluateRecord, SummaryRow
from ..timeunits import format_time, format_times
from .cells import interval, swatch
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
    png_figure,
    read_json,
    reproduce_section,
    section,
    table,
    times_text,
    vs_digital,
)

FILE = "results.json"


def _headline(r: EvaluateRecord) -> str:
    name, times, digital = r.metric_name, r.times_s, r.digital_metric
    last = format_time(times[-1])
    cards = [card(f"digital (FP) {name}", num(digital, "/digital_metric", FILE),
                  f"no analogue noise; {'higher' if r.higher_is_better else 'lower'} is better")]
    for i, x in enumerate(r.summary):
        if x.time_s == times[-1]:
            sub = f"± {fmt(x.std)} (std of {x.n} realisations)"
            if isinstance(digital, (int, float)) and isinstance(x.mean, (int, float)):
                sub += f"; {vs_digital(x.mean, digital, r.higher_is_better)}"
            if x.weight_nmse_mean is not None:
                sub += f"; weight NMSE {num(x.weight_nmse_mean, f'/summary/{i}/weight_nmse_mean', FILE)}"
            cards.append(card(f"{x.strategy} at {last}", swatch(x.strategy) + num(x.mean, f"/summary/{i}/mean", FILE),
                              sub))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _inputs(r: EvaluateRecord) -> str:
    m = r.mapping
    return kv_table([
        ("model", r.model),
        ("strategies", ", ".join(r.strategy_names)),
        ("device", device_row(r.device)),
        ("cells", "; ".join(f"{name}: {cell_text(sig)}" if sig is not None else f"{name}: per time"
                            for name, sig in r.cells())),
        ("mapping", f"{fmt(m.analog_weights)} analogue weights on {m.tiles} tile(s) of ≤ "
                    f"{m.tile_rows}×{m.tile_cols}; {fmt(m.digital_params)} parameters digital; "
                    f"normalise {m.normalise}, compensation {m.compensation}"),
        ("periphery", ", ".join(f"{k} {v}" for k, v in r.periphery.items())),
        ("times after programming", times_text(list(r.times_s))),
        ("realisations", r.repeats),
        ("seed", r.seed),
        ("compute", r.compute),
        ("weightprog version", r.weightprog_version),
        ("wall time", f"{fmt(r.wall_time_s)} s" + (f"; {r.timing.describe()}" if r.timing else "")),
    ])


def _tables(r: EvaluateRecord) -> str:
    name, times, strategies = r.metric_name, r.times_s, r.strategy_names
    labels = format_times(times)
    by: dict[tuple[str, float], tuple[int, SummaryRow]] = {(x.strategy, x.time_s): (i, x)
                                                            for i, x in enumerate(r.summary)}
    rows = []
    for s_name in strategies:
        cells: list[Raw | str] = []
        for t in times:
            if (s_name, t) in by:
                i, x = by[(s_name, t)]
                cells.append(Raw(num(x.mean, f"/summary/{i}/mean", FILE) + interval(x.ci_low, x.ci_high, x.std)))
            else:
                cells.append("")
        rows.append([Raw(swatch(s_name) + esc(s_name)), *cells])
    nmse_rows = [[Raw(swatch(s_name) + esc(s_name)),
                  *(f"{fmt(x.weight_nmse_mean)} ± {fmt(x.weight_nmse_std)}"
                    if (s_name, t) in by and (x := by[(s_name, t)][1]).weight_nmse_mean is not None else ""
                    for t in times)] for s_name in strategies]
    layer_rows = [[x.strategy, x.layer, x.weight_nmse_mean, x.weight_nmse_std]
                  for x in r.weight_nmse_per_layer if x.time_s == times[-1]]
    over = r.interval_over
    paired = [[x.strategy, x.versus, x.time, fmt(x.diff), f"[{fmt(x.ci_low)}, {fmt(x.ci_high)}]", x.verdict]
              for x in r.paired]
    last = format_time(times[-1])
    return ((f"<h3>{esc(name)}: mean and 95 % interval over {esc(over)} ({r.repeats} realisations)</h3>"
             if over else f"<h3>{esc(name)}: mean ± std over {r.repeats} realisations</h3>")
            + table(["strategy", *(f"t = {t}" for t in labels)], rows, set(range(1, len(labels) + 1)))
            + ("<h3>Paired differences (same realisations and examples), 95 % intervals</h3>"
               + table(["strategy", "versus", "time", "difference", "95 % interval", "verdict"], paired, {3})
               if paired else "")
            + (("<h3>Weight NMSE of the analogue layers (mean ± std over realisations)</h3>"
                + table(["strategy", *(f"t = {t}" for t in labels)], nmse_rows, set(range(1, len(labels) + 1))))
               if any(x.weight_nmse_mean is not None for x in r.summary) else "")
            + (f"<h3>Weight NMSE per layer at {esc(last)}</h3>"
               + table(["strategy", "layer", "weight NMSE", "± std"], layer_rows, {2, 3}) if layer_rows else "")
            + "<h3>Analogue layers</h3>"
            + table(["layer", "kind", "shape", "matrix", "tiles", "weights"],
                    [[x.name, x.kind, "×".join(map(str, x.shape)), "×".join(map(str, x.matrix)),
                      "×".join(map(str, x.tiles)), x.weights] for x in r.mapping.layers], {5})
            + f'<p class="note">Every realisation: results.csv ({len(r.rows)} rows).</p>')


def evaluate_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    r = EvaluateRecord.from_json(read_json(folder / FILE))
    times = r.times_s
    question = (f"How does {esc(r.metric_name)} of {esc(r.model)} hold up from {esc(format_time(times[0]))} to "
                f"{esc(format_time(times[-1]))} after programming it into {esc(r.device['name'])} with each "
                "strategy?")
    figures = png_figure(folder / "accuracy_vs_time.png", f"{r.metric_name} vs time after programming, mean and "
                                                          "its 95 % interval as a band, digital (FP) dotted")
    sections = [section("Result", _headline(r)),
                section("Question and inputs", _inputs(r) + device_curves_figure([r.device])),
                section("Figures", figures), section("Tables", _tables(r)),
                reproduce_section(command), files_section(folder)]
    return page(f"weightprog evaluate: {folder.name}", question, True, sections), True
