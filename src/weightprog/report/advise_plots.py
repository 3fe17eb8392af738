"""Figures of `weightprog device advise` (a tornado of payoffs) and `device flipmap` (where the
naive and the optimised comparisons disagree)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from ..advise import LABELS, VERDICTS, Advice, FlipMap
from ..flipsearch import FLIP, REVERSE
from ..fileio import atomic_write
from .figure import subplots
from .palette import BOUND, FAMILIES, OPTIMISED

if TYPE_CHECKING:
    from ..records.flipsearch import FlipSearchRecord


def plot_advice(advice: Advice, path: str | Path) -> Path:
    """Horizontal bars: relative TNMSE change per property, optimised beside naive."""
    effects = advice.effects[::-1]  # largest payoff on top
    y = np.arange(len(effects))
    fig, ax = subplots(figsize=(8.0, 0.6 * len(effects) + 1.6))
    series = [("optimised", OPTIMISED, "re-optimised strategy"),
              ("naive", FAMILIES["lsp-first"], "naive (lsp-first F=1)")]
    if effects and "bound" in effects[0].choices():
        series.append(("bound", BOUND, "bound (expected error, free scales)"))
    height = 0.8 / len(series)
    for k, (choice, colour, label) in enumerate(series):
        values = [100 * e.change(choice) for e in effects]
        errors = None if choice == "bound" else [200 * e.change_stderr(choice) for e in effects]
        ax.barh(y + 0.4 - height * (k + 0.5), values, height=height * 0.95, color=colour, xerr=errors,
                capsize=2, label=label)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{LABELS[e.prop]} ×{e.factor:g}" for e in effects])
    ax.set_xlabel("change of time-averaged weight error TNMSE (%)  [bars: ±2 s.e., independent-score bound]")
    ax.set_title(f"{advice.device}: which {advice.improvement:.0%} improvement pays")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


VERDICT_COLOURS = {"both better": "#88CCEE", "both worse": "#DDCC77",
                   "naive better, optimised worse": "#CC3311", "naive worse, optimised better": "#117733",
                   "within error": "#DDDDDD"}


def plot_flip_map(flip: FlipMap, path: str | Path) -> Path:
    """Grid of scaled devices coloured by verdict, each cell labelled with the optimised change (%)."""
    nx, ny = len(flip.x_factors), len(flip.y_factors)
    codes = np.array([VERDICTS.index(p.verdict()) for p in flip.points]).reshape(ny, nx)
    fig, ax = subplots(figsize=(1.0 * nx + 4.5, 0.7 * ny + 1.8))
    ax.imshow(codes, origin="lower", cmap=ListedColormap([VERDICT_COLOURS[v] for v in VERDICTS]),
              vmin=-0.5, vmax=len(VERDICTS) - 0.5, aspect="auto")
    for k, p in enumerate(flip.points):
        i, j = divmod(k, nx)
        ax.text(j, i, f"{100 * p.optimised_change:+.0f}\n{100 * p.naive_change:+.0f}", ha="center", va="center",
                fontsize=7)
    ax.set_xticks(range(nx), [f"{x:g}" for x in flip.x_factors])
    ax.set_yticks(range(ny), [f"{y:g}" for y in flip.y_factors])
    ax.set_xlabel(f"{LABELS[flip.x_prop]} (× {flip.base})")
    ax.set_ylabel(f"{LABELS[flip.y_prop]} (× {flip.base})")
    ax.set_title(f"scaled {flip.base} vs {flip.base}: TNMSE change %, optimised (top) / naive (bottom)",
                 fontsize=9)
    ax.legend(handles=[Patch(color=VERDICT_COLOURS[v], label=v) for v in VERDICTS], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return _save(fig, path)


def plot_flip_search(record: FlipSearchRecord, path: str | Path) -> Path:
    """Every scaled device the search scored in the plane of expected changes (naive, optimised),
    the flip quadrants shaded, and each checked candidate's paired re-score with ±2 s.e."""
    fig, ax = subplots(figsize=(7.5, 6.0))
    colours = {FLIP: VERDICT_COLOURS[FLIP], REVERSE: VERDICT_COLOURS[REVERSE]}
    points = [(100 * (t.expected.naive / record.base_expected.naive - 1),
               100 * (t.expected.optimised / record.base_expected.optimised - 1), s.direction)
              for s in record.searches for t in s.trials]
    span = max([abs(v) for x, y, _ in points for v in (x, y)] + [1.0])
    span = min(span, 50.0)  # the flips lie near the origin; far trials are clipped to the frame
    ax.fill_between([-span, 0], 0, span, color=colours[FLIP], alpha=0.12, lw=0)
    ax.fill_between([0, span], -span, 0, color=colours[REVERSE], alpha=0.12, lw=0)
    for direction in colours:
        xy = np.array([(x, y) for x, y, d in points if d == direction]).reshape(-1, 2).clip(-span, span)
        ax.scatter(xy[:, 0], xy[:, 1], s=8, color=colours[direction], alpha=0.5,
                   label=f"expected, search for '{direction}'")
    for c in record.checks:
        ax.errorbar(100 * c.naive.change, 100 * c.optimised.change, xerr=200 * c.naive.stderr,
                    yerr=200 * c.optimised.stderr, fmt="o", color="black", ms=4, capsize=3)
        ax.annotate(c.device.split(":", 1)[-1].replace(",", "\n"), (100 * c.naive.change, 100 * c.optimised.change),
                    fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.errorbar([], [], fmt="o", color="black", ms=4, label="re-scored (paired, ±2 s.e.)")
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_xlabel(f"naive (lsp-first F=1): TNMSE change vs {record.base} (%)")
    ax.set_ylabel(f"optimised: TNMSE change vs {record.base} (%)")
    lo, hi = record.plan.bounds
    ax.set_title(f"scaled {record.base} (5 factors {lo:g}…{hi:g}); shaded: a ranking flip", fontsize=9)
    ax.legend(loc="best", fontsize=7, frameon=False)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return path
