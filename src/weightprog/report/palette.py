"""One colour per strategy (and per device) for every figure of every command, and the legend
placement they share.

A strategy's colour comes from its family, whatever the command calls it: `optimised`,
`optimised (f=1,2)` and `optimised:layer` are blue; `lsp_first`, `lsp-first (f=1,2)`,
`naive (lsp_first F=1)` and the study's `naive` are vermillion; `msp-first …` green;
`single-pair …` purple. A hand-crafted strategy at F > 1 (`lsp_first_best`, `lsp-first (f=1,2)`)
keeps its family's colour and is drawn dashed. Colour-blind-safe (Okabe–Ito; Tol's muted set for
devices). Names outside these families get a colour fixed by the name itself, so the same name
has the same colour in every figure.
"""

from __future__ import annotations

import re
import zlib

OPTIMISED = "#0072B2"
FAMILIES = {"optimised": OPTIMISED, "lsp-first": "#D55E00", "msp-first": "#009E73", "single-pair": "#CC79A7"}
CANDIDATES = {"de": "#56B4E9", "pointwise": "#E69F00"}
"""What each search method found before the choice (report.json `tnmse`: de, pointwise, pointwise_expressible)."""
DIGITAL = "#000000"
BOUND = "#555555"
OTHER = ("#882255", "#999933", "#661100", "#AA4499", "#777777", "#DDAA33")
"""Other names (a user's strategy files): none of them near a family's or a candidate's colour."""

DEVICES = {"pcm": "#332288", "pcm-lowdrift": "#44AA99", "ideal": "#999933", "rram-hfox": "#AA4499",
           "ecram": "#DDAA33", "sonos-flash": "#CC6677"}
DEVICE_OTHER = ("#117733", "#882255", "#661100", "#6699CC", "#888888")


def _pick(name: str, pool: tuple[str, ...]) -> str:
    return pool[zlib.crc32(name.encode()) % len(pool)]


def strategy_family(name: str) -> str | None:
    """'optimised', 'lsp-first', 'msp-first', 'single-pair', or None for any other name."""
    n = name.lower().replace("_", "-")
    if n.startswith(("optimised", "optimized")):
        return "optimised"
    if n.startswith("naive") or n.startswith("lsp-first"):
        return "lsp-first"
    for family in ("msp-first", "single-pair"):
        if n.startswith(family):
            return family
    return None


def _higher_f(name: str) -> bool:
    """A hand-crafted strategy at F > 1: `*_best` (report keys), `(f=1,2)` / `F=2` in a label."""
    n = name.lower()
    if "best" in n:
        return True
    m = re.search(r"f\s*=\s*([0-9.,\s]+)", n)
    return m is not None and any(float(x) != 1.0 for x in re.findall(r"[0-9.]+", m.group(1)) if x != ".")


def strategy_colour(name: str) -> str:
    family = strategy_family(name)
    if family is not None:
        return FAMILIES[family]
    n = name.lower()
    for key, colour in CANDIDATES.items():
        if n == key or n.startswith(key + "_") or n.startswith(key + " "):
            return colour
    if n.startswith(("digital", "fp ")):
        return DIGITAL
    if n.startswith("bound"):
        return BOUND
    return _pick(name, OTHER)


def strategy_style(name: str) -> dict:
    """Matplotlib keyword arguments (colour, line style, width, marker) for a strategy's line."""
    family = strategy_family(name)
    if family == "optimised":
        return {"color": OPTIMISED, "ls": "-", "lw": 2.4, "marker": "o", "zorder": 3}  # drawn on top
    dashed = (family is not None and _higher_f(name)) or "expressible" in name.lower()
    return {"color": strategy_colour(name), "ls": "--" if dashed else "-", "lw": 1.4,
            "marker": "s" if dashed else "^"}


STRATEGY_LABELS = {"optimised": "optimised", "single_pair": "single-pair F=1", "lsp_first": "lsp-first F=1 (naive)",
                   "msp_first": "msp-first F=1", "lsp_first_best": "lsp-first, best F",
                   "msp_first_best": "msp-first, best F", "de": "differential evolution",
                   "pointwise": "pointwise optimum", "pointwise_expressible": "pointwise, aihwkit-expressible"}
"""How figures and tables name the report keys of an optimisation's scores (report.json `tnmse`)."""


def strategy_label(key: str, score: dict | None = None) -> str:
    """`lsp_first_best` with f=2 -> 'lsp-first, best F (F=2)'; other names are kept."""
    f = (score or {}).get("f")
    return STRATEGY_LABELS.get(key, key) + (f" (F={f})" if f is not None and "best" in key else "")


def device_colour(name: str) -> str:
    return DEVICES.get(name, _pick(name, DEVICE_OTHER))


def sequence_colours(n: int) -> list:
    """n colours in order (viridis), apart from the strategy colours: searches F = 1, 2, …; conductance bins."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.85 * k / max(n - 1, 1)) for k in range(n)]


def legend_outside(ax, **kw):
    """The legend right of the axes, never over the data (the figure is saved with a tight box)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False,
                     fontsize=kw.pop("fontsize", 8), **kw)
