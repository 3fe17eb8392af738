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

Ids hash the expanded axes and the settings as the file writes them (a later spelling of a value,
e.g. `naive: lsp-first` for `lsp_first`, is normalised where it is used, not in the id); settings
the file leaves out take the library's defaults, are not part of the id, and are recorded in full in
every result. File paths are resolved against the sweep file's folder (not hashed, so a moved sweep
keeps its ids).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ..baselines import BASELINES
from ..cell import Cell
from ..choices import NAIVE, baseline_name
from ..errors import WeightprogError
from ..fileio import read_text
from ..sample import DEFAULT_ROWS, DEFAULT_SIZE, NORMALISE
from ..scores import json_key
from ..search.run import OptimizeSettings
from ..validate import SettingError, choice, integer, unknown_keys

KINDS = ("optimize", "compare")
AXES = ("devices", "cells", "grid_points", "times", "weights", "seeds")
TOP_KEYS = ("name", "kind") + AXES + ("settings",)
PER_JOB = ("pairs", "significance", "times_s", "grid_points", "seed")
"""OptimizeSettings fields set by the grid's axes, not by `settings`."""


class SweepError(WeightprogError):
    """A sweep file or a sweep run is wrong."""


@dataclass(frozen=True)
class SampleSettings:
    """The settings of a job that are not `OptimizeSettings` fields: how its weight sample is drawn,
    the F = 1 baseline a comparison ranks by, and the job's torch threads. Validated when made.

    Parameters
    ----------
    sample_size
        Weights in the search's sample; a multiple of `rows`.
    rows
        Weights per crossbar column of the sample.
    normalise
        `column` or `tensor` (`sample.NORMALISE`): how a weights file is normalised.
    values_size
        Weights kept from a weights file (streamed, see `largescale.stream_values`).
    threads
        torch threads of the job (results do not depend on the engine or the worker count).
    naive
        The F = 1 baseline of a comparison's naive ranking, as the CLI spells it (`lsp-first`); the
        older spelling (`lsp_first`) is read and normalised.
    """

    sample_size: int = DEFAULT_SIZE
    rows: int = DEFAULT_ROWS
    normalise: str = "column"
    values_size: int = 1 << 20
    threads: int = 1
    naive: str = NAIVE

    def __post_init__(self) -> None:
        for name in ("sample_size", "rows", "values_size", "threads"):
            integer(getattr(self, name), name, 1)
        choice(self.normalise, "normalise", NORMALISE)
        naive = baseline_name(self.naive) if isinstance(self.naive, str) else self.naive
        if naive not in BASELINES:  # as written, in both spellings
            raise SettingError("naive", f"use one of {', '.join(BASELINES)} (or {', '.join(map(json_key, BASELINES))}),"
                                        f" got {self.naive!r}")
        object.__setattr__(self, "naive", naive)
        if self.sample_size % self.rows:
            raise SettingError("sample_size", f"{self.sample_size} must be a multiple of rows ({self.rows})")

    @classmethod
    def of(cls, settings: dict) -> SampleSettings:
        """The sample settings of a job's `settings` (its other keys are OptimizeSettings fields).

        Parameters
        ----------
        settings
            A job's `params["settings"]`, as the sweep file wrote it.

        Returns
        -------
        SampleSettings
            The settings given, the defaults for the rest.
        """
        return cls(**{k: v for k, v in settings.items() if k in SAMPLE_KEYS})


SAMPLE_KEYS = tuple(f.name for f in fields(SampleSettings))
"""The keys of a sweep's `settings` that are SampleSettings fields."""
OPTIMIZE_KEYS = tuple(f.name for f in fields(OptimizeSettings) if f.name not in PER_JOB)
"""The keys of a sweep's `settings` that are OptimizeSettings fields."""
DEFAULTS = OptimizeSettings()
"""The library's defaults, taken by the axes a sweep file leaves out."""


@dataclass(frozen=True)
class Job:
    """One job of a sweep.

    Parameters
    ----------
    id
        16 hex digits hashing `kind` and `params` (`job_id`).
    kind
        `optimize` or `compare`.
    params
        What is hashed into the id and recorded: the cell, grid_points, times_s, weights, seed, the
        file's `settings`, and the device (optimize) or devices (compare) as written.
    files
        The file paths `params` names, resolved against the sweep file's folder (not hashed, so a
        moved sweep keeps its ids).
    """

    id: str
    kind: str
    params: dict
    files: dict = field(default_factory=dict)

    def label(self) -> str:
        """One line naming the job's kind, device(s), cell, grid and seed."""
        p = self.params
        cell = p["cell"]
        sig = cell["significance"]
        cell_text = f"P={cell['pairs']}," + ("F=auto" if sig == "auto" else "f=" + ",".join(f"{f:g}" for f in sig))
        dev = p["device"] if self.kind == "optimize" else "+".join(p["devices"])
        return f"{self.kind} {dev} {cell_text} grid={p['grid_points']} seed={p['seed']}"

    def to_dict(self) -> dict:
        """The JSON form (sweep.json, and what a worker is sent)."""
        return {"id": self.id, "kind": self.kind, "params": self.params, "files": self.files}

    @staticmethod
    def from_dict(data: dict) -> Job:
        """The job of its JSON form (`to_dict`)."""
        return Job(data["id"], data["kind"], data["params"], data.get("files", {}))

    def optimize_settings(self) -> OptimizeSettings:
        """The job's search settings: the file's OptimizeSettings fields and the job's axes."""
        return optimize_settings(self.params)

    def sample_settings(self) -> SampleSettings:
        """The job's sample settings (defaults for those the file leaves out)."""
        return SampleSettings.of(self.params["settings"])


@dataclass
class Sweep:
    """The jobs of a sweep file.

    Parameters
    ----------
    name
        The sweep's name (the file's `name`, else `sweep`).
    jobs
        Every job, in the order of the file's axes.
    source
        Where the sweep came from (the file's path), named in errors and in sweep.json.
    """

    name: str
    jobs: list[Job]
    source: str = "sweep"

    def job(self, job_id: str) -> Job:
        """The job with id `job_id` (KeyError when there is none)."""
        for j in self.jobs:
            if j.id == job_id:
                return j
        raise KeyError(job_id)


def job_id(kind: str, params: dict) -> str:
    """The id of a job: 16 hex digits of the SHA-256 of its settings (canonical JSON).

    Parameters
    ----------
    kind
        `optimize` or `compare`.
    params
        The job's params (`Job.params`).

    Returns
    -------
    str
        The id.
    """
    text = json.dumps({"kind": kind, **params}, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def optimize_settings(params: dict) -> OptimizeSettings:
    """The OptimizeSettings of a job: the file's settings (less the SampleSettings) and its axes.

    Parameters
    ----------
    params
        The job's params (`Job.params`).

    Returns
    -------
    OptimizeSettings
        Validated; a bad value raises `SettingError`.
    """
    cell = params["cell"]
    s = {k: v for k, v in params["settings"].items() if k not in SAMPLE_KEYS}
    s["f_max"] = cell["f_max"]
    sig = cell["significance"]
    return OptimizeSettings(pairs=cell["pairs"], significance=None if sig == "auto" else Cell(tuple(sig)),
                            times_s=tuple(params["times_s"]), grid_points=params["grid_points"],
                            seed=params["seed"], **s)


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


def _cells(value: Any, where: str, f_max: int) -> list[dict]:
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


def _times(value: Any, where: str) -> list[list[float]]:
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
    from ..devices import device_names, get_device
    from ..sample import DISTRIBUTIONS

    base = Path(base_dir)
    if not isinstance(data, dict):
        _fail(where, "expected a mapping with keys " + ", ".join(TOP_KEYS))
    unknown_keys(data, TOP_KEYS, where, SweepError)
    kinds = _as_list(data.get("kind", "optimize"), f"{where}: kind")
    for k in kinds:
        if k not in KINDS:
            _fail(f"{where}: kind", f"{k!r} is not one of {', '.join(KINDS)}")
    settings = _settings(data.get("settings"), f"{where}: settings")
    f_max = settings.get("f_max", DEFAULTS.f_max)

    devices = []
    for i, d in enumerate(_as_list(data.get("devices", "pcm"), f"{where}: devices")):
        w = f"{where}: devices[{i}]"
        written, path = _device_spec(d, w, base, device_names())
        try:
            get_device(path or written)
        except WeightprogError as exc:
            _fail(w, str(exc))
        devices.append((written, path))
    if len({d for d, _ in devices}) != len(devices):
        _fail(f"{where}: devices", "a device is listed more than once")
    cells = _cells(data.get("cells", DEFAULTS.pairs), f"{where}: cells", f_max)
    grids = [_setting("grid_points", g, f"{where}: grid_points[{i}]")
             for i, g in enumerate(_as_list(data.get("grid_points", DEFAULTS.grid_points), f"{where}: grid_points"))]
    times = _times(data.get("times"), f"{where}: times")
    weights: list[tuple[str, str | None]] = []
    for i, wt in enumerate(_as_list(data.get("weights", "distribution:default"), f"{where}: weights")):
        w = f"{where}: weights[{i}]"
        if isinstance(wt, str) and (wt.startswith("distribution:") or wt in DISTRIBUTIONS):
            name = wt.split(":", 1)[-1]
            if name not in DISTRIBUTIONS:
                _fail(w, f"unknown distribution {name!r}; use one of {', '.join(DISTRIBUTIONS)}")
            weights.append((f"distribution:{name}", None))
        else:
            weights.append(_file_or_name(wt, w, base, lambda t: False))
    seeds_value = data.get("seeds", [DEFAULTS.seed])
    if isinstance(seeds_value, int) and not isinstance(seeds_value, bool):
        try:
            seeds = list(range(integer(seeds_value, "seeds", 1)))
        except SettingError as exc:
            _fail(f"{where}: seeds", exc.message)
    else:
        seeds = [_setting("seed", s, f"{where}: seeds[{i}]")
                 for i, s in enumerate(_as_list(seeds_value, f"{where}: seeds"))]

    jobs: list[Job] = []
    common = list(itertools.product(cells, grids, times, weights, seeds))
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
