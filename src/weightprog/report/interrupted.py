"""The page of a search that stopped before its results: how far each search got, from its checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

from .page import RunCommand, files_section, page, read_json, reproduce_section, section, svg_figure, table


def search_progress_figure(histories: dict[str, list[float]], chosen: str = "") -> str:
    """Best loss per generation of each search, as inline SVG (no backend selected)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from .palette import legend_outside, sequence_colours

    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for (label, h), colour in zip(histories.items(), sequence_colours(len(histories))):
        ax.plot(range(len(h)), h, color=colour, lw=2.2 if label == chosen else 1.2, label=label)
    ax.set(xlabel="generation", ylabel="best TNMSE of the search sample", title="searches so far")
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return svg_figure(fig, "best loss per generation of each search, from the checkpoints")


def interrupted_page(kind: str, folder: Path, checkpoints: list[Path], command: RunCommand | None) -> str:
    """An interrupted search: how far each search got, from its checkpoint."""
    rows, histories = [], {}
    for p in checkpoints:
        c = read_json(p)
        h = [x for x in c.get("history", []) if x is not None and math.isfinite(x)]
        label = str(p.relative_to(folder).with_suffix("")).replace("checkpoints/", "").replace("checkpoint_", "")
        histories[label] = h
        rows.append([str(p.relative_to(folder)), c.get("generation"), min(h) if h else None])
    body = (table(["checkpoint", "generations done", "best loss (search sample)"], rows, {1, 2})
            + (search_progress_figure(histories) if any(histories.values()) else ""))
    sections = [section("Search so far", body), reproduce_section(command), files_section(folder)]
    return page(f"weightprog {kind}: {folder.name}", "The run stopped before its results; rerun the same command "
                "to resume from these checkpoints.", False, sections)
