"""One declaration per setting (issue 25): every command-line option of a settings field gives the
command the field's default when omitted, so a default changed in the dataclass cannot leave the
command line (or its --help) on the old one."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields

import click
import pytest

from weightprog.cli import main
from weightprog.settings import Mapping, NetworkSettings, OptimizeSettings, TrainSettings
from weightprog.study.settings import StudySettings


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _settings_of():
    """Each command's settings dataclasses or library function (with the options named otherwise
    than their field or argument) and the arguments the command requires."""
    from weightprog.advise import run_flip_map
    from weightprog.devices.fit import fit_device
    from weightprog.devices.measurements import simulate_measurements
    from weightprog.nn.evaluate import evaluate_over_time

    search = [(OptimizeSettings, {"times": "times_s"})]
    return {
        ("evaluate",): ([(Mapping, {"tile": "tile_rows", "compensation_reference": "reference"}),
                         # not settings: the library leaves a model where it is (compute None) and draws no
                         # bars (progress False); the command line loads the model on the cpu and shows bars
                         (evaluate_over_time, {"times": "times_s", "compute": None, "progress": None})],
                        ["--model", "m:f", "--strategy", "lsp-first"]),
        ("optimize",): (search + [(NetworkSettings, {"network_repeats": "repeats"})], []),
        ("compare-devices",): (search, ["pcm"]),
        ("device", "advise"): (search, ["pcm"]),
        ("device", "fit"): ([(fit_device, {})], ["m.csv", "--out", "d.yaml"]),
        ("device", "simulate"): ([(simulate_measurements, {"times": "times_s"})], ["pcm", "--out", "m.csv"]),
        ("device", "flipmap"): (search + [(run_flip_map, {})], ["pcm", "--x", "drift_mean=1", "--y", "read=1"]),
        ("train",): ([(TrainSettings, {})], ["ptb-lstm"]),
        ("study",): ([(StudySettings, {"times": "times_s"})], ["--out", "x"]),
    }


SPELLED = {"significance": {"auto": None}}
"""Options whose value is typed otherwise than the field's: `--significance auto` is `significance=None`."""


def _defaults(source) -> dict:
    """The declared defaults of a settings dataclass's fields or a function's arguments."""
    if isinstance(source, type):
        return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(source)
                if f.default is not MISSING or f.default_factory is not MISSING}
    return {name: p.default for name, p in inspect.signature(source).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_every_option_of_a_settings_field_takes_the_fields_default():
    """For every command with settings, each option named as a settings field (or mapped to one)
    parses, when omitted, to the field's default; an option that leaves the choice to the library
    (None, or an empty list for a repeatable one) is the field's default by construction."""
    settings_of = _settings_of()
    commands = dict(_commands(main))
    assert set(settings_of) <= set(commands)
    checked = []
    for path, (classes, required) in settings_of.items():
        command = commands[path]
        ctx = command.make_context(" ".join(path), list(required))
        for cls, renamed in classes:
            declared = _defaults(cls)
            for name, value in ctx.params.items():
                field, value = renamed.get(name, name), SPELLED.get(name, {}).get(value, value)
                typed = ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
                if typed or field is None or field not in declared or value is None or value == ():
                    continue
                assert value == declared[field], (path, name, value, declared[field])
                checked.append((path, name))
    assert len(checked) >= 55, checked  # the search options on four commands, train's, the study's, evaluate's, …
    for path, name in ((("optimize",), "popsize"), (("train",), "clip_sigma"), (("device", "flipmap"), "f_max"),
                       (("study",), "times"), (("optimize",), "network_repeats"), (("evaluate",), "tile"),
                       (("evaluate",), "repeats"), (("optimize",), "periphery"), (("device", "fit"), "t_read"),
                       (("device", "flipmap"), "workers")):
        assert (path, name) in checked


def test_advise_improvement_is_the_librarys():
    from weightprog.advise import advise
    ctx = dict(_commands(main))[("device", "advise")].make_context("advise", ["pcm"])
    assert ctx.params["improvement"] == inspect.signature(advise).parameters["improvement"].default


def test_a_changed_default_reaches_the_option(monkeypatch):
    """The options read the field when the command is declared: a new default is the command line's."""
    import importlib

    import weightprog.cli.optimize as optimize
    import weightprog.cli.options as options
    field = OptimizeSettings.__dataclass_fields__["popsize"]
    monkeypatch.setattr(field, "default", 21)
    try:
        command = importlib.reload(optimize).optimize_command
        assert command.make_context("optimize", []).params["popsize"] == 21
        assert "[default: 21]" in command.get_help(click.Context(command))
    finally:
        monkeypatch.undo()
        importlib.reload(optimize)
    assert options.setting_default(OptimizeSettings, "popsize") == 15


@pytest.mark.parametrize("value, expected", [("0", None), ("2", 2.0), ("2.5", 2.5)])
def test_clip_sigma_zero_is_no_clipping(value, expected):
    """`--clip-sigma 0` (the manifest's spelling) is `TrainSettings.clip_sigma = None`, HWAConfig's."""
    ctx = dict(_commands(main))[("train",)].make_context("train", ["ptb-lstm", "--clip-sigma", value])
    assert ctx.params["clip_sigma"] == expected
    assert TrainSettings("ptb-lstm", clip_sigma=expected).clip_sigma == expected
