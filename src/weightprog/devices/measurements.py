"""Measured device data (docs/MODEL.md §3.5): a CSV with one row per read, `device_id, g_target, t, g`.

`t` is seconds since programming ended (> 0), conductances are µS. Reading validates every row and
stops at the first problem with one message naming the file, the row (spreadsheet numbering: the
header is row 1) and the column. `simulate_measurements` makes such a table from any DeviceModel,
for trying the fitter and for round-trip tests.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightprogError
from ..fileio import atomic_write_text, read_text
from ..timeunits import check_times
from .base import DeviceModel

COLUMNS = ("device_id", "g_target", "t", "g")
NUMERIC = ("g_target", "t", "g")
G_PLAUSIBLE_MAX = 1e4
"""µS (10 mS): a measured conductance above it is in the wrong unit, not a device."""


@dataclass
class Measurements:
    """Reads of programmed devices, sorted by device and then time.

    `device` is the index of each row's device in `ids`; each device's reads are contiguous.
    """

    ids: list[str]
    device: np.ndarray      # (rows,) int
    g_target: np.ndarray    # (rows,) µS
    t: np.ndarray           # (rows,) s after programming
    g: np.ndarray           # (rows,) µS
    source: str = "measurements"

    @property
    def n_devices(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return len(self.g)

    def device_targets(self) -> np.ndarray:
        """Target conductance of each device (n_devices,)."""
        out = np.empty(self.n_devices)
        out[self.device] = self.g_target
        return out

    def reads_per_device(self) -> np.ndarray:
        return np.bincount(self.device, minlength=self.n_devices)

    def first_rows(self) -> np.ndarray:
        """Row index of each device's earliest read (rows are sorted by device, then t)."""
        starts = np.r_[0, np.cumsum(self.reads_per_device())[:-1]]
        return starts.astype(int)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for d, gt, t, g in zip(self.device, self.g_target, self.t, self.g):
            writer.writerow((self.ids[d], repr(float(gt)), repr(float(t)), repr(float(g))))
        return buf.getvalue()


def _fail(where: str, message: str):
    raise WeightprogError(f"{where}: {message}")


def _columns(header: list[str], where: str) -> dict[str, int]:
    """Each column's position in the header row (every column once, none missing)."""
    seen = set()
    for name in header:
        if name in seen:
            _fail(where, f"row 1 (header): column '{name}' appears twice")
        seen.add(name)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        _fail(where, f"row 1 (header): missing column{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(repr(c) for c in missing)}; need {', '.join(COLUMNS)} (got {', '.join(header)})")
    return {c: header.index(c) for c in COLUMNS}


def _numbers(row: list[str], i: int, col: dict[str, int], where: str) -> dict[str, float]:
    """Row `i`'s numeric fields, each finite and plausible."""
    values = {}
    for name in NUMERIC:
        cell = row[col[name]].strip()
        try:
            value = float(cell)
        except ValueError:
            _fail(where, f"row {i}, column '{name}': {cell!r} is not a number")
        if not math.isfinite(value):
            _fail(where, f"row {i}, column '{name}': {cell!r} is not finite")
        values[name] = value
    if values["g_target"] < 0:
        _fail(where, f"row {i}, column 'g_target': {values['g_target']} is negative; conductances are >= 0 µS")
    if values["g"] < 0:
        _fail(where, f"row {i}, column 'g': {values['g']} is negative; conductances are >= 0 µS")
    for name in ("g_target", "g"):
        if values[name] > G_PLAUSIBLE_MAX:
            _fail(where, f"row {i}, column '{name}': {values[name]:g} µS is above {G_PLAUSIBLE_MAX:g} µS "
                         f"(10 mS), more than any memory device conducts; conductances are in µS "
                         f"(were they written in nS or pS?)")
    if values["t"] <= 0:
        _fail(where, f"row {i}, column 't': {values['t']} is not allowed; t is seconds after "
                     f"programming and must be > 0")
    return values


def parse_measurements(text: str, where: str = "measurements") -> Measurements:
    """Validate CSV text; `where` (usually the file name) starts every error message."""
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines are harmless
    if not rows:
        _fail(where, "the file is empty; expected a header row " + ",".join(COLUMNS) + " and data rows")
    header = [cell.strip().lower() for cell in rows[0]]
    col = _columns(header, where)
    if len(rows) < 2:
        _fail(where, "no data rows after the header")

    ids: list[str] = []
    dev_index: dict[str, int] = {}
    target_of: list[float] = []
    device_rows: list[int] = []
    g_target: list[float] = []
    t_rows: list[float] = []
    g: list[float] = []
    for i, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            _fail(where, f"row {i}: empty row inside the data")
        if [cell.strip().lower() for cell in row] == header:
            _fail(where, f"row {i}: the header is repeated (were two files concatenated?)")
        if len(row) != len(header):
            _fail(where, f"row {i}: expected {len(header)} fields like the header, got {len(row)}")
        values = _numbers(row, i, col, where)
        name = row[col["device_id"]].strip()
        if not name:
            _fail(where, f"row {i}, column 'device_id': empty")
        if name not in dev_index:
            dev_index[name] = len(ids)
            ids.append(name)
            target_of.append(values["g_target"])
        d = dev_index[name]
        if values["g_target"] != target_of[d]:
            _fail(where, f"row {i}, column 'g_target': device {name!r} has target {target_of[d]} "
                         f"in an earlier row and {values['g_target']} here; one target per device")
        device_rows.append(d)
        g_target.append(values["g_target"])
        t_rows.append(values["t"])
        g.append(values["g"])

    device, t = np.asarray(device_rows), np.asarray(t_rows)
    order = np.lexsort((t, device))
    dup = (np.diff(device[order]) == 0) & (np.diff(t[order]) == 0)
    if dup.any():
        k = order[int(np.argmax(dup)) + 1]
        _fail(where, f"row {k + 2}: device {ids[device[k]]!r} is read twice at t = {t[k]:g} s")
    return Measurements(ids=ids, device=device[order], g_target=np.asarray(g_target)[order],
                        t=t[order], g=np.asarray(g)[order], source=where)


def read_measurements(path: str | Path) -> Measurements:
    """Read and validate a measurement CSV file."""
    return parse_measurements(read_text(path, "measurements"), where=str(path))


def write_measurements(path: str | Path, table: Measurements) -> None:
    """Write the CSV atomically."""
    atomic_write_text(path, table.to_csv())


def simulate_measurements(device: DeviceModel, targets: Iterable[float], devices_per_target: int,
                          times_s: Iterable[float], seed: int = 0) -> Measurements:
    """Program `devices_per_target` fresh devices at each target and read each at every time.

    Uses the device's own laws (`program`, then `read` with fresh read noise per time), in float64.
    """
    targets = [float(x) for x in targets]
    if not targets:
        raise WeightprogError("simulate: at least one target conductance is needed")
    for x in targets:
        if not (math.isfinite(x) and device.g_min <= x <= device.g_max):
            raise WeightprogError(f"simulate: target {x} µS is outside the device range "
                                  f"[{device.g_min:g}, {device.g_max:g}] µS")
    if int(devices_per_target) < 1:
        raise WeightprogError(f"simulate: devices per target must be >= 1, got {devices_per_target}")
    times = check_times(times_s)
    n = int(devices_per_target)
    gen = torch.Generator().manual_seed(int(seed))
    g_t = torch.tensor(targets, dtype=torch.float64).repeat_interleave(n)
    state = device.program(g_t, generator=gen)
    reads = device.read(state, torch.tensor(times, dtype=torch.float64), generator=gen)  # (T, N)
    n_dev, n_t = g_t.numel(), len(times)
    width = len(str(n_dev - 1))
    return Measurements(
        ids=[f"d{i:0{width}d}" for i in range(n_dev)],
        device=np.repeat(np.arange(n_dev), n_t),
        g_target=np.repeat(g_t.numpy(), n_t),
        t=np.tile(np.asarray(times), n_dev),
        g=reads.T.reshape(-1).numpy().copy(),
        source=f"simulated from {device.name} (seed {seed})")
