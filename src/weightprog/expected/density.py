"""The weight density as quadrature nodes: quantile bins of |u| inside each segment of a
strategy grid, two nodes per bin (negative weights mirror positive ones exactly)."""

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
    """(N,) share of the weights at each node (sums to 1)."""
    index: torch.Tensor
    """(N,) grid segment of each node."""
    frac: torch.Tensor
    """(N,) position of the node along its segment."""


def weight_bins(values: torch.Tensor, grid: torch.Tensor, per_segment: int = 8,
                max_width: float = MAX_BIN_WIDTH) -> WeightBins:
    """Bins of |values| within each grid segment: `per_segment` quantile bins of equal count, each
    further split to at most `max_width` wide (the sparse tail of large weights, where errors
    change fastest, gets bins of its own); two nodes per bin."""
    a = np.sort(values.detach().reshape(-1).abs().clamp_max(1.0).double().numpy())
    if a.size == 0:
        raise WeightprogError("expected error: no weights")
    edges = grid.detach().double().numpy()
    nodes, probs, segments = [], [], []
    for j in range(len(edges) - 1):
        lo, hi = edges[j], edges[j + 1]
        last = j == len(edges) - 2
        part = a[np.searchsorted(a, lo, "left"):np.searchsorted(a, hi, "right" if last else "left")]
        if part.size == 0:
            continue
        cuts = np.quantile(part, np.linspace(0, 1, per_segment + 1)[1:-1])
        cuts = np.union1d(cuts, np.arange(lo, hi, max_width)[1:])
        for chunk in np.split(part, np.searchsorted(part, cuts, "left")):
            if chunk.size == 0:
                continue
            mean, sd = chunk.mean(), chunk.std()
            for node in (mean - sd, mean + sd):
                nodes.append(min(max(node, lo), hi))
                probs.append(0.5 * chunk.size / a.size)
                segments.append(j)
    u = torch.tensor(nodes, dtype=torch.float64)
    index = torch.tensor(segments, dtype=torch.long)
    frac = (u - grid[index]) / (grid[index + 1] - grid[index])
    return WeightBins(u, torch.tensor(probs, dtype=torch.float64), index, frac)
