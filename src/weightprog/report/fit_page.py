"""report.html of a `device fit` folder, built from its *.fit.json (`FitRecord`)."""

from __future__ import annotations

from pathlib import Path

from ..records.fit import FIT_SUFFIX, FitRecord, read_fit_record
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
    reproduce_section,
    section,
    table,
    times_text,
)


def _fit_body(r: FitRecord, file: str, folder: Path) -> str:
    bins = r.bins
    rows = [[Raw(num(x.g, f"/bins/{k}/g", file)), x.n_devices,
             Raw(f"{num(x.sigma_p, f'/bins/{k}/sigma_p', file)} ± {esc(fmt(x.sigma_p_se))}"),
             Raw(f"{num(x.nu_mean, f'/bins/{k}/nu_mean', file)} ± {esc(fmt(x.nu_mean_se))}"),
             f"{fmt(x.nu_std)} ± {fmt(x.nu_std_se)}", f"{fmt(x.q)} ± {fmt(x.q_se)}", x.bias,
             "yes" if x.clean else "no (copied from the nearest clean bin)"]
            for k, x in enumerate(bins)]
    headline = '<div class="cards">' + "".join([
        card("device fitted", esc(r.device["name"]), f"written to {esc(r.device_file)}"),
        card("measurements", num(r.devices, "/devices", file, f"{r.devices:,}"),
             f"devices, {r.reads:,} reads, {len(bins)} conductance bins"),
        card("bins fitted directly", f"{sum(x.clean for x in bins)} of {len(bins)}",
             "the others copy drift and Q from their nearest clean bin"),
    ]) + "</div>" + "".join(f'<p class="note">note: {esc(n)}</p>' for n in r.notes)
    inputs = kv_table([
        ("measurements", r.measurements), ("times read", times_text(list(r.times_s))),
        ("settings", ", ".join(f"{k} {v}" for k, v in r.settings.items())),
        ("device", device_row(r.device)),
        ("weightprog version", r.version),
    ])
    return (section("Result", headline)
            + section("Question and inputs", inputs + device_curves_figure([r.device]))
            + section("Figures", png_figure(r.figure_path(folder), "fit diagnostics: measured vs fitted G(t), "
                                                                   "residuals of the bin means, drift per device, "
                                                                   "programming error"))
            + section("Tables", "<h3>Per-bin estimates ± standard error</h3>" + table(
                ["G (µS)", "devices", "σ_p (µS)", "ν mean", "ν std", "Q", "first-read bias (µS)", "fitted directly"],
                rows, {0, 1, 2, 3, 4, 5, 6})))


def fit_page(folder: Path, command: RunCommand | None) -> tuple[str, bool]:
    fits = [(p, read_fit_record(p)) for p in sorted(folder.glob("*" + FIT_SUFFIX))]
    sections, names = [], []
    for path, r in fits:
        names.append(r.device["name"])
        body = _fit_body(r, path.name, folder)
        sections.append(f"<h2>{esc(r.device['name'])} ({esc(path.name)})</h2>" + body if len(fits) > 1 else body)
    question = ("What tabulated device model do these measurements give (programming error, drift, read noise per "
                "conductance bin), and how well does it reproduce them?")
    sections += [reproduce_section(command), files_section(folder)]
    return page(f"weightprog device fit: {', '.join(names)}", question, True, sections), True
