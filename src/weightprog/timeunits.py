"""Times after programming: parsing `1s,1min,1h,1d,30d,1y` forms and validating them."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import WeightprogError

if TYPE_CHECKING:  # torch is not imported at run time: the command line parses times before loading it
    import torch

SECONDS = {
    "s": 1.0, "sec": 1.0,
    "min": 60.0, "m": 60.0,
    "h": 3600.0, "hr": 3600.0,
    "d": 86400.0, "day": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0, "yr": 365 * 86400.0,
}
DEFAULT_TIMES_S = (1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
"""docs/MODEL.md §7.2: 1 s, 1 min, 1 h, 1 day, 30 days, 1 year after programming."""

MAX_TIME_S = 100 * 365 * 86400.0
"""The latest time after programming accepted (100 years)."""

_TIME_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def parse_time(text: str) -> float:
    """`'30d'` -> 2592000.0. A bare number is seconds."""
    m = _TIME_RE.match(text.lower())
    if m is None and _TIME_RE.match(text.lower().replace("-", "", 1)):  # the form is right, the sign is not
        raise WeightprogError(f"times: {text.strip()} must be ≥ 0 (a time after programming)")
    if not m or m.group(2) not in SECONDS and m.group(2) != "":
        raise WeightprogError(
            f"times: cannot read {text!r}; use a number of seconds or a number with a unit "
            f"({', '.join(sorted(set(SECONDS)))}), e.g. 1s,1min,1h,1d,30d,1y")
    return float(m.group(1)) * SECONDS.get(m.group(2), 1.0)


def parse_times(text: str) -> tuple[float, ...]:
    """Times after programming from text: `'1s,1h,1y'` -> (1.0, 3600.0, 31536000.0).

    Parameters
    ----------
    text
        Comma-separated times, each a number of seconds or a number with a unit
        (s, min, h, d, w, y and their long forms in `SECONDS`).

    Returns
    -------
    tuple of float
        Seconds after programming, validated by `check_times`.

    Raises
    ------
    WeightprogError
        For an unreadable time or times that `check_times` refuses.
    """
    return check_times([parse_time(part) for part in text.split(",") if part.strip()])


def check_times(times_s: Iterable[float] | torch.Tensor) -> tuple[float, ...]:
    """Times after programming, validated: positive, finite, at most `MAX_TIME_S`, strictly increasing.

    Parameters
    ----------
    times_s
        Seconds after programming (a sequence or a 1-D tensor).

    Returns
    -------
    tuple of float
        The times as floats.

    Raises
    ------
    WeightprogError
        For no times, a time ≤ 0, inf, NaN or beyond `MAX_TIME_S`, or times out of order.
    """
    torch_ = sys.modules.get("torch")  # a tensor means torch is loaded already
    is_tensor = torch_ is not None and isinstance(times_s, torch_.Tensor)
    values = [float(t) for t in (times_s.tolist() if is_tensor else times_s)]  # type: ignore[union-attr]
    if not values:
        raise WeightprogError("times: at least one time after programming is needed")
    for t in values:
        if not (t > 0 and t < float("inf")):
            raise WeightprogError(f"times: {t} is not allowed; times are seconds after programming, > 0")
        if t > MAX_TIME_S:
            raise WeightprogError(f"times: {format_time(t)} is beyond {format_time(MAX_TIME_S)}; the drift law "
                                  f"is fitted to hours…years of measurements, not to geological time")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise WeightprogError(f"times: {values} must be strictly increasing")
    return tuple(values)


def format_time(t_s: float) -> str:
    """Short human label: 1s, 1min, 1h, 1d, 30d, 1y."""
    for unit, size in (("y", SECONDS["y"]), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t_s >= size and abs(t_s / size - round(t_s / size)) < 1e-9:
            return f"{round(t_s / size)}{unit}"
    return f"{t_s:g}s"


def format_times(times_s: Sequence[float]) -> list[str]:
    """`format_time` of each time (seconds after programming)."""
    return [format_time(t) for t in times_s]
