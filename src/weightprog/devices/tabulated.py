"""A device of any technology described by tables in G (docs/MODEL.md §3.4), loaded from YAML or JSON.

Loading validates every field and names the file and the field in its error; it never runs code
from the file (`yaml.safe_load`, `json.load`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import WeightprogError
from ..fileio import read_text
from ..validate import unknown_keys
from .base import DeviceModel, piecewise_linear

CURVES = {  # section -> value columns (besides "g")
    "programming": ("std",),
    "drift": ("nu_mean", "nu_std"),
    "read_noise": ("q",),
}
TOP_KEYS = ("kind", "name", "g_min", "g_max", "t0", "t_read") + tuple(CURVES) + ("stuck", "source", "description")
STUCK_KEYS = ("p_zero", "p_gmax")
LIMITS = {  # column -> (most allowed, why): beyond these a curve describes no device, only a typo
    "std": (None, "programming noise larger than the device range (g_max − g_min) leaves no signal"),
    "nu_mean": (1.0, "a drift exponent above 1 loses 99.99 % of the conductance within a day"),
    "nu_std": (1.0, "a drift exponent above 1 loses 99.99 % of the conductance within a day"),
    "q": (1.0, "read noise Q above 1 is noise larger than the signal on every read"),
}


class TabulatedDevice(DeviceModel):
    """Curves linearly interpolated in G (constant beyond the table's ends)."""

    kind = "tabulated"

    def __init__(self, name: str, g_min: float, g_max: float, t0: float, t_read: float,
                 programming: dict, drift: dict, read_noise: dict, stuck: dict | None = None,
                 source: str = "", description: str = ""):
        self.name = name
        stuck = stuck or {}
        super().__init__(g_min=g_min, g_max=g_max, t0=t0, t_read=t_read,
                         p_stuck_min=stuck.get("p_zero", 0.0), p_stuck_max=stuck.get("p_gmax", 0.0))
        self.tables = {"programming": programming, "drift": drift, "read_noise": read_noise}
        self.source, self.description = source, description

    def _curve(self, g, section: str, column: str):
        table = self.tables[section]
        return piecewise_linear(g, table["g"], table[column])

    def programming_std(self, g):
        return self._curve(g, "programming", "std")

    def drift_mean(self, g):
        return self._curve(g, "drift", "nu_mean")

    def drift_std(self, g):
        return self._curve(g, "drift", "nu_std")

    def read_q(self, g):
        return self._curve(g, "read_noise", "q")

    def to_dict(self) -> dict:
        """The file form (docs/MODEL.md §3.4, docs/DEVICES.md)."""
        data = {"kind": "tabulated", "name": self.name, "g_min": self.g_min, "g_max": self.g_max,
                "t0": self.t0, "t_read": self.t_read, **{k: dict(v) for k, v in self.tables.items()},
                "stuck": {"p_zero": self.p_stuck_min, "p_gmax": self.p_stuck_max}}
        if self.source:
            data["source"] = self.source
        if self.description:
            data["description"] = self.description
        return data

    def describe(self) -> dict:
        return {**super().describe(), "tables": self.tables}


def _number(value: Any, where: str, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WeightprogError(f"{where}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise WeightprogError(f"{where}: must be finite, got {value}")
    if positive and value <= 0:
        raise WeightprogError(f"{where}: must be > 0, got {value}")
    if nonneg and value < 0:
        raise WeightprogError(f"{where}: must be >= 0, got {value}")
    return value


def _numbers(values: Any, where: str, **checks) -> list[float]:
    if not isinstance(values, (list, tuple)) or not values:
        raise WeightprogError(f"{where}: expected a non-empty list of numbers")
    return [_number(v, f"{where}[{i}]", **checks) for i, v in enumerate(values)]


def _table(data: dict, section: str, columns: Sequence[str], g_min: float, g_max: float,
           where: str) -> dict:
    if section not in data:
        raise WeightprogError(f"{where}: missing key '{section}'")
    table = data[section]
    if not isinstance(table, dict):
        raise WeightprogError(f"{where}: '{section}' must be a mapping with keys g, {', '.join(columns)}")
    unknown_keys(table, ("g",) + tuple(columns), f"{where}: {section}")
    for key in ("g",) + tuple(columns):
        if key not in table:
            raise WeightprogError(f"{where}: missing key '{section}.{key}'")
    g = _numbers(table["g"], f"{where}: {section}.g")
    if any(b <= a for a, b in zip(g, g[1:])):
        raise WeightprogError(f"{where}: {section}.g must be strictly increasing, got {g}")
    if g[0] < g_min or g[-1] > g_max:
        raise WeightprogError(f"{where}: {section}.g must lie within [g_min, g_max] = [{g_min}, {g_max}]")
    out = {"g": g}
    for column in columns:
        values = _numbers(table[column], f"{where}: {section}.{column}", nonneg=True)
        most, why = LIMITS[column]
        most = g_max - g_min if most is None else most
        for i, x in enumerate(values):
            if x > most:
                raise WeightprogError(f"{where}: {section}.{column}[{i}] = {x:g} is above {most:g} "
                                      f"({why}); check the unit and the column")
        if len(values) != len(g):
            raise WeightprogError(f"{where}: {section}.{column} has {len(values)} values but "
                                  f"{section}.g has {len(g)}")
        out[column] = values
    return out


def tabulated_from_dict(data: Any, where: str = "device") -> TabulatedDevice:
    """Validate a parsed device file; `where` names it in errors."""
    if not isinstance(data, dict):
        raise WeightprogError(f"{where}: expected a mapping at the top level")
    unknown_keys(data, TOP_KEYS, where)
    if data.get("kind", "tabulated") != "tabulated":
        raise WeightprogError(f"{where}: kind must be 'tabulated', got {data.get('kind')!r}")
    for key in ("g_min", "g_max", "programming", "drift", "read_noise"):
        if key not in data:
            raise WeightprogError(f"{where}: missing key '{key}'")
    g_min = _number(data["g_min"], f"{where}: g_min", nonneg=True)
    g_max = _number(data["g_max"], f"{where}: g_max", positive=True)
    if g_max <= g_min:
        raise WeightprogError(f"{where}: g_max ({g_max}) must be greater than g_min ({g_min})")
    t0 = _number(data.get("t0", 20.0), f"{where}: t0", positive=True)
    t_read = _number(data.get("t_read", 2.5e-7), f"{where}: t_read", positive=True)
    tables = {section: _table(data, section, columns, g_min, g_max, where)
              for section, columns in CURVES.items()}
    stuck = data.get("stuck") or {}
    if not isinstance(stuck, dict):
        raise WeightprogError(f"{where}: stuck must be a mapping with p_zero, p_gmax")
    unknown_keys(stuck, STUCK_KEYS, f"{where}: stuck")
    stuck = {key: _number(stuck.get(key, 0.0), f"{where}: stuck.{key}", nonneg=True) for key in STUCK_KEYS}
    if stuck["p_zero"] + stuck["p_gmax"] >= 1:
        raise WeightprogError(f"{where}: stuck.p_zero + stuck.p_gmax must be < 1 (at 1 every device is stuck "
                              f"and no weight can be programmed), got {stuck['p_zero'] + stuck['p_gmax']:g}")
    name = str(data.get("name") or Path(where).stem)
    return TabulatedDevice(name=name, g_min=g_min, g_max=g_max, t0=t0, t_read=t_read, stuck=stuck,
                           source=str(data.get("source", "")),
                           description=str(data.get("description", "")), **tables)


def load_tabulated(path: str | Path) -> TabulatedDevice:
    """Read a YAML or JSON device file (docs/DEVICES.md describes its keys).

    Parameters
    ----------
    path
        The file; `.json` is read as JSON, anything else as YAML.

    Returns
    -------
    TabulatedDevice

    Raises
    ------
    WeightprogError
        An unreadable or invalid file, naming the file and the key.
    """
    path = Path(path)
    text = read_text(path, "device file")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise WeightprogError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {first}") from None
    return tabulated_from_dict(data, where=str(path))
