"""What the commands share: the group (library errors become one line and exit code 2, never a
traceback; Ctrl-C keeps what was written and says so) and the option groups (`--times`,
`--device`, the search options of optimize / compare-devices / device advise). Parsing only: what
the options are turned into lives in `inputs.py` and the library."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import MISSING, Field, fields

import click

from .. import runfolder
from ..choices import BASELINES, DEFAULT_ROWS, DEFAULT_SIZE, GRID_PLACEMENTS, METHODS, MODES, OBJECTIVES, baseline_name
from ..errors import WeightprogError
from ..settings import OptimizeSettings
from ..timeunits import DEFAULT_TIMES_S, parse_times
from ..validate import SettingError

RESUMABLE = ("optimize", "compare-devices", "sweep", "study")
"""Commands that checkpoint as they go and resume when rerun with the same arguments."""


def _usage_error(exc: click.UsageError):
    """A usage error as one line (no usage block): what was wrong and where the options are listed."""
    where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
    click.echo(f"error: {exc.format_message().rstrip('.')}{where}", err=True)
    sys.exit(2)


class Group(click.Group):
    """A click group whose commands end in one line and exit code 2 on a `WeightprogError` or a
    usage error (click's own usage block is never printed), and whose commands may be loaded lazily:
    `lazy` maps a command's name to `(module, attribute)` under `weightprog.cli`, imported only when
    the command is run or listed, so `weightprog --help` or a typo never loads the library first."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        """The commands' names, the lazy ones included (click's `Group.list_commands`)."""
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx, cmd_name):
        """The command `cmd_name`, importing its module the first time (click's `Group.get_command`)."""
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(f"weightprog.cli.{module}"), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx, args):
        """The group's own arguments (`weightprog --bogus`): a usage error is one line."""
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx):
        """Run the command `ctx` names; a `WeightprogError` (while parsing or running) becomes
        `error: …` and exit code 2, Ctrl-C exit code 130 with a line on what was kept.

        Parameters
        ----------
        ctx
            The group's click context.
        """
        ctx.meta["weightprog.args"] = list(ctx.args)  # the innermost group's: the command's own, as typed
        with _errors_as_lines(lambda: ctx.invoked_subcommand):  # set once the command is resolved
            return super().invoke(ctx)


@contextmanager
def _errors_as_lines(command: Callable[[], str | None]):
    """How every command ends: a `WeightprogError` (while parsing or running) or a usage error
    becomes `error: …` and exit code 2, Ctrl-C exit code 130 with a line on what the command
    (`command()` names it) kept; runs left unfinished are abandoned."""
    try:
        yield
    except WeightprogError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        _usage_error(exc)
    except KeyboardInterrupt:
        name = command()
        if name in RESUMABLE:
            click.echo("\ninterrupted: checkpoints are kept; rerun the same command to resume", err=True)
        else:  # say only what happens: these commands keep no partial work
            click.echo(f"\ninterrupted: {name or 'the command'} keeps no partial results; "
                       f"rerun it to start again", err=True)
        sys.exit(130)
    finally:
        runfolder.abandon_runs()  # a run that got to its end has finished (and left) already


def run_alone(command: click.Command, args: list[str], prog_name: str) -> None:
    """Run one command outside the group (`python -m weightprog.workloads.train …`) as the group
    runs it: the same errors as one line and exit code 2, the arguments as typed in
    `ctx.meta["weightprog.args"]`.

    Parameters
    ----------
    command
        The click command.
    args
        Its arguments.
    prog_name
        The name usage lines and errors give the program.
    """
    with _errors_as_lines(lambda: command.name):
        try:
            with command.make_context(prog_name, list(args)) as ctx:
                ctx.meta["weightprog.args"] = list(args)
                command.invoke(ctx)
        except click.exceptions.Exit as exc:  # --help
            sys.exit(exc.exit_code)


@contextmanager
def option_names(**names: str):
    """Settings errors named by the option the user typed: `--popsize`, or `names[field]`.

    Parameters
    ----------
    **names
        Option of a settings field whose option is not spelled `--field-name` (`times_s="--times"`).

    Raises
    ------
    WeightprogError
        A `SettingError` raised inside the block, with the option in place of the field.
    """
    try:
        yield
    except SettingError as exc:
        raise exc.named(names.get(exc.field, "--" + exc.field.replace("_", "-"))) from None


def setting_default(settings: type, name: str):
    """The default of field `name` of the settings dataclass `settings` (`OptimizeSettings`,
    `TrainSettings`, `StudySettings`): the one declaration of it, read without loading torch.

    Raises
    ------
    KeyError
        `settings` has no field `name`, or the field has no default.
    """
    field = _field(settings, name)
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    raise KeyError(f"{settings.__name__}.{name} has no default")


def _field(settings: type, name: str) -> Field:
    return {f.name: f for f in fields(settings)}[name]


def setting_options(settings: type) -> dict[str, str]:
    """The fields of `settings` whose option is not spelled `--field-name`, and their options (for
    `option_names`: errors name the option typed).

    Parameters
    ----------
    settings
        The settings dataclass (`weightprog.settings.setting` declares a field's option).
    """
    return {f.name: f.metadata["option"] for f in fields(settings) if "option" in f.metadata}


def setting_option(settings: type, name: str, *param_decls: str, **attrs):
    """`click.option` for the field `name` of `settings`: its default the field's (shown in --help),
    its option and help the field's unless given (`weightprog.settings.setting`).

    Parameters
    ----------
    settings
        The settings dataclass.
    name
        The field.
    *param_decls
        click's declarations when the option is spelled otherwise than the field says
        (`"--network-repeats", "network_repeats"`).
    **attrs
        click's other option attributes (`type`, `help`, `metavar`, …).
    """
    metadata = _field(settings, name).metadata
    if not param_decls:
        param_decls = (metadata["option"], name) if "option" in metadata else ("--" + name.replace("_", "-"),)
    attrs.setdefault("show_default", True)
    attrs.setdefault("help", metadata.get("help"))
    return click.option(*param_decls, default=setting_default(settings, name), **attrs)


def times_option(default: str | None = None, help: str = "Times after programming, e.g. "
                 "1s,1min,1h,1d,30d,1y (the default).", default_s: tuple[float, ...] = DEFAULT_TIMES_S):
    """`--times LIST` handed to the command as validated seconds (docs/MODEL.md §7.2 times when omitted).
    Bad times raise WeightprogError while the group parses the command: one line, exit code 2.

    Parameters
    ----------
    default
        The default as text (shown in the help), or None for `default_s`.
    help
        The option's help text.
    default_s
        The seconds when the option is omitted and `default` is None (a settings field's default).
    """
    def parse(ctx, param, value):
        try:
            return default_s if value is None else parse_times(value)
        except WeightprogError as exc:
            raise WeightprogError(f"--times: {str(exc).removeprefix('times: ')}") from None
    return click.option("--times", "times", default=default, metavar="LIST", callback=parse,
                        show_default=default is not None, help=help)


def force_option():
    """`--force`, read by `begin_run` (the commands never see it)."""
    def keep(ctx, param, value):
        ctx.meta["weightprog.force"] = value
    return click.option("--force", is_flag=True, expose_value=False, callback=keep,
                        help="Start afresh: remove the files the folder's command.json lists (only those) "
                             "instead of resuming; needed to rerun with other settings.")


class BaselineChoice(click.Choice):
    """A hand-crafted strategy's name (`lsp-first`); the older spelling `lsp_first` is read too."""

    def __init__(self):
        super().__init__(BASELINES)

    def convert(self, value, param, ctx):
        """The name with `_` read as `-`, checked against `BASELINES` (click's `Choice.convert`)."""
        return super().convert(baseline_name(str(value)), param, ctx)


def device_option(help: str = "Device name or YAML/JSON file."):
    """`--device NAME|FILE` (default `pcm`), handed to the command as typed; the command resolves it
    once with `get_device` and passes the model on.

    Parameters
    ----------
    help
        The option's help text.
    """
    return click.option("--device", default="pcm", show_default=True, help=help)


def _search_option_list() -> list:
    """Options every search command shares (optimize, compare-devices, device advise); an option of
    an `OptimizeSettings` field takes the field's default."""
    def setting(name: str, *param_decls: str, **attrs):
        return setting_option(OptimizeSettings, name, *param_decls, **attrs)

    return [
        click.option("--weights", type=str, default=None, metavar="PATH",
                     help="Network weights: .pt/.pth/.ckpt/.bin state dict, .safetensors, .npz or .npy."),
        click.option("--distribution", default=None, help="A built-in weight distribution (default: 'default')."),
        click.option("--normalise", type=click.Choice(["column", "tensor"]), default="column", show_default=True,
                     help="How --weights are normalised before sampling (as deployed)."),
        click.option("--sample-size", type=int, default=None, metavar="N",
                     help=f"Weights in the search's sample (each re-score block the same), a multiple of "
                          f"{DEFAULT_ROWS} [default: {DEFAULT_SIZE:,}]; smaller is faster and noisier."),
        setting("pairs", type=int),
        click.option("--significance", default="auto", show_default=True,
                     help="Significance factors, e.g. 1,2; 'auto' searches the cell 1,F,F²,… for F = 1…--f-max."),
        setting("f_max", type=int),
        times_option(default_s=setting_default(OptimizeSettings, "times_s")),
        setting("grid_points", type=int),
        setting("grid_placement", type=click.Choice(GRID_PLACEMENTS)),
        setting("mode", type=click.Choice(MODES)),
        setting("max_generations", type=int),
        setting("popsize", type=int),
        click.option("--no-polish", is_flag=True, help="Skip the gradient polish."),
        setting("method", type=click.Choice(METHODS)),
        setting("objective", type=click.Choice(OBJECTIVES)),
        setting("compute"),
    ]


def search_options(f):
    """The search options (`--weights` … `--compute`) on command `f`, handed to it as keyword
    arguments for `inputs.search_inputs`.

    Parameters
    ----------
    f
        The command function.

    Returns
    -------
    The function with the options attached.
    """
    for option in reversed(_search_option_list()):
        f = option(f)
    return f
