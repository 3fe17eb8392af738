"""Figures of the paper's study (`weightprog study`): each workload's metric over time per device,
every strategy with its 95 % interval as a band."""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path

from matplotlib.figure import Figure

from ..fileio import atomic_write
from ..study.data import StudyData
from ..study.tables import fp_digital, summary_rows
from ..timeunits import format_times
from .palette import BOUND, DIGITAL, strategy_style


def _save(fig: Figure, tmp: Path) -> None:
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_study(data: StudyData, folder: Path) -> list[Path]:
    """`<workload>_<device>_metric_vs_time.png` per workload and device: one panel per trained
    variant, each strategy's mean with its 95 % band, the FP model's digital metric dotted.

    Returns
    -------
    list of Path
        The figures written (atomically).
    """
    rows = [r for r in summary_rows(data) if not r.beside]  # the study's own periphery at every time
    ref = fp_digital(data)
    metric = {d.workload: d.metric_name for d in data.digital if d.variant == "fp"}
    panels: dict[tuple[str, str], dict[str, dict[tuple[str, str], list]]] = defaultdict(lambda: defaultdict(
        lambda: defaultdict(list)))
    for r in rows:
        panels[(r.workload, r.device)][r.variant][(r.role, r.strategy)].append(r)
    written = []
    for (w, d), variants in sorted(panels.items()):
        fig = Figure(figsize=(4.6 * len(variants), 3.4))
        axes = fig.subplots(1, len(variants), squeeze=False, sharey=True)[0]
        for ax, (v, curves) in zip(axes, sorted(variants.items())):
            times: list[float] = []
            for (role, label), pts in curves.items():
                times = sorted({p.time_s for p in pts} | set(times))
                t = [p.time_s for p in pts]
                style = ({"color": BOUND, "ls": "--", "lw": 1.2, "marker": "v"} if role == "limit" else
                         strategy_style(role if role in ("naive", "optimised") else label))
                line, = ax.plot(t, [p.mean for p in pts], ms=3, label=f"{role}: {label}", **style)
                ax.fill_between(t, [p.ci_low for p in pts], [p.ci_high for p in pts], color=line.get_color(),
                                alpha=0.2, lw=0)
            if w in ref:
                ax.axhline(ref[w], color=DIGITAL, ls=":", lw=1.2, label="FP model, digital")
            ax.set_xscale("log")
            ax.set_xticks(times)
            ax.set_xticklabels(format_times(times), fontsize=7)
            ax.minorticks_off()
            ax.set_title(f"{w}, {v.upper()}-trained, {d}", fontsize=9)
            ax.set_xlabel("time after programming", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, loc="lower left", frameon=False)  # per panel: each variant has its own strategies
        axes[0].set_ylabel(f"{metric.get(w, 'metric')} (mean, 95 % interval)", fontsize=8)
        path = folder / f"{w}_{d}_metric_vs_time.png"
        atomic_write(path, partial(_save, fig))
        written.append(path)
    return written
