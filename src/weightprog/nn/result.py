"""What a network evaluation over time returns: the metric per strategy, realisation and time,
with its intervals, paired verdicts, weight errors and JSON/CSV forms (`OverTimeResult`)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..timeunits import format_time
from .calibration import LayerClipping
from .mapping import MappingReport
from .stats import Interval, metric_interval, paired_interval


@dataclass(frozen=True)
class PassTiming:
    """Where a run's time went: one digital pass over the scored data, and every analogue pass
    (programming, device reads, the periphery and the passes themselves), wall seconds."""

    digital_s: float | None
    """One digital pass; None where the digital metric came out of the calibration run (an older
    spec calibrated on the scored data), whose time includes calibrating."""
    analogue_s: float
    passes: int
    """Analogue passes: strategies × realisations × times."""
    compiling_s: float | None = None
    """Of `analogue_s`, the seconds torch spent compiling the fused kernels (tracing them and
    loading them from its cache: once per process; `fused.compiling_seconds`), or None where unknown."""

    @property
    def ratio(self) -> float | None:
        """Analogue time per pass over the digital pass's, or None."""
        if not self.digital_s or not self.passes:
            return None
        return self.analogue_s / (self.passes * self.digital_s)

    def to_dict(self) -> dict:
        return {"digital_s": self.digital_s, "analogue_s": self.analogue_s, "passes": self.passes,
                "ratio": self.ratio, "compiling_s": self.compiling_s}

    @classmethod
    def from_dict(cls, d: dict) -> PassTiming:
        compiling = d.get("compiling_s")
        return cls(d.get("digital_s"), float(d["analogue_s"]), int(d["passes"]),
                   None if compiling is None else float(compiling))

    def describe(self) -> str:
        """The passes' cost in words (the printed line and the page's)."""
        each = f"{self.ratio:.2f}× a digital pass ({self.digital_s:.3g} s) each" if self.ratio is not None \
            else "no clean digital pass to compare with (calibrated on the scored data)"
        compiling = f" ({self.compiling_s:.2g} s of it compiling kernels)" if self.compiling_s else ""
        return (f"{self.passes} analogue passes in {self.analogue_s:.3g} s{compiling}, programming and reads "
                f"included: {each}")

    def format(self) -> str:
        return f"time: {self.describe()}"


@dataclass
class OverTimeResult:
    """A network's metric over time after programming: S strategies × R realisations × T times.

    Parameters
    ----------
    strategies
        The strategies' names.
    times_s
        The T times, seconds after programming.
    metrics
        (S, R, T) metric per strategy, realisation and time.
    digital
        The metric of the unprogrammed model.
    seed
        The run's seed.
    device, periphery
        JSON summaries of the device and periphery.
    mapping
        Which weights were analog and how they were tiled.
    state_bytes
        Device state of one realisation, bytes.
    wall_time_s
        Wall time of the run, s.
    strategy_dicts
        The strategies' JSON forms.
    layers
        Names of the analog weights.
    weight_errors
        (S, R, T, L) Σ(α·ŵ − w)² of each analog weight.
    weight_energy
        (L,) Σw² of each analog weight.
    clipping
        Per layer with an ADC: outputs digitised and clipped by the ADC range, over all strategies,
        realisations and times (empty without an ADC).
    """

    strategies: list[str]
    times_s: tuple[float, ...]
    metrics: torch.Tensor
    """(S, R, T) metric per strategy, realisation and time (float64)."""
    digital: float
    """The metric of the unprogrammed (digital, FP) model."""
    seed: int
    device: dict
    periphery: dict
    mapping: MappingReport
    state_bytes: int
    """Device state of one realisation (all analog weights), bytes."""
    wall_time_s: float
    strategy_dicts: list[dict]
    layers: list[str]
    """Names of the analog weights, in the order of `weight_errors`' last axis."""
    weight_errors: torch.Tensor
    """(S, R, T, L) Σ(α·ŵ − w)² of each analog weight (float64)."""
    weight_energy: torch.Tensor
    """(L,) Σw² of each analog weight: weight NMSE = error / energy."""
    clipping: list[LayerClipping] = field(default_factory=list)
    """Per layer with an ADC: how many outputs the ADC range clipped (all strategies, realisations, times)."""
    metric_name: str = "accuracy"
    higher_is_better: bool = True
    split: str = "test"
    """What was scored: `test` (the spec's evaluate) or `validate` (held-out data)."""
    calibrated_on: str | None = None
    """What the periphery's ranges came from: `calibrate`, `validate`, `test` (an older spec without
    either: the scored data itself), or None (ideal periphery, nothing calibrated)."""
    examples: torch.Tensor | None = None
    """(S, R, T, N) per-example values when the metric function returns them (float32), else None."""
    digital_examples: torch.Tensor | None = None
    """(N,) per-example values of the digital run, or None."""
    limit: dict | None = None
    """With the `limit` strategy: its cell, read-out scale and expected-error bound per time."""
    aggregate: Callable[[torch.Tensor], Any] | None = field(default=None, repr=False)
    """The spec's per-example aggregate (None: the mean), for the intervals."""
    timing: PassTiming | None = None
    """The digital pass's time against the analogue passes'."""

    def interval(self, strategy: int, time: int) -> Interval:
        """95 % interval of one strategy's metric at one time (nn/stats.py: over realisations, and
        over examples when the metric function returned per-example values)."""
        ex = None if self.examples is None else self.examples[strategy, :, time]
        return metric_interval(self.metrics[strategy, :, time], ex, self.aggregate)

    def paired(self, a: int, b: int, time: int) -> Interval:
        """95 % interval of the paired difference strategy a − strategy b at one time (common
        realisation seeds and examples)."""
        ea = eb = None
        if self.examples is not None:
            ea, eb = self.examples[a, :, time], self.examples[b, :, time]
        return paired_interval(self.metrics[a, :, time], self.metrics[b, :, time], ea, eb, self.aggregate)

    @property
    def interval_over(self) -> str:
        """What the intervals cover: `realisations` or `realisations and examples`."""
        return "realisations" if self.examples is None else "realisations and examples"

    def paired_rows(self) -> list[dict]:
        """Every pair of strategies at every time: difference, 95 % interval, verdict (better for the
        first named, worse, or unresolved), in the metric's direction."""
        rows = []
        for a in range(len(self.strategies)):
            for b in range(a + 1, len(self.strategies)):
                for k, t in enumerate(self.times_s):
                    iv = self.paired(a, b, k)
                    rows.append({"strategy": self.strategies[a], "versus": self.strategies[b], "time_s": t,
                                 "time": format_time(t), "diff": iv.mean, "ci_low": iv.low, "ci_high": iv.high,
                                 "verdict": iv.verdict(self.higher_is_better)})
        return rows

    @property
    def repeats(self) -> int:
        """Realisations R."""
        return self.metrics.shape[1]

    @property
    def weight_nmse(self) -> torch.Tensor:
        """(S, R, T) NMSE of all analog weights together, Σ(α·ŵ − w)² / Σw²."""
        return self.weight_errors.sum(-1) / self.weight_energy.sum()

    @property
    def layer_nmse(self) -> torch.Tensor:
        """(S, R, T, L) NMSE of each analog weight."""
        return self.weight_errors / self.weight_energy.clamp_min(torch.finfo(torch.float64).tiny)

    @property
    def mean(self) -> torch.Tensor:
        """(S, T) mean over realisations."""
        return self.metrics.mean(1)

    @property
    def std(self) -> torch.Tensor:
        """(S, T) sample std over realisations (0 for one realisation)."""
        return self.metrics.std(1) if self.repeats > 1 else torch.zeros_like(self.mean)

    def rows(self) -> list[dict]:
        """The tidy table: one row per (strategy, realisation, time)."""
        nmse = self.weight_nmse
        return [{"strategy": s, "realisation": r, "time_s": t, "time": format_time(t),
                 "metric": float(self.metrics[i, r, k]), "weight_nmse": float(nmse[i, r, k])}
                for i, s in enumerate(self.strategies) for r in range(self.repeats)
                for k, t in enumerate(self.times_s)]

    def summary(self) -> list[dict]:
        """Mean and std over realisations per (strategy, time), of the metric and the weight NMSE."""
        mean, std = self.mean, self.std
        nmse_mean, nmse_std = _mean_std(self.weight_nmse)
        rows = []
        for i, s in enumerate(self.strategies):
            for k, t in enumerate(self.times_s):
                iv = self.interval(i, k)
                rows.append({"strategy": s, "time_s": t, "time": format_time(t), "mean": float(mean[i, k]),
                             "std": float(std[i, k]), "ci_low": iv.low, "ci_high": iv.high,
                             "weight_nmse_mean": float(nmse_mean[i, k]), "weight_nmse_std": float(nmse_std[i, k]),
                             "n": self.repeats})
        return rows

    def layer_summary(self) -> list[dict]:
        """Weight NMSE per (strategy, time, analog weight): mean and std over realisations."""
        mean, std = _mean_std(self.layer_nmse)
        return [{"strategy": s, "time_s": t, "time": format_time(t), "layer": name,
                 "weight_nmse_mean": float(mean[i, k, j]), "weight_nmse_std": float(std[i, k, j])}
                for i, s in enumerate(self.strategies) for k, t in enumerate(self.times_s)
                for j, name in enumerate(self.layers)]

    def to_csv(self) -> str:
        """`rows()` as CSV text."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["strategy", "realisation", "time_s", "time", "metric",
                                                 "weight_nmse"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_dict(self) -> dict:
        """The JSON form (results.json): settings, the summaries and every row; NaN and inf as null."""
        def clean(x):  # JSON has no NaN/inf: a diverged metric becomes null
            return x if isinstance(x, float) and math.isfinite(x) else None if isinstance(x, float) else x
        return {"seed": self.seed, "times_s": list(self.times_s), "repeats": self.repeats,
                "metric_name": self.metric_name, "higher_is_better": self.higher_is_better, "split": self.split,
                "calibrated_on": self.calibrated_on, "interval_over": self.interval_over,
                "examples": None if self.examples is None else int(self.examples.shape[-1]),
                "digital_metric": clean(self.digital), "device": self.device, "periphery": self.periphery,
                "mapping": self.mapping.to_dict(), "device_state_bytes": self.state_bytes,
                "wall_time_s": self.wall_time_s, "strategies": self.strategy_dicts,
                "summary": [{k: clean(v) for k, v in row.items()} for row in self.summary()],
                "weight_nmse_per_layer": [{k: clean(v) for k, v in row.items()} for row in self.layer_summary()],
                "adc_clipping": [c.to_dict() for c in self.clipping],
                "paired": [{k: clean(v) for k, v in row.items()} for row in self.paired_rows()],
                "limit": self.limit,
                "rows": [{k: clean(v) for k, v in row.items()} for row in self.rows()]} | (
                    {"timing": self.timing.to_dict()} if self.timing is not None else {})

    def format(self) -> str:
        """The metric's mean and 95 % interval per strategy (rows) and time (columns), the paired
        verdicts against the first strategy, then the weight NMSE (mean ± std)."""
        head = f"{'strategy':<28}" + "".join(f"{format_time(t):>26}" for t in self.times_s)
        where = "held-out (validate) data" if self.split == "validate" else "test data"
        lines = [f"{self.metric_name} on {where} ({'higher' if self.higher_is_better else 'lower'} is better); "
                 f"digital {self.digital:.6g}; 95 % intervals over {self.interval_over}", head]
        for i, s in enumerate(self.strategies):
            cells = []
            for k in range(len(self.times_s)):
                iv = self.interval(i, k)
                cells.append(f"{iv.mean:>10.4g} [{iv.low:.4g}, {iv.high:.4g}]" if math.isfinite(iv.low)
                             else f"{iv.mean:>10.4g}")
            lines.append(f"{s:<28}" + "".join(f"{c:>26}" for c in cells))
        for i in range(1, len(self.strategies)):
            verdicts = [self.paired(i, 0, k) for k in range(len(self.times_s))]
            lines.append(f"{self.strategies[i]} vs {self.strategies[0]}: " + ", ".join(
                f"{format_time(t)} {iv.mean:+.4g} [{iv.low:+.4g}, {iv.high:+.4g}] {iv.verdict(self.higher_is_better)}"
                for t, iv in zip(self.times_s, verdicts)))
        lines.append("weight NMSE Σ(αŵ−w)²/Σw², all analog weights (mean ± std over realisations)")
        nmse_mean, nmse_std = _mean_std(self.weight_nmse)
        for i, s in enumerate(self.strategies):
            nmse_cells = "".join(f"{float(nmse_mean[i, k]):>16.4g} ±{float(nmse_std[i, k]):<7.2g}"
                                 for k in range(len(self.times_s)))
            lines.append(f"{s:<28}{nmse_cells}")
        if self.clipping:
            worst = max(self.clipping, key=lambda c: c.fraction)
            total = sum(c.clipped for c in self.clipping) / max(1, sum(c.outputs for c in self.clipping))
            lines.append(f"ADC clipping: {total:.3%} of all outputs; most in {worst.layer} ({worst.fraction:.3%})")
        if self.timing is not None:
            lines.append(self.timing.format())
        return "\n".join(lines)


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sample std over axis 1 (realisations); std 0 for one realisation."""
    return x.mean(1), (x.std(1) if x.shape[1] > 1 else torch.zeros_like(x.mean(1)))
