"""<device file stem>.fit.json of `weightprog device fit`: `FitRecord`, made from a `FitResult` or
read back from a file, and `write_fit_record`, which writes it next to the device file."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._version import __version__
from ..fileio import atomic_write_json
from .jsonfile import read_json

FORMAT = "weightprog.device-fit"
FORMAT_VERSION = 1
FIT_SUFFIX = ".fit.json"
Json = dict[str, Any]


def _finite(x) -> float | None:
    """JSON has no NaN: an estimate a bin could not give is null (shown as n/a)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _value(x, column: str) -> Any:
    return bool(x) if column == "clean" else int(x) if column == "n_devices" else _finite(x)


@dataclass(frozen=True)
class FitBin:
    """One conductance bin's estimates with their standard errors (None: the bin could not give it)."""

    g: float
    n_devices: int
    sigma_p: float | None
    sigma_p_se: float | None
    nu_mean: float | None
    nu_mean_se: float | None
    nu_std: float | None
    nu_std_se: float | None
    q: float | None
    q_se: float | None
    clean: bool
    """Fitted directly (False: drift and Q copied from the nearest clean bin)."""
    bias: float | None


BIN_COLUMNS = tuple(f.name for f in fields(FitBin))


@dataclass(frozen=True)
class FitRecord:
    """What `device fit` found: the per-bin estimates, the notes, and the measurements' extent."""

    version: str
    """The weightprog version that wrote it."""
    measurements: str
    devices: int
    reads: int
    times_s: tuple[float, ...]
    device_file: str
    figure: str
    """The diagnostics figure: a name next to the device file, or a path."""
    settings: Json
    device: Json
    """The fitted device's `describe()`."""
    bins: tuple[FitBin, ...]
    notes: tuple[str, ...]
    format_version: int = FORMAT_VERSION

    @classmethod
    def of(cls, result, device_file: Path, figure_file: Path, settings: Json) -> FitRecord:
        """The record of a fit (`devices.fit.FitResult`) written as `device_file`, its figure `figure_file`."""
        import numpy as np

        m, b = result.measurements, result.bins
        bins = tuple(FitBin(**{c: _value(getattr(b, c)[k], c) for c in BIN_COLUMNS}) for k in range(len(b.g)))
        figure = figure_file.name if figure_file.parent == device_file.parent else str(figure_file)
        return cls(__version__, str(m.source), int(m.n_devices), int(len(m)),
                   tuple(sorted(float(t) for t in np.unique(m.t))), device_file.name, figure, settings,
                   result.device.describe(), bins, tuple(result.notes))

    def to_json(self) -> Json:
        return {"format": FORMAT, "version": self.version, "measurements": self.measurements,
                "devices": self.devices, "reads": self.reads, "times_s": list(self.times_s),
                "device_file": self.device_file, "figure": self.figure, "settings": self.settings,
                "device": self.device, "bins": [{c: getattr(x, c) for c in BIN_COLUMNS} for x in self.bins],
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, d: Json) -> FitRecord:
        return cls(d.get("version", "unknown"), d["measurements"], d["devices"], d["reads"], tuple(d["times_s"]),
                   d["device_file"], d["figure"], d.get("settings", {}), d["device"],
                   tuple(FitBin(**{c: x.get(c) for c in BIN_COLUMNS}) for x in d["bins"]), tuple(d.get("notes", ())))

    def figure_path(self, folder: Path) -> Path:
        return Path(self.figure) if Path(self.figure).is_absolute() else folder / self.figure


def read_fit_record(path: str | Path) -> FitRecord:
    return FitRecord.from_json(read_json(Path(path)))


def write_fit_record(result, device_file: str | Path, figure_file: str | Path, settings: Json) -> Path:
    """<device file stem>.fit.json next to the device file; its path."""
    device_file = Path(device_file)
    path = device_file.with_name(device_file.stem + FIT_SUFFIX)
    atomic_write_json(path, FitRecord.of(result, device_file, Path(figure_file), settings).to_json())
    return path
