"""Where a strategy's expected error comes from: its systematic part (the mean read-out's deviation)
and its random part, per time (docs/MODEL.md §7.4, "Where the error comes from")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .expected import ExpectedTNMSE, node_moments, signed_factors
from .strategy import Strategy


@dataclass
class ErrorSplit:
    """Where a strategy's expected error comes from, per time: the systematic part (the mean
    read-out's deviation, Σ p (E[αŵ] − u)²) and the random part (Σ p α² Var ŵ); they add to the
    expected NMSE. `ratio` is the curve E[αŵ](u)/u at the density's nodes (1: unbiased; < 1 at
    the largest u: clipped or compressed)."""

    name: str
    times_s: tuple[float, ...]
    systematic: torch.Tensor
    """(T,) systematic part of the expected NMSE."""
    random: torch.Tensor
    """(T,) random part."""
    u: torch.Tensor
    """(N,) |u| nodes of the density."""
    ratio: torch.Tensor
    """(N, T) E[αŵ](u)/u at each node and time."""

    def to_dict(self, points: int = 21) -> dict:
        """JSON form: the parts per time, and the curve at `points` nodes spread over |u|."""
        keep = torch.unique(torch.linspace(0, self.u.numel() - 1, points).round().long())
        return {"strategy": self.name, "times_s": list(self.times_s),
                "systematic": [float(x) for x in self.systematic], "random": [float(x) for x in self.random],
                "curve_u": [float(x) for x in self.u[keep]],
                "curve_ratio": [[float(x) if math.isfinite(x) else None for x in row.tolist()]
                                for row in self.ratio[keep].T]}


def error_split(model: ExpectedTNMSE, strategy: Strategy) -> list[ErrorSplit]:
    """Each strategy's expected error per time split into systematic and random parts (`ErrorSplit`).

    Parameters
    ----------
    model
        The expected error (density, device, times, compensation).
    strategy
        One strategy or a population, within the device's range.

    Returns
    -------
    list of ErrorSplit
        One per strategy; systematic + random = `model.evaluate(strategy).per_time`.
    """
    strategy.check_range(model.device.g_min, model.device.g_max)
    bins = model.bins(strategy.grid)
    dt = torch.float64
    real = bins.prob > 0  # the padding nodes carry no weight
    with torch.no_grad():
        mean, var, alpha = node_moments(
            strategy.conductances.to(dt), signed_factors(strategy.significance.to(dt), strategy.beta.to(dt)),
            bins.index, bins.frac.to(dt), bins.prob.to(dt), model.moments.lookup_table(dt), g0=model.g0,
            step=model.step, compensation=model.compensation)
    p, u = bins.importance[None, real, None], bins.u[None, real, None]  # the error's weighting
    read = alpha[:, None, :] * mean[:, real, 1:]  # (B, N, T) E[αŵ]
    systematic = (p * (read - u) ** 2).sum(1)
    random = (p * alpha[:, None, :] ** 2 * var[:, real, 1:]).sum(1)
    ratio = torch.where(u > 1e-9, read / u.clamp_min(1e-12), torch.full_like(read, math.nan))  # u = 0: no ratio
    return [ErrorSplit(name, model.times_s, systematic[b], random[b], bins.u[real], ratio[b])
            for b, name in enumerate(strategy.names)]
