"""report.html of a `compare-devices` folder, built from its comparison.json (`ComparisonRecord`)."""

from __future__ import annotations

from pathlib import Path

from ..records.comparison import ComparisonRecord
from ..timeunits import format_times
from .cells import swatch
from .interrupted import interrupted_page
from .page import (
    Raw,
    RunCommand,
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

FILE = "comparison.json"


def _headline(r: ComparisonRecord) -> str:
    from .palette import device_colour

    key = r.naive_key
    rows = []
    for i, d in enumerate(r.devices):
        naive, opt = d.naive(key), d.tnmse.optimised
        rows.append([Raw(f'<span class="swatch" style="background:{device_colour(d.device)}"></span>'
                         + esc(d.device)),
                     Raw(num(naive.mean, f"/devices/{i}/tnmse/{key}/mean", FILE)), naive.stderr,
                     Raw(num(opt.mean, f"/devices/{i}/tnmse/optimised/mean", FILE)), opt.stderr,
                     pct(-(1 - opt.mean / naive.mean)), cell_text(list(d.cell)),
                     r.ranking.by_naive.index(d.device) + 1, r.ranking.by_optimum.index(d.device) + 1])
    return (f"<p><strong>{esc(r.ranking.sentence)}</strong></p>"
            + table(["device", f"naive ({r.naive})", "± s.e.", "optimised", "± s.e.", "optimised vs naive",
                     "cell", "rank naive", "rank optimised"], rows, {1, 2, 3, 4, 5, 7, 8}))


def _inputs(r: ComparisonRecord) -> str:
    s = r.settings
    return kv_table([
        ("weights", f"{r.weights} (search sample {fmt(r.search_weights)}, re-scored on "
                    f"{fmt(r.rescore_weights)} weights)"),
        ("devices", Raw("<br>".join(esc(device_row(d.model)) for d in r.devices))),
        ("cell", f"{s.pairs} pair(s), " + ("F = 1…" + str(s.f_max) + " searched"
                                          if s.significance is None else cell_text(list(s.significance)))),
        ("times after programming", times_text(list(r.times_s))),
        ("search", f"grid {s.grid_points}, popsize {s.popsize}, at most {s.max_generations} "
                   f"generations, polish {'on' if s.polish else 'off'}"),
        ("seed", s.seed),
        ("weightprog version", r.weightprog_version),
        ("wall time", f"{fmt(sum(d.wall_time_s for d in r.devices))} s (sum over devices)"),
    ])


def compare_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    if not (folder / FILE).is_file():
        checkpoints = sorted(folder.glob("checkpoints/*/checkpoint_*.json"))
        return interrupted_page("compare-devices", folder, checkpoints, command), False
    r = ComparisonRecord.from_json(read_json(folder / FILE))
    names = [d.device for d in r.devices]
    question = (f"Which memory device is best for {esc(r.weights)}: ranked by naive programming "
                f"({esc(r.naive)}) and at each device's optimum, over {esc(times_text(list(r.times_s)))}?")
    labels = format_times(r.times_s)
    full = []
    for i, d in enumerate(r.devices):
        labels_of = d.labels
        for key, sc in d.tnmse.items():
            if key in labels_of:  # the other methods' strategies are not kept per device
                full.append([d.device, Raw(swatch(key) + esc(labels_of[key])),
                             Raw(num(sc.mean, f"/devices/{i}/tnmse/{key}/mean", FILE)), sc.stderr, *sc.per_time])
    tables = ("<h3>Every strategy on every device (TNMSE, fresh draws)</h3>"
              + table(["device", "strategy", "TNMSE", "± s.e.", *(f"t = {t}" for t in labels)], full,
                      set(range(2, 4 + len(labels))))
              + f'<p class="note">Also in comparison.csv. Ties within 2 s.e.: by optimum '
                f'{esc([list(t) for t in r.ranking.ties_by_optimum])}, by naive '
                f'{esc([list(t) for t in r.ranking.ties_by_naive])}.</p>')
    figures = png_figure(folder / "tnmse_vs_time.png", "weight error vs time per device: naive dashed, optimised solid")
    sections = [section("Result", _headline(r)),
                section("Question and inputs", _inputs(r) + device_curves_figure([d.model for d in r.devices])),
                section("Figures", figures), section("Tables", tables), reproduce_section(command),
                files_section(folder)]
    return page(f"weightprog compare-devices: {', '.join(names)}", question, True, sections), True

