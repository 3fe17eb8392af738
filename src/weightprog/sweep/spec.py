"""A sweep's types: its jobs (`Job`, with stable ids), the settings a job adds to the search's
(`SampleSettings`), and the sweep itself; sweep/parse.py reads the sweep file into them.

Ids hash the expanded axes and the settings as the file writes them (a later spelling of a value,
e.g. `naive: lsp-first` for `lsp_first`, is normalised where it is used, not in the id); settings
the file leaves out take the library's defaults, are not part of the id, and are recorded in full in
every result. File paths are resolved against the sweep file's folder (not hashed, so a moved sweep
keeps its ids).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields

from ..baselines import BASELINES
from ..cell import Cell
from ..choices import NAIVE, baseline_name
from ..errors import WeightprogError
from ..sample import DEFAULT_ROWS, DEFAULT_SIZE, NORMALISE
from ..scores import json_key
from ..search.run import OptimizeSettings
from ..validate import SettingError, choice, integer

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
