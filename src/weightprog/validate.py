"""The allowed ranges of every setting, and the checks the settings types run when they are made.

Settings objects (`OptimizeSettings`, `StudySettings`, `HWAConfig`) validate themselves in
`__post_init__` with these helpers, so the CLI, the sweep parser, the study and library callers
get the same check and the same message. A failed check raises `SettingError`, which knows the
field; the CLI names the option (`--popsize`), the sweep file its key (`settings.popsize`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import WeightprogError

SEED_MAX = 2**32 - 1
"""Seeds are 0 … 2³²−1 (what numpy, scipy and torch all accept, with room for seed + offsets)."""
PAIRS_MAX = 4
"""Differential pairs per weight: chips use 1–4 (IBM's N-pair scheme); the search's dimensions and
population grow with P (2 generations at P = 3 took 136 s, at P = 4 over 200 s on 2 shared cores,
P = 8 did not finish in 5 min, P = 100 ran for minutes without one generation)."""
F_MAX_MAX = 64
GRID_POINTS_MAX = 64
COMPUTE = ("cpu", "cuda", "cuda:N")
COMPENSATION_SCOPES = ("column", "tile", "layer", "none")
"""Drift-compensation scope (docs/MODEL.md §6): one α per crossbar column, one per tile, one for
the whole layer (every weight of the tensor, or the whole weight sample of the metric), or none."""
SAMPLE_COMPENSATION_SCOPES = tuple(s for s in COMPENSATION_SCOPES if s != "tile")
"""The scopes the weight-sample metrics (TNMSE, ExpectedTNMSE) model: a sample has columns but no tiles."""
COMPENSATION_ALIASES = {"all": "layer"}
"""Old names still read (settings, checkpoints and sweep files written before the scopes had one
vocabulary): the metric called one α for the whole sample `all`."""


class SettingError(WeightprogError):
    """A setting out of its allowed range; `field` is the settings field it concerns."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")

    def named(self, name: str) -> WeightprogError:
        """The same error with the field shown as the user wrote it (an option or a file key)."""
        return WeightprogError(f"{name}: {self.message}")


def integer(value: Any, field: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy integers too
        raise SettingError(field, f"must be an integer, got {value!r}")
    number = int(value)
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise SettingError(field, f"must be {_range(minimum, maximum)}, got {value}")
    return number


def number(value: Any, field: str, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, below: float | None = None) -> float:
    """A finite float within [minimum, maximum] and strictly inside (above, below)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingError(field, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SettingError(field, f"must be finite, got {value}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum) \
            or (above is not None and value <= above) or (below is not None and value >= below):
        parts = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else "",
                 f"<= {maximum:g}" if maximum is not None else "", f"< {below:g}" if below is not None else ""]
        raise SettingError(field, f"must be {' and '.join(p for p in parts if p)}, got {value:g}")
    return value


def choice(value: Any, field: str, options: Sequence) -> Any:
    if value not in options:
        raise SettingError(field, f"use one of {', '.join(map(str, options))}, got {value!r}")
    return value


def compensation_scope(value: Any, field: str = "compensation",
                       allowed: Sequence[str] = COMPENSATION_SCOPES) -> str:
    """A drift-compensation scope, old names mapped to the current one (`all` → `layer`).

    Parameters
    ----------
    value
        The scope as given: one of `allowed`, or an alias in `COMPENSATION_ALIASES`.
    field
        The settings field it came from, named in the error.
    allowed
        The scopes the caller supports (`COMPENSATION_SCOPES` or `SAMPLE_COMPENSATION_SCOPES`).

    Returns
    -------
    str
        The scope's current name.

    Raises
    ------
    SettingError
        For a value that is neither an allowed scope nor an alias of one.
    """
    value = COMPENSATION_ALIASES.get(value, value) if isinstance(value, str) else value
    return choice(value, field, allowed)


def seed(value: Any, field: str = "seed") -> int:
    return integer(value, field, 0, SEED_MAX)


def compute_device(value: Any, field: str = "compute", available: bool = True) -> str:
    """'cpu', 'cuda' or 'cuda:N'; with `available`, cuda only where a GPU is there (checked before
    the work, not mid-run)."""
    text = str(value)
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise SettingError(field, f"use cpu, cuda or cuda:N, got {text!r}")
    if kind == "cuda" and available:
        import torch

        if not torch.cuda.is_available():
            raise SettingError(field, f"{text} was asked for but no GPU is available; use cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise SettingError(field, f"{text}: there are {torch.cuda.device_count()} GPU(s)")
    return text


def _range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"in {minimum}…{maximum}"
    return f">= {minimum}" if minimum is not None else f"<= {maximum}"


def nearest(key: str, allowed: Iterable[str]) -> str:
    """' (did you mean 'stuck'?)' for a key close to an allowed one, else ''."""
    match = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_keys(data: Mapping, allowed: Sequence[str], where: str, error: type = WeightprogError) -> None:
    """Refuse keys of a user's file that nothing reads: a typo must not silently mean a default."""
    for key in data:
        if key not in allowed:
            raise error(f"{where}: unknown key {key!r}{nearest(key, allowed)}; "
                                  f"allowed: {', '.join(allowed)}")
