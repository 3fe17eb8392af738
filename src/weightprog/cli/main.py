"""The command line: parse, call the library, print. Bad input ends in one line and exit code 2.

Each command's module is imported only when the command runs (or `--help` lists it), and imports the
library inside the command's body: `weightprog --help` and an argument error never load torch."""

from __future__ import annotations

import click

from .._version import __version__
from .options import Group

COMMANDS = {
    "optimize": ("optimize", "optimize_command"),
    "baselines": ("baselines", "baselines"),
    "evaluate": ("evaluate", "evaluate"),
    "device": ("device", "device"),  # with `device advise|flipmap` (cli/device.py)
    "devices": ("device", "devices_alias"),  # hidden: `weightprog devices`, as scripts still type it
    "compare-devices": ("compare", "compare_devices_command"),
    "sweep": ("sweep", "sweep"),
    "study": ("study", "study"),
    "report": ("report", "report"),
    "train": ("train", "train"),
}
"""Each command's name and its `(module, attribute)` under `weightprog.cli`."""


@click.group(cls=Group, lazy=COMMANDS)
@click.version_option(__version__, prog_name="weightprog")
def main():
    """Find the best way to program DNN weights into analogue memory."""
    from ..fileio import release_locks

    click.get_current_context().call_on_close(release_locks)  # a command's folder locks end with it
