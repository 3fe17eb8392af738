"""What the search commands (optimize, compare-devices, device advise) make of their shared options:
the settings, the weights to optimise for and the search's weight sample. Loading, not parsing:
the options themselves are declared in `options.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from .. import validate
from ..choices import DEFAULT_ROWS, DEFAULT_SIZE
from ..errors import WeightprogError
from ..settings import OptimizeSettings
from ..validate import compute_device
from .options import option_names, setting_options

if TYPE_CHECKING:  # loaded when a command runs, not when the command line starts
    import torch

    from ..sample import WeightSample

def check_sample_size(sample_size: int | None) -> int:
    """`--sample-size`, checked: None is the default sample's size; else at least one column and a
    whole number of columns (`choices.DEFAULT_ROWS` weights each).

    Raises
    ------
    SettingError
        Not a positive multiple of the column's rows (named `sample_size`).
    """
    if sample_size is None:
        return DEFAULT_SIZE
    validate.integer(sample_size, "sample_size", DEFAULT_ROWS)
    if sample_size % DEFAULT_ROWS:
        raise validate.SettingError("sample_size", f"{sample_size} must be a multiple of {DEFAULT_ROWS} "
                                                   f"(weights per crossbar column)")
    return sample_size




@dataclass(frozen=True)
class SearchInputs:
    """The search options, read: validated settings and the weights they are for."""

    settings: OptimizeSettings
    values: torch.Tensor
    """The normalised weights (all of them, or a uniform sample of a large file)."""
    sample: WeightSample
    """The search's weight sample, drawn from `values`."""
    source: str
    """Where the weights came from: the file, or `distribution:NAME`."""
    importance: torch.Tensor | None = None
    """Each value's importance (`--weighting fisher`), drawn into the sample with it; None: all alike."""


def load_values(weights: str | None, distribution: str | None, normalise: str,
                seed: int = 0) -> tuple[torch.Tensor, str]:
    """Normalised weights to optimise for, and a label saying where they came from.

    A weights file is streamed tensor by tensor into a uniform sample of at most 2²⁰ weights, so
    a BERT-sized file never sits in memory as several pooled copies (largescale.py).

    Parameters
    ----------
    weights
        A weights file (`--weights`), or None.
    distribution
        A built-in distribution's name (`--distribution`), or None for `default` when no file is given.
    normalise
        `column` or `tensor`: how the file's weights are normalised.
    seed
        Seed of the file's uniform sample.

    Returns
    -------
    tuple of (torch.Tensor, str)
        The normalised weights and their source label (the file, or `distribution:NAME`).

    Raises
    ------
    WeightprogError
        Both a file and a distribution, an unknown distribution, or an unreadable file.
    """
    from ..largescale import sample_file
    from ..sample import DISTRIBUTIONS, load_distribution

    if weights and distribution:
        raise WeightprogError("--weights and --distribution: give one, not both")
    if weights:
        return sample_file(weights, seed=seed, normalise=normalise).values, weights
    name = distribution or "default"
    if name not in DISTRIBUTIONS:
        raise WeightprogError(f"--distribution: unknown {name!r}; use one of {', '.join(DISTRIBUTIONS)}")
    return load_distribution(name), f"distribution:{name}"


def _typed(name: str) -> bool:
    """Whether the user gave option `name` on the command line (not its default)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def search_inputs(weights: str | None, distribution: str | None, normalise: str, pairs: int, significance: str,
                  times: tuple[float, ...], grid_points: int, no_polish: bool, compute: str, seed: int,
                  given: tuple[torch.Tensor, str] | None = None, sample_size: int | None = None,
                  importance: torch.Tensor | None = None, **settings) -> SearchInputs:
    """The search options (`options.search_options`) and a command's own settings -> `SearchInputs`.

    The settings are validated first (errors name the option, e.g. `--popsize`), and a GPU that
    `--compute cuda` asks for is looked for before the weights are read.

    Parameters
    ----------
    weights, distribution, normalise
        Where the weights come from (`load_values`).
    pairs
        Differential pairs per weight.
    significance
        `auto` (search F), or factors such as `1,2`.
    times
        Seconds after programming.
    grid_points
        Grid points of the strategy table.
    no_polish
        Skip the gradient polish.
    compute
        `cpu`, `cuda` or `cuda:N`.
    seed
        The run's seed (settings and the search sample).
    given
        Normalised weights and their label taken as they are (`optimize --model`: the model's
        analog weights as deployed) instead of `weights`/`distribution`.
    sample_size
        Weights in the search's sample (`--sample-size`; None: `choices.DEFAULT_SIZE`).
    importance
        With `given`: each of its values' importance (`--weighting fisher`), drawn with them.
    **settings
        Any other `OptimizeSettings` field, by name (f_max, grid_placement, mode, max_generations,
        popsize, method, objective, budget_s, rescore_blocks, …).

    Returns
    -------
    SearchInputs

    Raises
    ------
    WeightprogError
        A setting out of range (named by its option), no GPU for `--compute cuda`, or unreadable weights.
    """
    from ..cell import Cell
    from ..sample import sample_from_values

    with option_names(**setting_options(OptimizeSettings)):
        compute_device(compute)  # a GPU where --compute cuda asks for one, before the weights are read
        size = check_sample_size(sample_size)
        cell = None if significance == "auto" else Cell.parse(significance)
        opts = OptimizeSettings(pairs=pairs, significance=cell, times_s=times, grid_points=grid_points,
                                seed=seed, polish=not no_polish, compute=compute, **settings)
    if given is None and not weights and _typed("normalise"):  # never silently ignored: say it does nothing here
        click.echo("warning: --normalise applies to --weights files; the built-in distributions are "
                   "normalised already", err=True)
    values, source = given if given is not None else load_values(weights, distribution, normalise, seed)
    sample = sample_from_values(values, size=size, seed=seed, source=source, importance=importance)
    return SearchInputs(opts, values, sample, source, importance)

