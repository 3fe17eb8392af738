"""What every command group shares: library errors become one line and exit code 2, never a
traceback; Ctrl-C keeps what was written and says so."""

from __future__ import annotations

import sys

import click

from .errors import WeightprogError


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WeightprogError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: checkpoints are kept; rerun the same command to resume", err=True)
            sys.exit(130)
