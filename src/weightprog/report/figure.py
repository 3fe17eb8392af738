"""A figure without pyplot: `matplotlib.figure.Figure` belongs to no backend and no window, so the
library never selects a backend (`matplotlib.use`) for its caller; `Figure.savefig` renders PNG and
SVG with matplotlib's own Agg/SVG canvases, and the figure is freed with its last reference."""

from __future__ import annotations

from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any) -> tuple[Any, Any]:
    """`plt.subplots` without pyplot's global state.

    Parameters
    ----------
    nrows, ncols
        The grid of axes.
    figsize
        Width and height in inches.
    **kwargs
        `Figure.subplots`'s options (`squeeze`, `sharey`, …).

    Returns
    -------
    tuple of (Figure, Axes or array of Axes)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)
