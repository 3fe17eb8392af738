"""Figure of a device comparison: TNMSE vs time per device, naive dashed, optimised solid, log-log."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import NullLocator

from ..fileio import atomic_write
from ..timeunits import format_times
from .figure import subplots
from .palette import device_colour, legend_outside


def plot_compare_tnmse_vs_time(comparison, path: Path, title: str = "") -> None:
    times = list(comparison.times_s)
    name = comparison.naive
    fig, ax = subplots(figsize=(7, 4.2))
    for row in comparison.rows:
        c = device_colour(row.device)
        naive, opt = row.score(name), row.scores.optimised
        ax.errorbar(times, naive.per_time, yerr=naive.per_time_stderr or None, color=c, ls="--", lw=1.3,
                    marker="s", ms=3, capsize=2, label=f"{row.device} naive ({name} F=1): {naive.mean:.3e}")
        ax.errorbar(times, opt.per_time, yerr=opt.per_time_stderr or None, color=c, ls="-", lw=2.4,
                    marker="o", ms=4, capsize=2,
                    label=f"{row.device} optimised (f={','.join(f'{f:g}' for f in row.cell)}): {opt.mean:.3e}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(times, format_times(times))
    ax.set_xlabel("time after programming")
    ax.set_ylabel("NMSE of compensated weights")
    ax.set_title(title or "devices compared: naive (dashed) vs optimised (solid)")
    legend_outside(ax, fontsize=7)
    ax.xaxis.set_minor_locator(NullLocator())  # ticks at the run's times only
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor", axis="y")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
