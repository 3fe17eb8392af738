"""The figure of `weightprog device flipmap --search`: every scaled device the search scored, in
the plane of expected TNMSE changes (naive, optimised), and the Monte-Carlo checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..flipcheck import FlipSearchResult
from ..flipsearch import FLIP, REVERSE
from .advise_plots import VERDICT_COLOURS, save
from .figure import subplots


def plot_flip_search(result: FlipSearchResult, path: str | Path) -> Path:
    """Every scaled device the search scored in the plane of expected changes (naive, optimised),
    the flip quadrants shaded, and each checked candidate's paired re-score with ±2 s.e.: all of
    them (left, clipped to ±50 %) and the neighbourhood of the base, where flips can be (right)."""
    fig, axes = subplots(1, 2, figsize=(13.0, 6.0))
    points = [(100 * (t.expected.naive / result.base_expected.naive - 1),
               100 * (t.expected.optimised / result.base_expected.optimised - 1), s.direction)
              for s in result.searches for t in s.trials]
    far = min(max([abs(v) for x, y, _ in points for v in (x, y)] + [1.0]), 50.0)
    near = max([2.0] + [300 * max(abs(c.naive.change) + c.naive.stderr, abs(c.optimised.change) + c.optimised.stderr)
                        for c in result.checks])
    for ax, span in zip(axes, (far, min(near, far))):
        _panel(ax, result, points, span)
    axes[0].legend(loc="upper left", fontsize=7, frameon=False)
    lo, hi = result.plan.bounds
    fig.suptitle(f"scaled {result.base} (5 factors {lo:g}…{hi:g}); shaded: a ranking flip", fontsize=10)
    return save(fig, path)


def _panel(ax, result: FlipSearchResult, points: list[tuple[float, float, str]], span: float) -> None:
    colours = {FLIP: VERDICT_COLOURS[FLIP], REVERSE: VERDICT_COLOURS[REVERSE]}
    ax.fill_between([-span, 0], 0, span, color=colours[FLIP], alpha=0.12, lw=0)
    ax.fill_between([0, span], -span, 0, color=colours[REVERSE], alpha=0.12, lw=0)
    for direction in colours:
        xy = np.array([(x, y) for x, y, d in points if d == direction]).reshape(-1, 2).clip(-span, span)
        if len(xy) == 0:  # a direction not searched
            continue
        ax.scatter(xy[:, 0], xy[:, 1], s=8, color=colours[direction], alpha=0.5,
                   label=f"expected, search for '{direction}'")
    for c in result.checks:
        ax.errorbar(100 * c.naive.change, 100 * c.optimised.change, xerr=200 * c.naive.stderr,
                    yerr=200 * c.optimised.stderr, fmt="o", color="black", ms=4, capsize=3)
        ax.annotate(c.device.split(":", 1)[-1].replace(",", "\n"), (100 * c.naive.change, 100 * c.optimised.change),
                    fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.errorbar([], [], fmt="o", color="black", ms=4, label="re-scored (paired, ±2 s.e.)")
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_xlabel(f"naive (lsp-first F=1): TNMSE change vs {result.base} (%)")
    ax.set_ylabel(f"optimised: TNMSE change vs {result.base} (%)")
