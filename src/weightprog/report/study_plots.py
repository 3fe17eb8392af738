"""Figures of the paper's study (`weightprog study`): each workload's metric over time per device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..fileio import atomic_write
from ..timeunits import format_times
from .figure import subplots
from .palette import DIGITAL, legend_outside, strategy_style


def plot_study_metric(name: str, metric: str, drec: dict, times_s: Sequence[float], repeats: int,
                      path: str | Path, dev_name: str, fp_digital: float) -> None:
    """Metric vs time (log), mean ±1σ per strategy, one panel per variant, FP digital line.

    Parameters
    ----------
    name, metric
        The workload and its metric's name (`accuracy`, `perplexity`).
    drec
        The device's record in the workload's results.json (`variants` → strategies' mean and std).
    times_s, repeats
        The study's times after programming (s) and realisations.
    path
        The PNG to write (atomically).
    dev_name
        The device, for the panel titles.
    fp_digital
        The FP model's digital metric (the dotted line).
    """
    variants = list(drec["variants"])
    fig, axes = subplots(1, len(variants), figsize=(4.6 * len(variants), 3.4), squeeze=False, sharey=True)
    times = list(times_s)
    for ax, v in zip(axes[0], variants):
        for role, s in drec["variants"][v]["strategies"].items():
            m, sd = torch.tensor(s["mean"]), torch.tensor(s["std"])
            line, = ax.plot(times, m, ms=3, label=f"{role}: {s['label']}",
                            **strategy_style("naive" if role == "naive" else s["label"]))
            ax.fill_between(times, m - sd, m + sd, color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(fp_digital, color=DIGITAL, ls=":", lw=1.2, label="FP model, digital")
        ax.set_xscale("log")
        ax.set_xticks(times)
        ax.set_xticklabels(format_times(times), fontsize=7)
        ax.minorticks_off()
        ax.set_title(f"{name}, {v.upper()}-trained, {dev_name}", fontsize=9)
        ax.set_xlabel("time after programming", fontsize=8)
        ax.grid(alpha=0.3)
    legend_outside(axes[0][-1], fontsize=7)
    axes[0][0].set_ylabel(f"{metric} (mean ±1σ, R={repeats})", fontsize=8)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
