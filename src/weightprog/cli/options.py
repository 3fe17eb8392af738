"""What every command group shares: library errors become one line and exit code 2, never a
traceback; Ctrl-C keeps what was written and says so."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from ..baselines import BASELINES
from ..errors import WeightprogError
from ..timeunits import DEFAULT_TIMES_S, parse_times
from ..validate import SettingError

RESUMABLE = ("optimize", "compare-devices", "sweep", "study")
"""Commands that checkpoint as they go and resume when rerun with the same arguments."""


class Group(click.Group):
    def invoke(self, ctx):
        ctx.meta["weightprog.args"] = list(ctx.args)  # the innermost group's: the command's own, as typed
        try:
            return super().invoke(ctx)
        except WeightprogError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            if ctx.invoked_subcommand in RESUMABLE:
                click.echo("\ninterrupted: checkpoints are kept; rerun the same command to resume", err=True)
            else:  # say only what happens: these commands keep no partial work
                click.echo(f"\ninterrupted: {ctx.invoked_subcommand or 'the command'} keeps no partial results; "
                           f"rerun it to start again", err=True)
            sys.exit(130)


@contextmanager
def option_names(**names: str):
    """Settings errors named by the option the user typed: `--popsize`, or `names[field]`."""
    try:
        yield
    except SettingError as exc:
        raise exc.named(names.get(exc.field, "--" + exc.field.replace("_", "-"))) from None


def times_option(default: str | None = None, help: str = "Times after programming, e.g. "
                 "1s,1min,1h,1d,30d,1y (the default)."):
    """`--times LIST` handed to the command as validated seconds (docs/MODEL.md §7.2 times when omitted).
    Bad times raise WeightprogError while the group parses the command: one line, exit code 2."""
    def parse(ctx, param, value):
        try:
            return DEFAULT_TIMES_S if value is None else parse_times(value)
        except WeightprogError as exc:
            raise WeightprogError(f"--times: {str(exc).removeprefix('times: ')}") from None
    return click.option("--times", "times", default=default, metavar="LIST", callback=parse,
                        show_default=default is not None, help=help)


class BaselineChoice(click.Choice):
    """A hand-crafted strategy's name (`lsp-first`); the older spelling `lsp_first` is read too."""

    def __init__(self):
        super().__init__(BASELINES)

    def convert(self, value, param, ctx):
        return super().convert(str(value).replace("_", "-"), param, ctx)
