"""`weightprog device ...`: list the built-in devices, fit a device to measurements, simulate
measurements, show a device (`device advise` and `device flipmap` are in advise.py).

Every command computes everything (fit, figure bytes) before writing anything, so an error leaves
no partial output; files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import validate
from ..errors import WeightprogError
from ..fileio import atomic_write, refuse_overwriting_inputs
from ..timeunits import format_time
from .options import Group, force_option, option_names, times_option


def _write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically.

    Parameters
    ----------
    path
        The file.
    data
        Its content.
    """
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _parse_targets(text: str | None, device) -> list[float]:
    """`--targets 0,5,10,25` -> conductances (µS); 11 evenly spaced over the device's range when None.

    Parameters
    ----------
    text
        The option's value, or None.
    device
        The device (its range).

    Returns
    -------
    list of float
    """
    import numpy as np

    if text is None:  # 11 evenly spaced targets over the device's range
        return [float(x) for x in np.linspace(device.g_min, device.g_max, 11)]
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise WeightprogError(f"--targets: cannot read {part!r}; give conductances in µS, "
                                  f"e.g. 0,5,10,25") from None
    return out


@click.group(cls=Group, lazy={"advise": ("advise", "advise_command"), "flipmap": ("advise", "flipmap_command")})
def device():
    """Device models: fit one to measurements, simulate measurements, show its curves."""


def _print_device_list() -> None:
    """One line per built-in device and preset: name, kind, conductance range."""
    from ..devices import device_names, get_device

    for name in device_names():
        dev = get_device(name)
        click.echo(f"{name:<16}{dev.kind:<14}g {dev.g_min:g}–{dev.g_max:g} µS")


@device.command("list")
def list_devices():
    """List the built-in device names."""
    _print_device_list()


@click.command("devices", hidden=True)
def devices_alias():
    """List the built-in device names (the older spelling of `weightprog device list`)."""
    _print_device_list()


@device.command()
@click.argument("measurements", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Device file to write (.yaml, or .json).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Diagnostics figure (default: next to --out, with .png).")
@click.option("--name", default=None, help="Device name (default: the --out file's stem).")
@click.option("--t0", default=20.0, show_default=True, help="Drift reference time t0 (s).")
@click.option("--t-read", default=2.5e-7, show_default=True, help="Read duration (s) in the 1/f law.")
@click.option("--g-min", default=0.0, show_default=True, help="Device range floor (µS).")
@click.option("--g-max", default=None, type=float, help="Device range top (µS; default: the largest target).")
@click.option("--min-devices", default=30, show_default=True, help="Fewest devices in a conductance bin.")
@click.option("--max-bins", default=12, show_default=True, help="Most conductance bins.")
@force_option()
def fit(measurements, out, plot, name, t0, t_read, g_min, g_max, min_devices, max_bins):
    """Fit a tabulated device to MEASUREMENTS.csv (device_id, g_target, t, g). Also writes
    <out stem>.fit.json (per-bin estimates ± s.e.) and report.html in the --out file's folder."""
    from ..devices.fit import fit_device, write_device
    from ..devices.measurements import read_measurements
    from ..records.fit import write_fit_record
    from ..report.device_plots import fit_figure, written_by_weightprog
    from .report import begin_run, write_run_report

    if plot is None:  # the default figure path must not replace a file that is not ours
        plot = out.with_suffix(".png")
        if plot.exists() and not written_by_weightprog(plot):
            raise WeightprogError(f"{plot}: exists and is not a figure weightprog wrote; pass --plot PATH "
                                  f"to choose where the diagnostics figure goes")
    refuse_overwriting_inputs({"--out": out, "--plot": plot}, {"MEASUREMENTS": measurements})
    table = read_measurements(measurements)
    result = fit_device(table, name=name or out.stem, t0=t0, t_read=t_read, g_min=g_min,
                        g_max=g_max, min_devices=min_devices, max_bins=max_bins)
    png = fit_figure(result)
    mine = [out.name, out.stem + ".fit.json"] + ([plot.name] if plot.parent == out.parent else [])
    begin_run(out.parent, tuple(mine))  # the folder of --out is the run's: its manifest, before any file
    write_device(out, result.device)
    _write_bytes(plot, png)
    write_fit_record(result, out, plot, {"t0": t0, "t_read": t_read, "g_min": g_min, "g_max": g_max,
                                         "min_devices": min_devices, "max_bins": max_bins})
    b = result.bins
    click.echo(f"fitted {table.n_devices} devices, {len(table)} reads into {len(b.g)} bins -> {out}")
    click.echo(f"{'G µS':>8}{'devices':>9}{'σ_p µS':>9}{'ν mean':>9}{'ν std':>9}{'Q':>9}")
    for k in range(len(b.g)):
        click.echo(f"{b.g[k]:8.3g}{b.n_devices[k]:9d}{b.sigma_p[k]:9.3g}{b.nu_mean[k]:9.3g}"
                   f"{b.nu_std[k]:9.3g}{b.q[k]:9.3g}" + ("" if b.clean[k] else "  (censored)"))
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"diagnostics: {plot}")
    write_run_report(out.parent, kind="device-fit")


@device.command()
@click.argument("device_spec", metavar="DEVICE")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Measurement CSV to write.")
@click.option("--targets", "targets_text", default=None, metavar="LIST",
              help="Target conductances in µS, e.g. 0,5,10,25 (default: 11 over the device range).")
@click.option("--devices", "per_target", default=200, show_default=True, help="Devices per target.")
@times_option(help="Read times after programming, e.g. 1s,1min,1h,1d,30d,1y (the default).")
@click.option("--seed", default=0, show_default=True)
def simulate(device_spec, out, targets_text, per_target, times, seed):
    """Simulate a measurement CSV from DEVICE (a name or a .yaml/.json file)."""
    from ..devices import get_device
    from ..devices.measurements import simulate_measurements, write_measurements

    with option_names():
        validate.seed(seed)
    if Path(device_spec).is_file():
        refuse_overwriting_inputs({"--out": out}, {"DEVICE": device_spec})
    dev = get_device(device_spec)
    table = simulate_measurements(dev, _parse_targets(targets_text, dev), per_target, times, seed=seed)
    write_measurements(out, table)
    click.echo(f"{table.n_devices} devices x {len(times)} reads of {dev.name} "
               f"({', '.join(format_time(t) for t in times)}), seed {seed} -> {out}")


@device.command()
@click.argument("device_spec", metavar="DEVICE")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the curves figure (PNG).")
@click.option("--points", default=6, show_default=True, help="Rows in the table.")
def show(device_spec, out, points):
    """Print DEVICE's curves as a short table; --out writes the figure."""
    import torch

    from ..devices import get_device

    if out is not None and Path(device_spec).is_file():
        refuse_overwriting_inputs({"--out": out}, {"DEVICE": device_spec})
    dev = get_device(device_spec)
    png = None
    if out is not None:
        from ..report.device_plots import device_figure
        png = device_figure(dev)
    g = torch.linspace(dev.g_min, dev.g_max, max(points, 2), dtype=torch.float64)
    cols = [dev.programming_std(g), dev.drift_mean(g), dev.drift_std(g), dev.read_q(g)]
    click.echo(f"device {dev.name} ({dev.kind}): G {dev.g_min:g}–{dev.g_max:g} µS, "
               f"t0 {dev.t0:g} s, t_read {dev.t_read:g} s")
    src = getattr(dev, "source", "")
    if src:
        click.echo(f"source: {' '.join(src.split())}")
    click.echo(f"{'G µS':>8}{'σ_p µS':>9}{'ν mean':>9}{'ν std':>9}{'Q':>9}")
    for k in range(len(g)):
        click.echo(f"{float(g[k]):8.3g}" + "".join(f"{float(c[k]):9.3g}" for c in cols))
    if png is not None:
        _write_bytes(out, png)
        click.echo(f"figure: {out}")
