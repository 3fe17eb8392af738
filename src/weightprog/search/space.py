"""The search space: a unit hypercube whose every point decodes to a valid strategy (docs/MODEL.md §5.3).

Modes
* `exact` (default): every grid weight is represented exactly. Per grid point, each pair but the
  least significant takes a share s ∈ [0, 1] of what is left of the target, between the least it
  must take (what the less significant pairs cannot cover) and the most it may (its range or the
  rest); the least significant pair takes the exact remainder. Shares keep the sign of the weight
  (no pair opposes another: that only adds noise). Each pair then has a common-mode coordinate
  m ∈ [0, 1]: where g⁻ sits in the room left by g⁺ − g⁻. Dimensions: (2P − 1)·D (+ F, + β).
  s = 0 everywhere is `lsp-first`, s = 1 `msp-first`, m = 0 puts g⁻ at g_min: the hand-crafted
  strategies are corners of the cube.
* `free`: every device target at every grid point is its own coordinate, g = g_min + x·span, so
  the search may pre-distort weights against drift and compensation bias. Dimensions: 2P·D (+2).

Plus, unless fixed: F (the cell is 1, F, F², …; an integer in 1…f_max by default, or continuous)
and β as a fraction of the cell's full range Σ f_p (g_max − g_min).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cell import Cell, ascending
from ..choices import GRID_PLACEMENTS, MODES
from ..errors import WeightprogError
from ..strategy import Strategy


def make_grid(points: int, placement: str = "quantile", weights: torch.Tensor | None = None) -> torch.Tensor:
    """Grid of `points` normalised weights from 0 to 1.

    `quantile` puts the interior points at evenly spaced quantiles of |w| (most weights are small,
    so they get most of the resolution); `uniform` spaces them evenly.
    """
    if points < 2:
        raise WeightprogError(f"grid: need at least 2 points (0 and 1), got {points}")
    if placement not in GRID_PLACEMENTS:
        raise WeightprogError(f"grid placement: use one of {', '.join(GRID_PLACEMENTS)}, got {placement!r}")
    if placement == "uniform" or weights is None:
        return torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    a = weights.reshape(-1).abs().to(torch.float64)
    levels = torch.linspace(0.0, 1.0, points, dtype=torch.float64)[1:-1]
    inner = torch.quantile(a, levels) if levels.numel() else levels
    grid = torch.cat([torch.zeros(1, dtype=torch.float64), inner, torch.ones(1, dtype=torch.float64)])
    # strictly increasing even when quantiles coincide (few distinct weights: a small array, a
    # ternary network): equal points would make a segment of zero width (0/0 in interpolation)
    g = grid.tolist()
    for i in range(1, points - 1):
        g[i] = max(g[i], g[i - 1] + 1e-6)
    for i in range(points - 2, 0, -1):
        g[i] = min(g[i], g[i + 1] - 1e-6)
    return torch.tensor(g, dtype=torch.float64)


def snap_to_kinks(grid: torch.Tensor, cell: Cell) -> torch.Tensor:
    """Move the interior grid points nearest the kinks of `lsp-first` on this cell onto them, so
    the best hand-crafted strategy is exactly expressible without adding points."""
    order = ascending(cell.significance)
    capacity = torch.tensor([cell.significance[p] for p in order], dtype=torch.float64)
    kinks = (torch.cumsum(capacity, 0) / capacity.sum())[:-1]
    grid = grid.clone()
    free = list(range(1, grid.numel() - 1))
    for kink in kinks.tolist():
        if not free:
            break
        nearest = min(free, key=lambda i: abs(float(grid[i]) - kink))
        grid[nearest] = kink
        free.remove(nearest)
    return torch.sort(grid).values


@dataclass
class StrategySpace:
    grid: torch.Tensor
    pairs: int = 2
    g_min: float = 0.0
    g_max: float = 25.0
    mode: str = "exact"
    cell: Cell | None = None
    """Fixed significance factors; None searches F (the cell 1, F, F², …)."""
    f_max: float = 5.0
    f_integer: bool = True
    beta_fraction: float | None = None
    """Fixed β as a fraction of the full range; None searches it in [beta_min, 1]."""
    beta_min: float = 0.2

    def __post_init__(self):
        if self.mode not in MODES:
            raise WeightprogError(f"mode: use one of {', '.join(MODES)}, got {self.mode!r}")
        if self.cell is not None:
            self.pairs = self.cell.pairs
        if self.pairs < 1:
            raise WeightprogError(f"pairs: need at least 1, got {self.pairs}")
        if self.cell is None and not self.f_max >= 1:
            raise WeightprogError(f"f_max must be >= 1, got {self.f_max}")
        self.grid = torch.as_tensor(self.grid, dtype=torch.float64)

    # --- layout ------------------------------------------------------------------------------
    @property
    def per_point(self) -> int:
        return 2 * self.pairs - 1 if self.mode == "exact" else 2 * self.pairs

    @property
    def table_dims(self) -> int:
        return self.per_point * self.grid.numel()

    @property
    def searches_f(self) -> bool:
        return self.cell is None and self.pairs > 1

    @property
    def dims(self) -> int:
        return self.table_dims + int(self.searches_f) + int(self.beta_fraction is None)

    def bounds(self) -> list[tuple[float, float]]:
        b = [(0.0, 1.0)] * self.table_dims
        if self.searches_f:
            b.append((1.0, float(self.f_max)))
        if self.beta_fraction is None:
            b.append((self.beta_min, 1.0))
        return b

    def integrality(self) -> np.ndarray:
        flags = np.zeros(self.dims, dtype=bool)
        if self.searches_f and self.f_integer:
            flags[self.table_dims] = True
        return flags

    # --- decoding ----------------------------------------------------------------------------
    def significance(self, x: torch.Tensor) -> torch.Tensor:
        """(B, P) factors."""
        batch = x.shape[0]
        if self.cell is not None:
            return torch.tensor(self.cell.significance, dtype=x.dtype).expand(batch, -1)
        if not self.searches_f:
            return torch.ones(batch, 1, dtype=x.dtype)
        f = x[:, self.table_dims]
        f = torch.round(f) if self.f_integer else f
        return f[:, None] ** torch.arange(self.pairs, dtype=x.dtype)[None]

    def decode(self, x: torch.Tensor):
        """x (B, dims) -> conductances (B, D, 2P), significance (B, P), beta (B,). Differentiable."""
        x = torch.as_tensor(x, dtype=torch.float64)
        batch, points = x.shape[0], self.grid.numel()
        sig = self.significance(x)
        span = self.g_max - self.g_min
        full = sig.sum(-1) * span
        beta = full * (x[:, -1] if self.beta_fraction is None else self.beta_fraction)
        coords = x[:, : self.table_dims].reshape(batch, points, self.per_point)
        if self.mode == "free":
            return self.g_min + coords * span, sig, beta
        target = beta[:, None] * self.grid.to(x)[None]  # (B, D) µS of W_hw
        order = ascending(sig[0].tolist())[::-1]  # most significant first
        contribution: dict[int, torch.Tensor] = {}  # pair index -> its share of the target (µS)
        remaining = target
        for k, p in enumerate(order):
            f_p = sig[:, p:p + 1]
            if k == len(order) - 1:
                contribution[p] = torch.minimum(remaining, f_p * span)
                break
            rest = sum(sig[:, q:q + 1] for q in order[k + 1:]) * span
            low = (remaining - rest).clamp_min(0.0)
            high = torch.minimum(remaining, f_p * span)
            contribution[p] = low + coords[..., k] * (high - low)
            remaining = remaining - contribution[p]
        g = []
        for p in range(self.pairs):
            diff = contribution[p] / sig[:, p:p + 1]  # g⁺ − g⁻ ≥ 0
            common = coords[..., self.pairs - 1 + p]
            g_neg = self.g_min + common * (span - diff)
            g.extend([g_neg + diff, g_neg])
        return torch.stack(g, dim=-1).clamp(self.g_min, self.g_max), sig, beta

    def strategy(self, x, names: list[str] | None = None) -> Strategy:
        x = torch.as_tensor(np.atleast_2d(np.asarray(x, dtype=np.float64)))
        g, sig, beta = self.decode(x)
        return Strategy(self.grid, g, sig, beta, self.g_min, self.g_max, names or [])

    def encode_baseline(self, name: str, f: float) -> np.ndarray:
        """The cube point of a hand-crafted strategy at full range: a corner in exact mode; in free
        mode its table on this grid (exact only where the grid holds its kinks)."""
        x = np.zeros(self.dims)
        if self.mode == "exact":
            share = 1.0 if name == "msp-first" else 0.0
            x[: self.table_dims] = np.tile([share] * (self.pairs - 1) + [0.0] * self.pairs, self.grid.numel())
        else:
            from ..baselines import baseline  # local: baselines are only seeds here
            cell = self.cell or Cell.with_pairs(self.pairs, f)
            table = baseline(name, cell, self.g_min, self.g_max).regrid(self.grid).conductances[0]
            x[: self.table_dims] = ((table - self.g_min) / (self.g_max - self.g_min)).reshape(-1).numpy()
        if self.searches_f:
            x[self.table_dims] = f
        if self.beta_fraction is None:
            x[-1] = 1.0
        return x
