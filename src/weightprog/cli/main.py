"""The command line: parse, call the library, print. Bad input ends in one line and exit code 2."""

from __future__ import annotations

import click

from .. import validate
from .._version import __version__
from ..baselines import BASELINES, baseline
from ..cell import Cell
from ..devices import device_names, get_device
from ..metric import TNMSE
from ..sample import default_sample
from ..timeunits import format_times
from .options import Group, option_names, times_option


@click.group(cls=Group)
@click.version_option(__version__, prog_name="weightprog")
def main():
    """Find the best way to program DNN weights into analogue memory."""


@main.command()
@click.option("--device", default="pcm", show_default=True, help="Device name or YAML/JSON file.")
@click.option("--pairs", default=2, show_default=True, help="Differential pairs per weight.")
@click.option("--f", "factor", default=1.0, show_default=True, help="Significance ratio between pairs.")
@times_option()
@click.option("--seed", default=0, show_default=True)
def baselines(device, pairs, factor, times, seed):
    """Error over time of the hand-crafted strategies on the built-in weight distribution."""
    with option_names():
        validate.integer(pairs, "pairs", 1, validate.PAIRS_MAX)
        validate.seed(seed)
    dev = get_device(device)
    objective = TNMSE(default_sample(seed=seed), dev, times, seed=seed, compile=False)
    cell = Cell.with_pairs(pairs, factor)
    click.echo(f"device {dev.name}, cell f={','.join(f'{f:g}' for f in cell.significance)}, "
               f"10,240 weights of the built-in distribution, seed {seed}")
    header = f"{'strategy':<14}{'TNMSE':>11}" + "".join(f"{t:>10}" for t in format_times(times))
    click.echo(header)
    for name in BASELINES:
        result = objective.evaluate(baseline(name, cell, dev.g_min, dev.g_max))
        row = "".join(f"{x:10.3e}" for x in result.per_time[0].tolist())
        click.echo(f"{name:<14}{float(result.mean[0]):11.3e}{row}")


@main.command()
def devices():
    """List the built-in device names."""
    for name in device_names():
        dev = get_device(name)
        click.echo(f"{name:<16}{dev.kind:<14}g {dev.g_min:g}–{dev.g_max:g} µS")


def _register():
    from .advise import advise_command, flipmap_command
    from .compare import compare_devices_command
    from .device import device
    from .evaluate import evaluate
    from .optimize import optimize_command
    from .report import report
    from .study import study
    from .sweep import sweep
    from .train import train
    main.add_command(optimize_command, name="optimize")
    main.add_command(evaluate)
    device.add_command(advise_command)  # `weightprog device advise|flipmap`
    device.add_command(flipmap_command)
    main.add_command(device)
    main.add_command(compare_devices_command, name="compare-devices")
    main.add_command(sweep)
    main.add_command(study)
    main.add_command(report)
    main.add_command(train)


_register()
