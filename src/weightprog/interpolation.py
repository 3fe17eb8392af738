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


def take(source: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """`source` indexed along `dim` by an integer index of any shape, which takes that dimension's
    place (`source[:, index]` for dim 1): by `index_select`, which on CPU is 2-7x faster than
    advanced indexing (the expected objective's gathers, issue 26)."""
    out = source.index_select(dim, index.reshape(-1))
    return out.view(*source.shape[:dim], *index.shape, *source.shape[dim + 1:])


def gather_rows(table: torch.Tensor, index: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of table rows (B, D, K) at index/frac (any shape) -> (B, *shape, K)."""
    lo = take(table, index, 1)
    hi = take(table, index + 1, 1)
    f = frac[None, ..., None]
    return lo + (hi - lo) * f
