"""Figures of an optimisation run (PNG, readable without the code).

* strategy: conductance of each device vs normalised weight, weight density behind (paper Fig. 4g–i)
* TNMSE vs time: optimised vs baselines, with standard errors
* weight-error distribution at each time (paper Fig. 3h): optimised vs best hand-crafted
* convergence: best loss per generation of each search
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.ticker import MaxNLocator, NullLocator

from ..fileio import atomic_write
from ..hardware import Mapping, ProgrammedTensor
from ..strategy import Strategy
from ..timeunits import format_times
from .figure import subplots
from .palette import legend_outside, sequence_colours, strategy_colour, strategy_label, strategy_style


def _save(fig, path: Path, tight: bool = True) -> None:
    """PNG; `tight`: cropped to what was drawn (a second rendering), for a figure without a fixed layout."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight" if tight else None))


def plot_strategy(strategy: Strategy, weights: torch.Tensor, path: Path, title: str = "") -> None:
    fig, ax = subplots(figsize=(7, 4.2))
    density = ax.twinx()
    density.hist(weights.reshape(-1).numpy(), bins=120, range=(-1, 1), color="0.85", density=True)
    density.set_ylabel("weight density")
    density.set_yticks([])
    ax.set_zorder(density.get_zorder() + 1)
    ax.patch.set_visible(False)
    u = torch.linspace(-1, 1, 801, dtype=torch.float64)
    g = strategy.targets(u)[0]
    sig = strategy.significance[0].tolist()
    for p in range(strategy.pairs):
        for k, sign in enumerate(("+", "−")):
            ax.plot(u, g[:, 2 * p + k], lw=1.8, ls="-" if sign == "+" else "--",
                    label=f"g{sign} pair {p + 1} (f={sig[p]:g})")
    ax.set_xlabel("normalised weight w / w_max")
    ax.set_ylabel("target conductance (µS)")
    ax.set_xlim(-1, 1)
    ax.set_title(title or f"programming strategy ({strategy.name})")
    legend_outside(ax)
    _save(fig, path)


def plot_tnmse_vs_time(times_s, scores: dict[str, dict], path: Path, title: str = "") -> None:
    fig, ax = subplots(figsize=(7, 4.2))
    for key, score in scores.items():
        ax.errorbar(times_s, score["per_time"], yerr=score.get("per_time_stderr"), ms=4, capsize=2,
                    label=strategy_label(key, score), **strategy_style(key))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(times_s), format_times(times_s))
    ax.set_xlabel("time after programming")
    ax.set_ylabel("NMSE of compensated weights")
    ax.set_title(title or "weight error over time (fresh seeds)")
    legend_outside(ax)
    ax.xaxis.set_minor_locator(NullLocator())  # ticks at the run's times only
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor", axis="y")
    _save(fig, path)


def weight_errors(strategy: Strategy, u: torch.Tensor, device, times_s, seed: int) -> list[torch.Tensor]:
    """Per-weight errors αŵ − w of one programming of the sample, at each time."""
    gen = torch.Generator().manual_seed(seed)
    programmed = ProgrammedTensor(u, strategy, device, Mapping(normalise="tensor"), gen)
    return [(programmed.read(t, gen) - u).reshape(-1) for t in times_s]


def plot_error_distribution(strategies: dict[str, Strategy], u: torch.Tensor, device, times_s,
                            path: Path, seed: int = 0) -> None:
    cols = min(3, len(times_s))
    rows = -(-len(times_s) // cols)
    # a fixed layout, in inches (rendering six log-scale panels once more for tight_layout and again
    # for a tight bounding box took most of the figure's time): legend, title, panels, axis labels
    width, height = 3.6 * cols, 2.8 * rows + 0.3
    layout = dict(left=0.62 / width, right=1 - 0.12 / width, bottom=0.55 / height, top=1 - 0.78 / height,
                  wspace=0.2, hspace=0.38)
    fig, axes = subplots(rows, cols, figsize=(width, height), squeeze=False, gridspec_kw=layout)
    errors = {name: weight_errors(s, u, device, times_s, seed) for name, s in strategies.items()}
    limit = max(float(e[-1].abs().quantile(0.999)) for e in errors.values())
    last = len(times_s) - 1
    for k, label in enumerate(format_times(times_s)):
        ax = axes[k // cols][k % cols]
        for name, errs in errors.items():
            ax.hist(errs[k].numpy(), bins=100, range=(-limit, limit), histtype="step", density=True,
                    color=strategy_colour(name), ls=strategy_style(name)["ls"],
                    lw=1.6 if name == "optimised" else 1.1,
                    label=f"{name}: rms {float(errs[k].pow(2).mean().sqrt()):.3f} at {label}" if k == last else None)
        ax.set_title(f"t = {label}", fontsize=9)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for k in range(len(times_s), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.supxlabel("weight error (α·ŵ − w) / w_max", y=0.1 / height, va="bottom")
    fig.supylabel("probability density (log)", x=0.1 / width, ha="left")
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 1 - 0.06 / height), ncol=len(strategies), fontsize=8,
               frameon=False)
    fig.suptitle("weight-error distribution after programming", y=1 - 0.36 / height, va="top")
    _save(fig, path, tight=False)


def plot_convergence(histories: dict[str, list[float]], path: Path, chosen: str = "") -> None:
    fig, ax = subplots(figsize=(7, 4.2))
    shades = sequence_colours(len(histories))  # one search per cell: a sequence, not the strategy colours
    for (label, history), colour in zip(histories.items(), shades):
        finite = [h for h in history if h < float("inf")]
        ax.plot(range(len(history) - len(finite), len(history)), finite, color=colour,
                lw=2.6 if label == chosen else 1.3, label=label + (" (chosen)" if label == chosen else ""))
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_ylabel("best TNMSE of the search sample")
    ax.set_title("differential weight evolution: convergence (one line per cell searched)", pad=14)
    legend_outside(ax)
    ax.grid(alpha=0.3)
    _save(fig, path)
