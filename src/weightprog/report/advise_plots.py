"""Figures of `weightprog device advise` (a tornado of payoffs) and `device flipmap` (where the
naive and the optimised comparisons disagree)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from ..advise import LABELS, VERDICTS, Advice, FlipMap
from ..fileio import atomic_write
from .figure import subplots
from .palette import BOUND, FAMILIES, OPTIMISED


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
    return save(fig, path)


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
    return save(fig, path)


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return path

