"""Device figures: a device's curves, and how well a fit matches the measurements it came from.

Figures are rendered with the Agg backend into PNG bytes, so the caller decides where (and
whether, e.g. only after every check passed) they are written.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..devices.base import DeviceModel
from ..devices.measurements import simulate_measurements
from ..timeunits import DEFAULT_TIMES_S
from .figure import subplots
from .palette import sequence_colours

if TYPE_CHECKING:  # devices.fit loads scipy.stats: only a fit's figure needs it, not every page's device curves
    from ..devices.fit import FitResult


def device_curves(device: DeviceModel, points: int = 101) -> dict[str, np.ndarray]:
    """The four curves on a grid over [g_min, g_max] (µS)."""
    g = torch.linspace(device.g_min, device.g_max, points, dtype=torch.float64)
    return {"g": g.numpy(), "sigma_p": device.programming_std(g).numpy(),
            "nu_mean": device.drift_mean(g).numpy(), "nu_std": device.drift_std(g).numpy(),
            "q": device.read_q(g).numpy()}


PNG_SOFTWARE = "weightprog"
"""The PNG `Software` text: how `device fit` knows a figure beside its output is its own."""


def written_by_weightprog(path: Path) -> bool:
    """Whether the PNG at `path` is a figure these functions made (so it may be replaced)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00" + PNG_SOFTWARE.encode() in head


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": PNG_SOFTWARE})
    return buf.getvalue()


def _trajectories(ax, device: DeviceModel, targets, times, devices: int = 200, seed: int = 0,
                  style: dict | None = None, label: str = ""):
    """Mean ± std of G(t) over `devices` simulated devices per target."""
    sim = simulate_measurements(device, targets, devices, times, seed=seed)
    g = sim.g.reshape(len(targets), devices, len(times))
    for k, _target in enumerate(targets):
        mean, std = g[k].mean(0), g[k].std(0)
        line, = ax.plot(times, mean, **(style or {}), label=label if k == 0 else None)
        ax.fill_between(times, mean - std, mean + std, color=line.get_color(), alpha=0.15)


def device_figure(device: DeviceModel, times=DEFAULT_TIMES_S, seed: int = 0) -> bytes:
    """σ_p(G), ν mean ± std(G), Q(G) and G(t) trajectories of a device, as PNG bytes."""
    c = device_curves(device)
    fig, axes = subplots(2, 2, figsize=(10, 7.5))
    ax = axes[0, 0]
    ax.plot(c["g"], c["sigma_p"])
    ax.set(xlabel="target G (µS)", ylabel="programming σ (µS)", title="programming error")
    ax = axes[0, 1]
    ax.plot(c["g"], c["nu_mean"], label="ν mean")
    ax.fill_between(c["g"], np.maximum(c["nu_mean"] - c["nu_std"], 0), c["nu_mean"] + c["nu_std"],
                    alpha=0.25, label="± ν std")
    ax.set(xlabel="target G (µS)", ylabel="drift exponent ν", title="drift")
    ax.legend()
    ax = axes[1, 0]
    ax.plot(c["g"], c["q"])
    ax.set(xlabel="target G (µS)", ylabel="Q (relative)", title="read-noise coefficient", yscale="log")
    ax = axes[1, 1]
    targets = np.linspace(device.g_min, device.g_max, 5)
    grid = np.geomspace(min(times), max(times), 25)
    _trajectories(ax, device, targets, grid, seed=seed)
    ax.set(xscale="log", xlabel="time after programming (s)", ylabel="G (µS)",
           title="G(t): mean ± std, 200 devices per target")
    fig.suptitle(f"device {device.name} ({device.kind})")
    fig.tight_layout()
    return _png(fig)


def _legend_below(ax, ncol: int, **kw) -> None:
    """Under the axes' x label, so it never covers the data (tight_layout makes room)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=max(1, ncol), fontsize=7, frameon=False,
              title_fontsize=7, **kw)


def fit_figure(result: FitResult, seed: int = 0) -> bytes:
    """Fit diagnostics: measured vs fitted G(t) with spread, residuals, ν and first-read errors."""
    from ..devices.fit import folded_moments

    m, b, dev = result.measurements, result.bins, result.device
    times = np.unique(m.t)
    fig, axes = subplots(2, 2, figsize=(11, 8.8))
    # (a) measured vs fitted trajectories for up to 5 bins
    ax = axes[0, 0]
    shown = np.unique(np.linspace(0, len(b.g) - 1, min(5, len(b.g))).round().astype(int))
    shades = sequence_colours(len(b.g))  # low G dark to high G light, the same bin the same colour
    residual = np.full((len(b.g), len(times)), np.nan)
    targets = m.device_targets()
    fitted = simulate_measurements(dev, b.g, 400, times, seed=seed)
    fg = fitted.g.reshape(len(b.g), 400, len(times))
    for k in range(len(b.g)):
        rows = result.bin_of_device[m.device] == k
        mean = np.array([m.g[rows & (m.t == t)].mean() if (rows & (m.t == t)).any() else np.nan
                         for t in times])
        std = np.array([m.g[rows & (m.t == t)].std() if (rows & (m.t == t)).any() else np.nan
                        for t in times])
        # compare relative to the bin's mean target, since the fit is simulated at the bin centre
        scale = b.g[k] / max(targets[result.bin_of_device == k].mean(), 1e-12)
        f_mean, f_std = fg[k].mean(0), fg[k].std(0)
        residual[k] = (mean * scale - f_mean) / np.maximum(f_std / np.sqrt(b.n_devices[k]), 1e-12)
        if k in shown:
            line, = ax.plot(times, f_mean, color=shades[k], label=f"{b.g[k]:.3g} µS fit")
            ax.fill_between(times, f_mean - f_std, f_mean + f_std, color=line.get_color(), alpha=0.15)
            ax.errorbar(times, mean * scale, yerr=std, fmt="o", ms=3, color=line.get_color())
    ax.set(xscale="log", xlabel="time after programming (s)", ylabel="G (µS)",
           title="measured (points, ± std) vs fitted (line, band)")
    _legend_below(ax, ncol=len(shown))
    # (b) residuals of the bin means, in standard errors
    ax = axes[0, 1]
    for k in range(len(b.g)):
        ax.plot(times, residual[k], "o-", ms=3, lw=0.8, color=shades[k], label=f"{b.g[k]:.3g}" if k in shown else None)
    ax.axhspan(-2, 2, color="grey", alpha=0.15)
    ax.set(xscale="log", xlabel="time after programming (s)",
           ylabel="(measured − fitted) mean / s.e.", title="residuals of the bin means (grey: ±2)")
    _legend_below(ax, ncol=len(shown), title="bin G (µS)")
    # (c) per-device ν with the fitted |ν| mean ± std
    ax = axes[1, 0]
    ok = np.isfinite(result.nu_hat)
    ax.plot(targets[ok], result.nu_hat[ok], ".", ms=2, alpha=0.3, color="grey", label="devices")
    fm, fs = folded_moments(b.nu_mean, b.nu_std)
    ax.errorbar(b.g, fm, yerr=fs, fmt="o-", capsize=3, label="fitted |ν| mean ± std")
    ax.set(xlabel="target G (µS)", ylabel="drift exponent ν", title="drift per device")
    _legend_below(ax, ncol=2)
    # (d) first-read errors with the fitted ± σ_p
    ax = axes[1, 1]
    ax.plot(targets, result.first_error, ".", ms=2, alpha=0.3, color="grey", label="first read − target")
    ax.plot(b.g, b.sigma_p, "o-", color="C3", label="± fitted σ_p")
    ax.plot(b.g, -b.sigma_p, "o-", color="C3")
    ax.set(xlabel="target G (µS)", ylabel="error at t = 0 (µS)", title="programming error")
    _legend_below(ax, ncol=2)
    fig.suptitle(f"fit of {dev.name}: {m.n_devices} devices, {len(m)} reads")
    fig.tight_layout()
    return _png(fig)
