"""How a strategy table is read between its grid points: linear interpolation in |u|, and the
mirror (g⁺ and g⁻ of every pair swapped) for negative weights."""

from __future__ import annotations

import torch


def swap_index(pairs: int) -> list[int]:
    """Device order with g⁺ and g⁻ of every pair swapped (the mirror for negative weights)."""
    return [d ^ 1 for d in range(2 * pairs)]


def interpolation_weights(grid: torch.Tensor, u: torch.Tensor):
    """Grid segment index, fraction along it, and sign of each weight (independent of the batch)."""
    a = u.abs().clamp_max(1.0).to(grid.dtype)
    index = (torch.searchsorted(grid, a, right=True) - 1).clamp(0, grid.numel() - 2)
    frac = ((a - grid[index]) / (grid[index + 1] - grid[index])).to(u.dtype)
    return index, frac, u < 0


def gather_rows(table: torch.Tensor, index: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of table rows (B, D, K) at index/frac (any shape) -> (B, *shape, K)."""
    lo = table[:, index]
    hi = table[:, index + 1]
    f = frac[None, ..., None]
    return lo + (hi - lo) * f
