"""95 % intervals of a network metric over programming realisations and test examples.

Method: the variance decomposition. A metric is the aggregate of per-example values x[r, n]
(realisation r, example n); its estimate is the mean over realisations. Two sources of error add:
the realisations (the spread of the per-realisation metrics, s_R² / R) and the examples (the
test set is one sample of the population: the spread over n of the realisation-averaged values,
linearised through the aggregate, s_N² / N). The half-width is t(0.975, R − 1) · √(s_R²/R) combined
in quadrature with 1.96 · √(s_N²/N). A metric function that returns one number gives intervals over
realisations only (`Interval.over`). A non-mean aggregate (e.g. perplexity = exp of the mean
per-token loss) is linearised at the mean: right for an aggregate that is a smooth function of
the examples' mean.

Paired differences (two strategies on the same realisation seeds and examples) use the same
formula on the per-realisation differences and on the per-example differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy import stats as sps

Z95 = 1.959963984540054
VERDICTS = ("better", "worse", "unresolved")


@dataclass(frozen=True)
class Interval:
    """A mean and its 95 % interval, and what the interval covers."""

    mean: float
    low: float
    high: float
    over: str
    """`realisations` or `realisations and examples`."""
    half_realisations: float = math.nan
    """The realisations' share of the half-width (NaN where it is not known)."""
    half_examples: float = 0.0
    """The examples' share: the half-width is the two combined in quadrature."""

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high}

    def verdict(self, higher_is_better: bool) -> str:
        """For a difference A − B: `better` (A beats B at 95 %), `worse`, or `unresolved`."""
        if self.low > 0:
            return "better" if higher_is_better else "worse"
        if self.high < 0:
            return "worse" if higher_is_better else "better"
        return "unresolved"


def _t95(df: int) -> float:
    return float(sps.t.ppf(0.975, df)) if df >= 1 else math.inf


def _slope(aggregate: Callable[[torch.Tensor], object] | None, at: float) -> float:
    """d aggregate / d mean at `at` (1 for the mean), by a central difference."""
    if aggregate is None:
        return 1.0
    h = 1e-6 * max(1.0, abs(at))
    up = float(aggregate(torch.tensor([at + h], dtype=torch.float64)))  # type: ignore[arg-type]
    down = float(aggregate(torch.tensor([at - h], dtype=torch.float64)))  # type: ignore[arg-type]
    return (up - down) / (2 * h)


def _combine(mean: float, per_realisation: torch.Tensor, per_example: torch.Tensor | None) -> Interval:
    """Interval from per-realisation values (R,) and linearised per-example values (N,) or None."""
    if per_example is None:
        return interval_from_terms(mean, per_realisation, None, 0)
    return interval_from_terms(mean, per_realisation, float(per_example.var()) if per_example.numel() > 1 else 0.0,
                               per_example.numel())


def interval_from_terms(mean: float, per_realisation: torch.Tensor, example_var: float | None,
                        examples: int) -> Interval:
    """The interval from its two terms: the per-realisation values (R,) and the variance over the
    N examples of the linearised, realisation-averaged per-example values (None: realisations only).
    A study stores these terms, so that its intervals are recomputed from small files."""
    r = per_realisation.numel()
    var_r = float(per_realisation.double().var()) / r if r > 1 else 0.0
    half_r = _t95(r - 1) * math.sqrt(var_r) if r > 1 else 0.0
    if example_var is None:
        half = half_r if r > 1 else math.nan
        return Interval(mean, mean - half, mean + half, "realisations", half)
    half_n = Z95 * math.sqrt(example_var / examples) if examples > 1 else 0.0
    half = math.hypot(half_r, half_n)
    return Interval(mean, mean - half, mean + half, "realisations and examples", half_r, half_n)


def linearised(examples: torch.Tensor, aggregate: Callable[[torch.Tensor], object] | None) -> torch.Tensor:
    """(N,) realisation-averaged per-example values (R, N) times the aggregate's slope at their mean."""
    x = examples.double()
    return _slope(aggregate, float(x.mean())) * x.mean(0)


def metric_interval(metrics: torch.Tensor, examples: torch.Tensor | None = None,
                    aggregate: Callable[[torch.Tensor], object] | None = None) -> Interval:
    """95 % interval of a metric from R realisations.

    Parameters
    ----------
    metrics
        (R,) the metric of each realisation.
    examples
        (R, N) per-example values behind them, or None.
    aggregate
        Per-example values -> metric (None: the mean).

    Returns
    -------
    Interval
        Over realisations and examples when `examples` is given (for R = 1, examples only).
    """
    metrics = metrics.double()
    mean = float(metrics.mean())
    if examples is None:
        return _combine(mean, metrics, None)
    return _combine(mean, metrics, linearised(examples, aggregate))


def paired_interval(a: torch.Tensor, b: torch.Tensor, examples_a: torch.Tensor | None = None,
                    examples_b: torch.Tensor | None = None,
                    aggregate: Callable[[torch.Tensor], object] | None = None) -> Interval:
    """95 % interval of the paired difference A − B of two strategies on common realisations and examples.

    Parameters
    ----------
    a, b
        (R,) the metric of each realisation for A and for B (same seeds).
    examples_a, examples_b
        (R, N) their per-example values on the same examples, or None.
    aggregate
        Per-example values -> metric (None: the mean).

    Returns
    -------
    Interval
    """
    d = a.double() - b.double()
    mean = float(d.mean())
    if examples_a is None or examples_b is None:
        return _combine(mean, d, None)
    return _combine(mean, d, linearised(examples_a, aggregate) - linearised(examples_b, aggregate))
