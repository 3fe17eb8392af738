"""`weightprog report DIR`: (re)build DIR/report.html from a finished or interrupted output folder;
and `write_run_report`, which every command that writes an output folder calls at its end."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import WeightprogError
from ..report.html import Report, RunCommand, write_report
from ..timeunits import format_times


def _option_args(ctx: click.Context) -> list[str]:
    """The options the user gave, rebuilt from the parsed values (when the command was invoked on
    its own, not through the `weightprog` group, which keeps the raw arguments).

    Parameters
    ----------
    ctx
        The command's click context.

    Returns
    -------
    list of str
        The arguments, as they would be typed.
    """
    out: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name not in ctx.params or ctx.get_parameter_source(name) in (
                click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP, None):
            continue
        value = ctx.params[name]
        if isinstance(param, click.Argument):
            out += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            continue
        if not isinstance(param, click.Option):
            continue
        if param.is_flag:
            flag = param.opts[0] if value else next(iter(param.secondary_opts), None)
            out += [flag] if flag else []
            continue
        if name == "times":
            out += [param.opts[0], ",".join(format_times(value))]
            continue
        for v in (value if param.multiple else [value]):
            out += [param.opts[0], str(v)]
    return out


def run_command() -> RunCommand:
    """The command line of the command running now (as typed, when it came through the group)."""
    ctx = click.get_current_context()
    path = ctx.command_path.split()
    root = ctx.find_root()
    args = root.meta.get("weightprog.args")
    words = (path[1:] if len(path) > 1 else path)
    argv = ["weightprog", *words, *(args if args is not None else _option_args(ctx))]
    return RunCommand(argv, os.getcwd())


def write_run_report(out: str | Path, kind: str | None = None) -> Report | None:
    """report.html (and command.json) in `out`, at the end of a command; prints where. A file of
    either name that weightprog did not write is left alone, with a line saying so (the run's own
    results are written by then, so this is no failure).

    Parameters
    ----------
    out
        The command's output folder.
    kind
        The report's kind, or None to detect it from the files in `out`.

    Returns
    -------
    Report or None
        The page written, or None where it was not.
    """
    try:
        report = write_report(out, run_command(), kind)
    except WeightprogError as exc:
        click.echo(f"warning: report.html not written: {exc}", err=True)
        return None
    click.echo(f"report: {report.path}", err=True)
    return report


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def report(folder):
    """(Re)build FOLDER/report.html from the files a weightprog command wrote there (finished or
    interrupted): one self-contained page, figures inline, no network needed."""
    written = write_report(folder)
    click.echo(f"{written.kind} {'results' if written.finished else 'partial results (interrupted run)'}: "
               f"{written.path}")
