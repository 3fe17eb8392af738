"""The figure of `weightprog device flipmap --search`: every scaled device the search scored, in
the plane of expected TNMSE changes (naive, optimised), and the Monte-Carlo checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..flipcheck import FlipSearchResult
from ..flipsearch import FLIP, REVERSE
from .advise_plots import VERDICT_COLOURS, save
from .figure import subplots


def plot_flip_search(record: FlipSearchResult, path: str | Path) -> Path:
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
    return save(fig, path)
