"""The command line: parse, call the library, print. Bad input ends in one line and exit code 2."""

from __future__ import annotations

import click

from .._version import __version__
from .options import Group


@click.group(cls=Group)
@click.version_option(__version__, prog_name="weightprog")
def main():
    """Find the best way to program DNN weights into analogue memory."""


def _register():
    from .advise import advise_command, flipmap_command
    from .baselines import baselines
    from .compare import compare_devices_command
    from .device import device, devices_alias
    from .evaluate import evaluate
    from .optimize import optimize_command
    from .report import report
    from .study import study
    from .sweep import sweep
    from .train import train
    main.add_command(optimize_command, name="optimize")
    main.add_command(baselines)
    main.add_command(evaluate)
    device.add_command(advise_command)  # `weightprog device advise|flipmap`
    device.add_command(flipmap_command)
    main.add_command(device)
    main.add_command(devices_alias)  # hidden: `weightprog devices`, as scripts still type it
    main.add_command(compare_devices_command, name="compare-devices")
    main.add_command(sweep)
    main.add_command(study)
    main.add_command(report)
    main.add_command(train)


_register()
