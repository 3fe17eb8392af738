"""The strategies `optimize` scores beside its own: every hand-crafted baseline, and whether a
strategy is in the form aihwkit's converter can express."""

from __future__ import annotations

from ..baselines import BASELINES, baseline
from ..cell import Cell
from ..devices import DeviceModel
from ..scores import SPLIT_BASELINES
from ..strategy import Strategy

EXPRESSIBLE_TOL = 1e-4
"""|W_hw(1) − β|/β above which a strategy clips (or under-fills) the largest weight: aihwkit's
CustomPairConductanceConverter, whose scale is the table's largest weight, cannot express it."""


def is_expressible(strategy: Strategy, index: int = 0) -> bool:
    """True when W_hw(1) = β: the table's largest weight is the scale (aihwkit's converter form)."""
    one = strategy[index]
    w1 = float(one.hardware_weight(one.conductances)[0, -1])
    return abs(w1 - float(one.beta[0])) <= EXPRESSIBLE_TOL * float(one.beta[0])


def hand_crafted(pairs: int, device: DeviceModel, f_max: int) -> dict[tuple[str, float], Strategy]:
    """Every baseline at F = 1, and the split baselines at each F in 2…f_max (P ≥ 2), by (name, F)."""
    out = {(name, 1.0): baseline(name, Cell.with_pairs(pairs, 1.0), device.g_min, device.g_max)
           for name in BASELINES}
    if pairs > 1:
        for f in range(2, f_max + 1):
            for name in SPLIT_BASELINES:
                out[(name, float(f))] = baseline(name, Cell.with_pairs(pairs, f), device.g_min, device.g_max)
    return out
