"""The sweep summary figure: optimised vs best hand-crafted TNMSE per configuration, one point
per seed, a row per configuration."""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from ..fileio import atomic_write
from .figure import subplots
from .palette import OPTIMISED, legend_outside, strategy_colour


def plot_summary(rows: list[dict], path: Path, title: str = "") -> None:
    """Draw the sweep summary: per configuration (a row), each seed's optimised TNMSE and its best
    hand-crafted one.

    Parameters
    ----------
    rows
        summary.csv rows (`weightprog.sweep.summary_rows`).
    path
        The PNG to write (atomically).
    title
        The sweep's name, first in the figure's title.
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        sig = f"P={r['pairs']} " + ("F≤" + str(r["f_max"]) if r["significance"] == "auto" else "f=" + r["significance"])
        label = f"{r['kind'][:3]} {r['device']} {sig} grid {r['grid_points']} {r['times']} {r['weights']}"
        groups.setdefault(label, []).append(r)
    labels = list(groups)
    fig, ax = subplots(figsize=(7, 0.32 * len(labels) + 1.5))
    families = {}
    for i, label in enumerate(labels):
        for r in groups[label]:
            colour = strategy_colour(r["best_hand_crafted"])
            families[r["best_hand_crafted"].split()[0].replace("_best", "")] = colour
            ax.scatter([float(r["tnmse_best_hand"])], [i], facecolor="none", edgecolor=colour, s=42, lw=1.4,
                       zorder=3)
            ax.scatter([float(r["tnmse_optimised"])], [i], color=OPTIMISED, s=16, zorder=4)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xscale("log")
    # major ticks only, at most ~5 labels: minor-tick labels of a narrow log range overlap
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=6))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("TNMSE (re-scored on fresh draws), one point per seed")
    ax.grid(axis="x", alpha=0.3, which="both")
    handles = [Line2D([], [], ls="", marker="o", color=OPTIMISED, ms=5, label="optimised")]
    handles += [Line2D([], [], ls="", marker="o", mfc="none", mec=c, ms=7, mew=1.4, label=f"best hand-crafted: {f}")
                for f, c in families.items()]
    legend_outside(ax, handles=handles, fontsize=7)
    jobs = len({r["id"] for r in rows})
    ax.set_title(f"{title}: {jobs} finished job(s), {len(rows)} row(s)", fontsize=9)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
