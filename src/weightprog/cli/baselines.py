"""`weightprog baselines`: the hand-crafted strategies' error over time on the built-in weight distribution."""

from __future__ import annotations

import click

from .. import validate
from ..timeunits import format_times
from .options import device_option, option_names, times_option


@click.command()
@device_option()
@click.option("--pairs", default=2, show_default=True, help="Differential pairs per weight.")
@click.option("--f", "factor", default=1.0, show_default=True, help="Significance ratio between pairs.")
@times_option()
@click.option("--seed", default=0, show_default=True)
def baselines(device, pairs, factor, times, seed):
    """Error over time of the hand-crafted strategies on the built-in weight distribution."""
    from ..baselines import BASELINES, baseline
    from ..cell import Cell
    from ..devices import get_device
    from ..metric import TNMSE
    from ..sample import default_sample

    with option_names():  # no settings type here: the same range checks as OptimizeSettings'
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
