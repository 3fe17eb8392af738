"""Hand-crafted strategies for any number of pairs: the baselines an optimised strategy must beat.

All use the full range, β = Σ f_p (g_max − g_min), the negative device of each pair at g_min, and
represent every weight exactly (their grids hold every kink).

* `single-pair`: only the most significant pair is used; the others stay at g_min.
* `lsp-first`: the least significant pair is filled first, the next only once it is exhausted
  (IBM aihwkit's fixed N-pair scheme).
* `msp-first`: the most significant pair takes the coarse, largest part it can; the less
  significant pairs take the remainder.
"""

from __future__ import annotations

import torch

from .cell import Cell, ascending
from .choices import BASELINES
from .errors import WeightprogError
from .strategy import Strategy


def _fill(cell: Cell, order: list[int], g_min: float, g_max: float, u: torch.Tensor) -> torch.Tensor:
    """Conductances (len(u), 2P) filling the pairs in `order` greedily up to the target β·u."""
    span = g_max - g_min
    beta = cell.max_weight(g_min, g_max)
    remaining = beta * u
    g = torch.full((u.numel(), cell.devices), g_min, dtype=torch.float64)
    for p in order:
        f = cell.significance[p]
        share = torch.minimum(remaining, torch.tensor(f * span, dtype=torch.float64))
        g[:, 2 * p] = g_min + share / f
        remaining = remaining - share
    return g


def baseline(name: str, cell: Cell, g_min: float = 0.0, g_max: float = 25.0) -> Strategy:
    """A hand-crafted strategy for `cell` on a device range [g_min, g_max].

    Parameters
    ----------
    name
        One of `BASELINES`: `single-pair`, `lsp-first` or `msp-first` (module docstring).
    cell
        Significance factors of the pairs.
    g_min, g_max
        Device conductance range, µS.

    Returns
    -------
    Strategy
        One strategy named `NAME (f=…)`, every weight represented exactly, β = W_hw at u = 1.

    Raises
    ------
    WeightprogError
        For an unknown name.
    """
    if name not in BASELINES:
        raise WeightprogError(f"strategy: unknown baseline {name!r}; use one of {', '.join(BASELINES)}")
    span = g_max - g_min
    if name == "single-pair":
        msp = max(range(cell.pairs), key=lambda p: cell.significance[p])
        grid = torch.tensor([0.0, 1.0], dtype=torch.float64)
        g = torch.full((2, cell.devices), g_min, dtype=torch.float64)
        g[1, 2 * msp] = g_max
        beta = cell.significance[msp] * span
    else:
        order = ascending(cell.significance)
        if name == "msp-first":
            order = order[::-1]
        beta = cell.max_weight(g_min, g_max)
        capacities = torch.tensor([cell.significance[p] * span for p in order], dtype=torch.float64)
        kinks = torch.cumsum(capacities, 0) / beta
        kinks[-1] = 1.0  # the pairs' capacities sum to β: exactly 1, not 1 − 1 ulp (e.g. g_max 41.03 µS)
        grid = torch.unique(torch.cat([torch.zeros(1, dtype=torch.float64), kinks.clamp(0, 1)]))
        g = _fill(cell, order, g_min, g_max, grid)
    return Strategy(grid, g, torch.tensor(cell.significance, dtype=torch.float64),
                    torch.tensor(beta, dtype=torch.float64), g_min, g_max, [_label(name, cell)])


def _label(name: str, cell: Cell) -> str:
    return f"{name} (f={','.join(f'{f:g}' for f in cell.significance)})"

