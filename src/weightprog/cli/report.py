"""`weightprog report DIR`: (re)build DIR/report.html from a finished or interrupted output folder;
`begin_run`, which every command that writes an output folder calls before any work (its manifest,
runfolder.py), and `write_run_report`, which it calls at its end (the page; the run `finished`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import runfolder
from ..errors import WeightprogError
from ..timeunits import format_times

if TYPE_CHECKING:
    from ..report.html import Report, RunCommand

NOT_SETTINGS = frozenset({"out_dir", "workers", "ray", "ray_address", "skip_failed", "list_only", "progress",
                          "threads"})
"""Parameters that change how a run goes, never what it finds: a rerun may change them."""


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
    from ..report.html import RunCommand

    ctx = click.get_current_context()
    path = ctx.command_path.split()
    root = ctx.find_root()
    args = root.meta.get("weightprog.args")
    words = (path[1:] if len(path) > 1 else path)
    argv = ["weightprog", *words, *(args if args is not None else _option_args(ctx))]
    return RunCommand(argv, os.getcwd())


def run_settings(ctx: click.Context) -> dict:
    """The command's settings as the manifest keeps them: {option as typed: value}, defaults included."""
    out = {}
    for param in ctx.command.params:
        if param.name in ctx.params and param.name not in NOT_SETTINGS:
            key = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
            value = ctx.params[param.name]
            value = ",".join(format_times(value)) if param.name == "times" and value else value  # as typed: 1s,1d
            out[key] = json.loads(json.dumps(value, default=str))  # as stored: lists, text
    return out


def begin_run(out: str | Path, outputs: tuple[str, ...], settings: dict | None = None,
              extents: tuple[str, ...] = ()) -> Path:
    """Claim the output folder `out` before any work (runfolder.start_run): its manifest, with the
    command as typed and its settings, state `running`.

    Parameters
    ----------
    out
        The output folder.
    outputs
        Glob patterns of the files the command writes there (report.html aside).
    settings
        Extra settings to record beside the command's options.
    extents
        Options a rerun may change (runfolder.start_run).

    Returns
    -------
    Path
        The folder, created and locked.
    """
    ctx = click.get_current_context()
    command = run_command()
    kind = " ".join(ctx.command_path.split()[1:]) or ctx.command_path
    return runfolder.start_run(out, kind, command.argv, command.cwd, {**run_settings(ctx), **(settings or {})},
                               outputs, force=bool(ctx.meta.get("weightprog.force")), extents=extents).folder


def write_run_report(out: str | Path, kind: str | None = None) -> Report | None:
    """report.html in `out`, at the end of a command, then its manifest says `finished`; prints
    where. A report.html that weightprog did not write is left alone, with a line saying so (the
    run's own results are written by then, so this is no failure).

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
    from ..report.html import write_report

    report = None
    try:
        report = write_report(out, kind)
    except WeightprogError as exc:
        click.echo(f"warning: report.html not written: {exc}", err=True)
    runfolder.finish_run(out)  # not on Ctrl-C: an interrupted run stays `running` (shown as interrupted)
    if report is not None:
        click.echo(f"report: {report.path}", err=True)
    return report


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def report(folder):
    """(Re)build FOLDER/report.html from the files a weightprog command wrote there (finished or
    interrupted): one self-contained page, figures inline, no network needed."""
    from ..report.html import read_command, write_report

    written = write_report(folder)
    click.echo(f"{written.kind} {'results' if written.finished else f'partial results ({written.status})'}: "
               f"{written.path}")
    command = read_command(folder)
    if not written.finished and command is not None:
        click.echo(f"its command (rerun it to resume): {command.text()}")
