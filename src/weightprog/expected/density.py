"""The weight density as quadrature nodes: quantile bins of |u| inside each segment of a
strategy grid, two nodes per bin (negative weights mirror positive ones exactly).

With a per-weight importance (`--weighting fisher`: each weight's diagonal Fisher information),
each bin's error counts by its weights' summed importance instead of their number. The nodes stay
at the bin's plain moments and `prob` stays the density's share: drift compensation averages over
every weight of a column, important or not, so α is a property of the density; within a bin at
most 1/32 wide the importance-weighted moments would move a node by little."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import WeightprogError

MAX_BIN_WIDTH = 1 / 32
"""No density bin wider than this in |u| (the sparse tail of large weights gets bins of its own)."""


@dataclass
class WeightBins:
    """|u| as quadrature nodes: quantile bins inside each segment of a strategy grid, each bin
    two nodes ū ± sd(u | bin) with half its weight, so every function quadratic in u inside a
    bin is integrated exactly (the strategy is linear inside every segment)."""

    u: torch.Tensor
    """(N,) node values of |u|."""
    prob: torch.Tensor
    """(N,) share of the weights at each node (sums to 1): what drift compensation averages over."""
    importance: torch.Tensor
    """(N,) share of the importance at each node (sums to 1): what the error is weighted by; equal
    to `prob` without an importance (density weighting)."""
    index: torch.Tensor
    """(N,) grid segment of each node."""
    frac: torch.Tensor
    """(N,) position of the node along its segment."""


def weight_bins(values: torch.Tensor, grid: torch.Tensor, per_segment: int = 8,
                max_width: float = MAX_BIN_WIDTH, importance: torch.Tensor | None = None) -> WeightBins:
    """Bins of |values| within each grid segment: `per_segment` quantile bins of equal count, each
    further split to at most `max_width` wide (the sparse tail of large weights, where errors
    change fastest, gets bins of its own); two nodes per bin. `importance` (one non-negative number
    per value) gives each bin's `importance` share; None: the density's."""
    flat = values.detach().reshape(-1).abs().clamp_max(1.0).double().numpy()
    if flat.size == 0:
        raise WeightprogError("expected error: no weights")
    order = np.argsort(flat, kind="stable")
    a = flat[order]
    weight = None if importance is None else importance.detach().reshape(-1).double().numpy()[order]
    edges = grid.detach().double().numpy()
    nodes, probs, shares, segments = [], [], [], []
    for j in range(len(edges) - 1):
        lo, hi = edges[j], edges[j + 1]
        last = j == len(edges) - 2
        start = np.searchsorted(a, lo, "left")
        part = a[start:np.searchsorted(a, hi, "right" if last else "left")]
        if part.size == 0:
            continue
        cuts = np.quantile(part, np.linspace(0, 1, per_segment + 1)[1:-1])
        cuts = np.union1d(cuts, np.arange(lo, hi, max_width)[1:])
        bounds = np.searchsorted(part, cuts, "left")
        for chunk, first in zip(np.split(part, bounds), np.concatenate([[0], bounds])):
            if chunk.size == 0:
                continue
            mean, sd = chunk.mean(), chunk.std()
            share = None if weight is None else weight[start + first:start + first + chunk.size].sum()
            for node in (mean - sd, mean + sd):
                nodes.append(min(max(node, lo), hi))
                probs.append(0.5 * chunk.size / a.size)
                shares.append(0.5 * share if share is not None else 0.0)
                segments.append(j)
    u = torch.tensor(nodes, dtype=torch.float64)
    index = torch.tensor(segments, dtype=torch.long)
    frac = (u - grid[index]) / (grid[index + 1] - grid[index])
    prob = torch.tensor(probs, dtype=torch.float64)
    return WeightBins(u, prob, _shares(shares, weight) if weight is not None else prob, index, frac)


def _shares(shares: list[float], weight: np.ndarray) -> torch.Tensor:
    """Each node's share of the total importance."""
    total = float(weight.sum())
    if not total > 0:
        raise WeightprogError("importance: every weight has zero importance (a loss that does not depend on "
                              "the analog weights?)")
    return torch.tensor(shares, dtype=torch.float64) / total
