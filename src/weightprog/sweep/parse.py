"""The sweep file: a declarative grid, expanded into jobs with stable ids.

Sweep file::

    name: cells-vs-devices            # optional
    kind: optimize                    # optimize (default), compare, or a list of both
    devices: [pcm, pcm-lowdrift]      # names, or device files (relative to this file)
    cells:                            # P (searches F = 1..f_max), "1,2" (a fixed cell),
      - 1                             #   or {pairs: 2, significance: auto | "1,2", f_max: 3}
      - {pairs: 2, f_max: 3}
    grid_points: [4, 6]
    times: ["1s,1h,1d,1y"]            # each item is one set of times ("1s,1h" or a list)
    weights: [distribution:default]   # distribution:NAME, or a weights file (streamed, see largescale)
    seeds: [0, 1]                     # a list, or N for 0..N-1
    settings:                         # the same for every job: OptimizeSettings fields
      max_generations: 50             #   (f_max, f_integer, grid_placement, mode, budget_s,
      popsize: 10                     #   max_generations, popsize, tol, polish, polish_steps,
      rescore_blocks: 4               #   rescore_blocks, compensation, compute, compile, …) and
      sample_size: 10240              #   the SampleSettings fields: sample_size, rows, normalise,
                                      #   values_size, threads, naive (lsp-first or lsp_first …)

`optimize` jobs are one per (device, cell, grid, times, weights, seed); `compare` jobs are one per
(cell, grid, times, weights, seed) and compare all the devices (at least two).

Every value is checked by the settings type that owns it (`OptimizeSettings` for the search's
settings and the grid's axes, `SampleSettings` for the weight sample and the job's threads), both
validated on construction with `weightprog.validate`, so the file, the CLI and Python share one
table of allowed values; an error names the file and the field (`sweep.yaml: grid_points[0]: …`).

Each axis has its parser and default in `AXIS_PARSERS`; ids and file paths: sweep/spec.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import yaml

from ..cell import Cell
from ..errors import WeightprogError
from ..fileio import read_text
from ..search.run import OptimizeSettings
from ..validate import SettingError, integer, unknown_keys
from .spec import (
    DEFAULTS,
    OPTIMIZE_KEYS,
    PER_JOB,
    SAMPLE_KEYS,
    Job,
    SampleSettings,
    Sweep,
    SweepError,
    job_id,
    optimize_settings,
)

KINDS = ("optimize", "compare")


@dataclass(frozen=True)
class _Context:
    """What an axis parser needs beyond its value: the folder relative paths are resolved
    against, and the settings' f_max (the cells' default)."""

    base: Path
    f_max: int


def _fail(where: str, message: str) -> NoReturn:
    raise SweepError(f"{where}: {message}")


def _as_list(value: Any, where: str) -> list:
    if value is None:
        _fail(where, "is empty; give a value or a list of values")
    out = value if isinstance(value, list) else [value]
    if not out:
        _fail(where, "is an empty list")
    return out


def _setting(name: str, value: Any, where: str) -> Any:
    """`value` of an axis, checked by OptimizeSettings' own rule for its field `name`."""
    try:
        OptimizeSettings(**{name: value})
    except SettingError as exc:
        _fail(where, exc.message)
    return value


def _significance(value: Any, where: str) -> list[float]:
    """A fixed cell's significance factors ('1,2' or a list of numbers), checked by `Cell`."""
    try:
        if isinstance(value, str):
            return list(Cell.parse(value).significance)
        return list(Cell(tuple(float(x) for x in _as_list(value, where))).significance)
    except (TypeError, ValueError) as exc:  # a WeightprogError too: a Cell's own check (factors > 0)
        _fail(where, f"'auto', '1,2' or a list of numbers, got {value!r} ({exc})")


def _cells(value: Any, where: str, ctx: _Context) -> list[dict]:
    """P (F = 1..f_max searched), '1,2' (a fixed cell) or {pairs, significance, f_max}."""
    f_max = ctx.f_max
    out = []
    for i, item in enumerate(_as_list(value, where)):
        w = f"{where}[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            cell = {"pairs": _setting("pairs", item, f"{w}.pairs"), "significance": "auto", "f_max": f_max}
        elif isinstance(item, str):
            try:
                sig: Any = list(Cell.parse(item).significance)
            except WeightprogError as exc:
                _fail(w, str(exc))
            cell = {"pairs": len(sig), "significance": sig, "f_max": f_max}
        elif isinstance(item, dict):
            unknown_keys(item, ("pairs", "significance", "f_max"), w, SweepError)
            sig = item.get("significance", "auto")
            if sig != "auto":
                sig = _significance(sig, f"{w}.significance")
            pairs = _setting("pairs", item.get("pairs", len(sig) if sig != "auto" else DEFAULTS.pairs), f"{w}.pairs")
            if sig != "auto" and len(sig) != pairs:
                _fail(w, f"significance {sig} has {len(sig)} factors but pairs is {pairs}")
            cell = {"pairs": pairs, "significance": sig, "f_max": _setting("f_max", item.get("f_max", f_max),
                                                                           f"{w}.f_max")}
        else:
            _fail(w, f"a cell is P (an integer), '1,2', or {{pairs, significance, f_max}}; got {item!r}")
        out.append(cell)
    return out


def _times(value: Any, where: str, ctx: _Context) -> list[list[float]]:
    """Sets of times, each '1s,1h,1y' or a list (None: the library's default times)."""
    from ..timeunits import check_times, parse_time, parse_times

    if value is None:
        return [list(DEFAULTS.times_s)]
    items = [value] if isinstance(value, str) else _as_list(value, where)
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        try:
            if isinstance(item, str):
                out.append(list(parse_times(item)))
            elif isinstance(item, list):
                out.append(list(check_times([parse_time(x) if isinstance(x, str) else float(x) for x in item])))
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                out.append(list(check_times([float(item)])))
            else:
                _fail(w, f"a set of times is '1s,1h,1y' or a list; got {item!r}")
        except SweepError:
            raise
        except WeightprogError as exc:
            _fail(w, str(exc))
        except (TypeError, ValueError) as exc:
            _fail(w, f"cannot read times {item!r} ({exc})")
    return out


def _file_or_name(text: Any, where: str, base: Path, known: Callable[[str], bool]) -> tuple[str, str | None]:
    """(as written, resolved path or None for a built-in name)."""
    if not isinstance(text, str) or not text:
        _fail(where, f"a name or a file path, got {text!r}")
    if known(text):
        return text, None
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        _fail(where, f"{text!r} is neither a known name nor an existing file ({path})")
    return text, str(path.resolve())


def _device_spec(text: Any, where: str, base: Path, names: list[str]) -> tuple[str, str | None]:
    """A device name or file, optionally scaled (`pcm:read=2`, `dev.yaml:read=2`)."""
    name, sep, scales = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if sep and "=" in scales:
        _, path = _file_or_name(name, where, base, lambda t: t in names)
        return text, f"{path}:{scales}" if path else None
    return _file_or_name(text, where, base, lambda t: t in names)


def _devices(value: Any, where: str, ctx: _Context) -> list[tuple[str, str | None]]:
    """Device names or files, optionally scaled, each loaded once to check it; no repeats."""
    from ..devices import device_names, get_device

    names = device_names()
    devices = []
    for i, d in enumerate(_as_list(value, where)):
        w = f"{where}[{i}]"
        written, path = _device_spec(d, w, ctx.base, names)
        try:
            get_device(path or written)
        except WeightprogError as exc:
            _fail(w, str(exc))
        devices.append((written, path))
    if len({d for d, _ in devices}) != len(devices):
        _fail(where, "a device is listed more than once")
    return devices


def _grid_points(value: Any, where: str, ctx: _Context) -> list[int]:
    return [_setting("grid_points", g, f"{where}[{i}]") for i, g in enumerate(_as_list(value, where))]


def _weights(value: Any, where: str, ctx: _Context) -> list[tuple[str, str | None]]:
    """`distribution:NAME` (or a bare distribution name) or a weights file."""
    from ..sample import DISTRIBUTIONS

    weights: list[tuple[str, str | None]] = []
    for i, wt in enumerate(_as_list(value, where)):
        w = f"{where}[{i}]"
        if isinstance(wt, str) and (wt.startswith("distribution:") or wt in DISTRIBUTIONS):
            name = wt.split(":", 1)[-1]
            if name not in DISTRIBUTIONS:
                _fail(w, f"unknown distribution {name!r}; use one of {', '.join(DISTRIBUTIONS)}")
            weights.append((f"distribution:{name}", None))
        else:
            weights.append(_file_or_name(wt, w, ctx.base, lambda t: False))
    return weights


def _seeds(value: Any, where: str, ctx: _Context) -> list[int]:
    """A list of seeds, or N for 0..N-1."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return list(range(integer(value, "seeds", 1)))
        except SettingError as exc:
            _fail(where, exc.message)
    return [_setting("seed", s, f"{where}[{i}]") for i, s in enumerate(_as_list(value, where))]


class _Axis(NamedTuple):
    default: Any
    """Taken when the file leaves the axis out."""
    parse: Callable[[Any, str, _Context], list]
    """(value, where, context) → the axis's values, or a SweepError naming `where`."""


AXIS_PARSERS: dict[str, _Axis] = {
    "devices": _Axis("pcm", _devices),
    "cells": _Axis(DEFAULTS.pairs, _cells),
    "grid_points": _Axis(DEFAULTS.grid_points, _grid_points),
    "times": _Axis(None, _times),
    "weights": _Axis("distribution:default", _weights),
    "seeds": _Axis([DEFAULTS.seed], _seeds),
}
"""The grid's axes in the order jobs are expanded, each with its default and parser."""
AXES = tuple(AXIS_PARSERS)
TOP_KEYS = ("name", "kind") + AXES + ("settings",)


def _settings(value: Any, where: str) -> dict:
    """The file's `settings` as written (the id hashes them): unknown keys refused (nearest key
    suggested); every value checked by the settings type that owns it (OptimizeSettings or
    SampleSettings), so the file, the CLI and Python share one rule."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(where, f"must be a mapping of setting: value, got {type(value).__name__}")
    for key in value:
        if key in PER_JOB:
            _fail(f"{where}.{key}", "is set with the grid's axes (cells, grid_points, times, seeds), not in settings")
    unknown_keys(value, sorted(OPTIMIZE_KEYS + SAMPLE_KEYS), where, SweepError)
    out = dict(value)
    try:
        OptimizeSettings(**{k: v for k, v in out.items() if k in OPTIMIZE_KEYS})
        SampleSettings.of(out)
    except SettingError as exc:
        _fail(f"{where}.{exc.field}", exc.message)
    for key in ("sample_size", "rows", "values_size", "threads"):
        if key in out:
            out[key] = int(out[key])  # numpy integers from Python callers: JSON-able
    if "tol" in out:
        out["tol"] = float(out["tol"])  # as written before: ids of existing sweeps stay the same
    return out


def _kinds(value: Any, where: str) -> list[str]:
    kinds = _as_list(value, where)
    for k in kinds:
        if k not in KINDS:
            _fail(where, f"{k!r} is not one of {', '.join(KINDS)}")
    return kinds


def _jobs(kinds: list[str], axes: dict[str, list], settings: dict, where: str) -> list[Job]:
    """Every job: optimize jobs one per device and combination of the other axes, compare jobs one
    per combination (all devices in each)."""
    devices = axes["devices"]
    common = list(itertools.product(*(axes[a] for a in AXES if a != "devices")))
    jobs: list[Job] = []
    for kind in kinds:
        if kind == "optimize":
            combos = [(dev, *rest) for dev in devices for rest in common]
        else:
            if len(devices) < 2:
                _fail(f"{where}: devices", "kind compare needs at least 2 devices")
            combos = [(None, *rest) for rest in common]
        for dev, cell, grid, ts, (weights_written, weights_path), seed in combos:
            params = {"cell": cell, "grid_points": grid, "times_s": ts, "weights": weights_written,
                      "seed": seed, "settings": settings}
            files: dict = {"weights": weights_path} if weights_path else {}
            if kind == "optimize":
                params["device"] = dev[0]
                if dev[1]:
                    files["device"] = dev[1]
            else:
                params["devices"] = [d for d, _ in devices]
                dev_files = {d: p for d, p in devices if p}
                if dev_files:
                    files["devices"] = dev_files
            try:  # the grid's values together with the settings (each was checked alone above)
                optimize_settings(params)
            except SettingError as exc:
                _fail(where, f"{exc.field}: {exc.message} (in the job {kind} {cell}, grid {grid}, seed {seed})")
            jobs.append(Job(job_id(kind, params), kind, params, files))
    return jobs


def parse_sweep(data: Any, where: str = "sweep", base_dir: str | Path = ".") -> Sweep:
    """Expand a sweep mapping (as loaded from YAML) into its jobs.

    Parameters
    ----------
    data
        The sweep file's mapping (module docstring).
    where
        The file's name, first in every error message.
    base_dir
        The folder relative device and weights paths are resolved against.

    Returns
    -------
    Sweep
        Its jobs, with stable ids.

    Raises
    ------
    SweepError
        A bad key or value, naming `where` and the field (`sweep.yaml: cells[1].pairs: …`).
    """
    if not isinstance(data, dict):
        _fail(where, "expected a mapping with keys " + ", ".join(TOP_KEYS))
    unknown_keys(data, TOP_KEYS, where, SweepError)
    kinds = _kinds(data.get("kind", "optimize"), f"{where}: kind")
    settings = _settings(data.get("settings"), f"{where}: settings")
    ctx = _Context(Path(base_dir), settings.get("f_max", DEFAULTS.f_max))
    axes = {axis: a.parse(data.get(axis, a.default), f"{where}: {axis}", ctx) for axis, a in AXIS_PARSERS.items()}
    jobs = _jobs(kinds, axes, settings, where)
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        _fail(where, "two jobs have the same settings (a value is repeated in an axis)")
    name = data.get("name", "sweep")
    if not isinstance(name, str):
        _fail(f"{where}: name", f"must be a string, got {name!r}")
    return Sweep(name, jobs, where)


def load_sweep(path: str | Path) -> Sweep:
    """Read and expand a sweep YAML file (`yaml.safe_load`, then `parse_sweep`).

    Parameters
    ----------
    path
        The sweep file; relative paths in it are resolved against its folder.

    Returns
    -------
    Sweep
        Its jobs.

    Raises
    ------
    SweepError
        The file cannot be read, is not YAML, or has a bad key or value (naming the file and the field).
    """
    path = Path(path)
    text = read_text(path, "sweep file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SweepError(f"{path}: not valid YAML ({exc})") from None
    return parse_sweep(data, str(path), path.parent)
