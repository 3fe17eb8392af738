"""Figures for network evaluation: metric vs time after programming, gradient vs weight scatter."""

from __future__ import annotations

import math
from pathlib import Path

from ..fileio import atomic_write
from ..timeunits import format_times
from .figure import subplots
from .palette import DIGITAL, legend_outside, strategy_style


def _save(fig, path: str | Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def plot_metric_vs_time(result, path: str | Path, metric_name: str = "accuracy", title: str | None = None) -> None:
    """Mean and its 95 % interval as a band per strategy on a log time axis (`result.interval`: over
    realisations, and over examples where the metric gave them; ±1σ of the realisations for one
    realisation), the digital (FP) metric as a dotted line (the paper's Fig. 4d–f). `result` is an
    nn.OverTimeResult."""
    fig, ax = subplots(figsize=(6.4, 4.2))
    times = list(result.times_s)
    mean, std = result.mean.numpy(), result.std.numpy()
    for i, name in enumerate(result.strategies):
        line, = ax.plot(times, mean[i], ms=4, label=name, **strategy_style(name))
        bands = [result.interval(i, k) for k in range(len(times))]
        low = [b.low if math.isfinite(b.low) else mean[i][k] - std[i][k] for k, b in enumerate(bands)]
        high = [b.high if math.isfinite(b.high) else mean[i][k] + std[i][k] for k, b in enumerate(bands)]
        ax.fill_between(times, low, high, color=line.get_color(), alpha=0.2, lw=0)
    if math.isfinite(result.digital):
        ax.axhline(result.digital, color=DIGITAL, ls=":", lw=1.2, label="digital (FP)")
    ax.set_xscale("log")
    ax.set_xticks(times)
    ax.set_xticklabels(format_times(times))
    ax.minorticks_off()
    ax.set_xlabel("time after programming")
    ax.set_ylabel(metric_name)
    ax.set_title(title or f"{metric_name} vs time, mean and 95 % interval ({result.repeats} realisations"
                          + (", examples)" if result.examples is not None else ")"), fontsize=10)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    _save(fig, path)


def plot_gradient_weight(result, path: str | Path, max_layers: int = 12) -> None:
    """|∂L/∂W| vs W per layer (normalised), correlation coefficient in each title (Fig. 3a–c).
    `result` is an nn.GradientCorrelation."""
    layers = result.layers[:max_layers]
    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig, axes = subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        ax.scatter(layer.w.numpy(), layer.grad.numpy(), s=2, alpha=0.3, lw=0)
        ax.set_title(f"{layer.name}\nr={layer.r:+.3f}, r(|W|)={layer.r_abs:+.3f}", fontsize=8)
        ax.set_xlabel("W / max|W|", fontsize=8)
        ax.set_ylabel("|∂L/∂W| / max", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle(f"gradient vs weight: pooled r={result.r:+.3f}, r(|W|)={result.r_abs:+.3f}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
plot_accuracy_vs_time = plot_metric_vs_time
