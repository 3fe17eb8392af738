"""Small HTML pieces the run pages share: a strategy's colour swatch, a standard error or a 95 %
interval under its number."""

from __future__ import annotations

from typing import Any

from .page import esc, fmt


def swatch(name: str) -> str:
    """The strategy's colour as a small square."""
    from .palette import strategy_colour
    return f'<span class="swatch" style="background:{strategy_colour(name)}"></span>'


def se(x: Any) -> str:
    """A standard error under the number it belongs to."""
    return f'<br><span class="se">± {esc(fmt(x, 2))}</span>'


def interval(low: float | None, high: float | None, std: float | None = None) -> str:
    """` [low, high]` under a mean with a 95 % interval (older files: ± std)."""
    if low is None or high is None:
        return se(std)
    return f'<br><span class="se">[{esc(fmt(low))}, {esc(fmt(high))}]</span>'
