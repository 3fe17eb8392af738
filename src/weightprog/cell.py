"""The unit cell: P differential pairs with significance factors, W_hw = Σ_p f_p (g⁺_p − g⁻_p)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import WeightprogError


@dataclass(frozen=True)
class Cell:
    """Significance factors, one per pair, in the order the pairs are stored.

    Devices of a weight are stored pair by pair: (g⁺_1, g⁻_1, g⁺_2, g⁻_2, …). The paper's cell is
    `Cell((1, F))`: the least significant pair g± first, then the F-weighted pair G±.

    Parameters
    ----------
    significance
        One factor f_p > 0 per pair (stored as floats).

    Raises
    ------
    WeightprogError
        For no factors, or a factor ≤ 0, inf or NaN.
    """

    significance: tuple[float, ...] = (1.0, 1.0)

    def __post_init__(self):
        sig = tuple(float(f) for f in self.significance)
        if not sig or any(not math.isfinite(f) or f <= 0 for f in sig):
            raise WeightprogError(f"significance: need one or more factors > 0, got {self.significance}")
        object.__setattr__(self, "significance", sig)

    @classmethod
    def parse(cls, text: str) -> Cell:
        """`'1,2'` -> Cell((1.0, 2.0)).

        Parameters
        ----------
        text
            Comma-separated significance factors.

        Returns
        -------
        Cell
        """
        try:
            return cls(tuple(float(x) for x in text.split(",")))
        except ValueError:
            raise WeightprogError(f"significance: cannot read {text!r}; use comma-separated numbers, "
                                  f"e.g. 1,2") from None

    @classmethod
    def with_pairs(cls, pairs: int, f: float = 1.0) -> Cell:
        """P pairs with factors 1, f, f², … (least significant first).

        Parameters
        ----------
        pairs
            Number of pairs P ≥ 1.
        f
            Ratio of each pair's factor to the previous one's.

        Returns
        -------
        Cell
        """
        if pairs < 1:
            raise WeightprogError(f"pairs: need at least 1 pair, got {pairs}")
        return cls(tuple(float(f) ** p for p in range(pairs)))

    @property
    def pairs(self) -> int:
        """Number of differential pairs P."""
        return len(self.significance)

    @property
    def devices(self) -> int:
        """Number of devices, 2P."""
        return 2 * self.pairs

    def max_weight(self, g_min: float, g_max: float) -> float:
        """Largest representable |W_hw|, µS: Σ f_p (g_max − g_min).

        Parameters
        ----------
        g_min, g_max
            Device conductance range, µS.

        Returns
        -------
        float
        """
        return sum(self.significance) * (g_max - g_min)

    def signed_factors(self) -> tuple[float, ...]:
        """Per device: +f_p for g⁺_p, −f_p for g⁻_p."""
        return tuple(s * f for f in self.significance for s in (1.0, -1.0))

    def combine(self, g: torch.Tensor) -> torch.Tensor:
        """W_hw = Σ f_p (g⁺_p − g⁻_p) from conductances with the devices in the last dimension.

        Parameters
        ----------
        g
            (…, 2P) conductances, µS, in the cell's device order.

        Returns
        -------
        torch.Tensor
            (…) hardware weights, µS.
        """
        factors = torch.tensor(self.signed_factors(), dtype=g.dtype, device=g.device)
        return g @ factors


def ascending(significance: Sequence[float]) -> list[int]:
    """Pair indices from least to most significant (stable for ties)."""
    return sorted(range(len(significance)), key=lambda p: significance[p])
