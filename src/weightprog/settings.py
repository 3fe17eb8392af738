"""The settings of a search (`OptimizeSettings`), a training run (`TrainSettings`), a crossbar
mapping (`Mapping`) and the scoring of candidates on a network (`NetworkSettings`): the one
declaration of each field, its default and its checks (validated when made: one line naming the
field and what is allowed).

Imports nothing heavy at the top: the command line takes its options' defaults from these fields
(`cli/options.py` `setting_default`, `setting_option`) without loading torch, so `--help` and an
argument error answer at once and a default changed here is the command line's too.
`weightprog.search.run`, `weightprog.workloads`, `weightprog.hardware` and `weightprog.select` export
them where the library has always had them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import validate
from .choices import (
    GRID_PLACEMENTS,
    METHODS,
    MODES,
    NORMALISE_UNITS,
    OBJECTIVES,
    PERIPHERIES,
    REFERENCES,
    RESUMABLE_WORKLOADS,
    VARIANTS,
    WEIGHT_NOISE,
    WEIGHTINGS,
    WORKLOADS,
)
from .errors import WeightprogError
from .timeunits import DEFAULT_TIMES_S, check_times

if TYPE_CHECKING:
    from .cell import Cell
    from .nn.periphery import Periphery



def setting(default: Any, help: str | None = None, option: str | None = None) -> Any:
    """A settings field with its default and what the command line says of it: its option's `help`,
    and the `option` when it is not spelled `--field-name` (`--grid` for `grid_points`), which also
    names the field in errors (`cli/options.py` reads both).

    Parameters
    ----------
    default
        The field's default.
    help
        The option's help text (a command may say it its own way).
    option
        The option's name on the command line.
    """
    return field(default=default, metadata={k: v for k, v in (("help", help), ("option", option)) if v is not None})


IMPROVEMENT = 0.1
"""`advise`'s relative step of each device property (0.1: noise ×0.9, range ×1.1)."""


@dataclass(frozen=True)
class OptimizeSettings:
    """Everything a search and its re-scoring take; validated when made (one line naming the field
    and what is allowed), so a bad value fails before any work, from the CLI, a sweep or Python."""

    pairs: int = setting(2, "Differential pairs per weight (P).")
    significance: Cell | None = None
    """Fixed cell; None searches F in 1…f_max (cell 1, F, F², …)."""
    f_max: int = 5
    f_integer: bool = True
    times_s: tuple[float, ...] = setting(DEFAULT_TIMES_S, option="--times")
    grid_points: int = setting(6, "Grid points of the strategy table, 0 and 1 included.", option="--grid")
    grid_placement: str = "quantile"
    mode: str = setting("exact", "exact: every grid weight represented exactly; free: every device a coordinate.")
    seed: int = 0
    budget_s: float | None = setting(None, option="--budget")
    max_generations: int = 200
    popsize: int = setting(15, "Population = popsize × dimensions.")
    tol: float = 1e-3
    polish: bool = setting(True, option="--no-polish")
    polish_steps: int = 60
    rescore_blocks: int = 10
    compensation: str = "column"
    compute: str = setting("cpu", "cpu or cuda.")
    compile: bool | str = "auto"
    """torch.compile the search's kernel: True, False, or `auto` (where a compiler is available; for the
    expected objective only for long searches, `search.run.COMPILE_ABOVE_CALLS`)."""
    objective: str = setting("expected", "What the search minimises: the exact expected TNMSE or the Monte-Carlo "
                                         "TNMSE.")
    """What the search minimises: `expected` (deterministic) or `mc` (Monte Carlo, common draws)."""
    method: str = setting("auto", "de: differential evolution over the table (the paper's method); pointwise: the "
                                  "pointwise optimum as a dense table; auto: both, the better by re-score.")
    """`de`, `pointwise` or `auto` (both; the better by re-score), see METHODS."""
    weighting: str = setting("density", "What each weight's error counts by: density (every weight alike) or, with "
                                        "--model, fisher (its diagonal Fisher information: the loss increase).")
    """`density` or `fisher` (WEIGHTINGS); `fisher` needs the importance `optimize` is given with the weights."""
    bound: bool = True
    """Compute the bound per F and the best achievable under the deployed compensation."""
    clip: bool = True
    """False: choose only among strategies that represent the largest weight exactly (W_hw(1) = β),
    for users who must not clip (`--no-clip`)."""

    def __post_init__(self):
        v = validate
        v.integer(self.pairs, "pairs", 1, v.PAIRS_MAX)
        if self.significance is not None:
            from .cell import Cell  # torch: only for a fixed cell, which the caller built with it

            if not isinstance(self.significance, Cell):
                raise v.SettingError("significance", f"a Cell or None (search F), got {self.significance!r}")
            if self.significance.pairs != self.pairs:
                raise v.SettingError("significance", f"{list(self.significance.significance)} has "
                                     f"{self.significance.pairs} factors but pairs is {self.pairs}")
        v.integer(self.f_max, "f_max", 1, v.F_MAX_MAX)
        v.choice(self.f_integer, "f_integer", (True, False))
        try:
            times = check_times(self.times_s)
        except WeightprogError as exc:
            raise v.SettingError("times_s", str(exc).removeprefix("times: ")) from None
        object.__setattr__(self, "times_s", times)
        v.integer(self.grid_points, "grid_points", 2, v.GRID_POINTS_MAX)
        v.choice(self.grid_placement, "grid_placement", GRID_PLACEMENTS)
        v.choice(self.mode, "mode", MODES)
        v.seed(self.seed)
        if self.budget_s is not None:
            v.number(self.budget_s, "budget_s", above=0)
        v.integer(self.max_generations, "max_generations", 1)
        v.integer(self.popsize, "popsize", 1)  # popsize × dimensions >= 5 is checked with the space
        v.number(self.tol, "tol", above=0)
        v.choice(self.polish, "polish", (True, False))
        v.integer(self.polish_steps, "polish_steps", 0)
        v.integer(self.rescore_blocks, "rescore_blocks", 1)
        object.__setattr__(self, "compensation",  # `all`, the old name of `layer`, is read too
                           v.compensation_scope(self.compensation, "compensation", v.SAMPLE_COMPENSATION_SCOPES))
        v.compute_device(self.compute, available=False)  # a GPU is looked for where the search runs
        if self.compile not in (True, False, "auto"):
            raise v.SettingError("compile", f"true, false or 'auto', got {self.compile!r}")
        v.choice(self.objective, "objective", OBJECTIVES)
        v.choice(self.method, "method", METHODS)
        v.choice(self.weighting, "weighting", WEIGHTINGS)
        v.choice(self.bound, "bound", (True, False))
        v.choice(self.clip, "clip", (True, False))

    def to_dict(self) -> dict:
        """JSON form (reports): the cell as its list of significance factors."""
        from .cell import Cell

        return {k: (list(v.significance) if isinstance(v, Cell) else v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class TrainSettings:
    """One training run of a reference workload, as `weightprog train` takes it; validated when made.

    Parameters
    ----------
    workload : str
        One of `weightprog.workloads.WORKLOADS`.
    variant : {'fp', 'hwa'}
        Floating-point training, or hardware-aware fine-tuning of the committed FP checkpoint.
    steps, batch : int, optional
        Optimiser steps and batch size (>= 1; default: the workload's, those of the committed checkpoints).
    lr : float, optional
        Peak learning rate (> 0; default: the workload's).
    seed : int
        Seed of the run.
    device : str
        Device name or YAML/JSON file whose programming noise sets the HWA weight noise.
    output_noise : float, optional
        The older way to choose the HWA periphery: the 8-bit one with this output noise, a fraction
        of the output range in [0, 1] (`nn.periphery.output_noise_periphery`; 1/127: `standard`, 0:
        `io8`). Not together with `periphery`.
    threads : int
        torch threads (>= 1), set by the command lines (`train_workload` leaves them to its caller).
    train_size : int, optional
        sentiment-minilm only: training sentences used (>= 1).
    resume : bool
        fmnist-resnet32 and ptb-lstm only: continue from the committed FP checkpoint.
    periphery : str, optional
        The periphery preset HWA trains through (`weightprog.nn.periphery.PRESETS`; default
        `standard`): the one the model is evaluated with.
    weight_noise : {'row', 'device'}
        HWA weight noise (`training.WEIGHT_NOISE`): `row`, the device's mean programming noise ×
        each row's max |w|, or `device`, the device model's programming noise at each weight's
        conductance (`HWAConfig.noise_device`).
    clip_sigma : float or None
        HWA clips the analog weights to ± this many standard deviations of their tensor after each
        step (> 0); None: no clipping, as in `HWAConfig` (the command line's `--clip-sigma 0`).
    """

    workload: str
    variant: str = setting("fp", "Floating-point training, or hardware-aware fine-tuning of the committed FP "
                                 "checkpoint.")
    steps: int | None = setting(None, "Optimiser steps (default: the committed checkpoint's budget).")
    batch: int | None = setting(None, "Batch size (default: the workload's).")
    lr: float | None = setting(None, "Peak learning rate (default: the workload's).")
    seed: int = 0
    device: str = setting("pcm", "Device name or YAML/JSON file whose programming noise scales HWA noise.")
    output_noise: float | None = setting(None, "Older form of --periphery: the 8-bit periphery with this output "
                                               "noise, fraction of the output range (1/127: standard, 0: io8).")
    threads: int = setting(2, "torch threads.")
    train_size: int | None = setting(None, "sentiment-minilm: training sentences used (default: all).")
    resume: bool = setting(False, "fmnist-resnet32, ptb-lstm fp: continue from the committed FP checkpoint.")
    periphery: str | None = setting(None, f"The periphery HWA trains through (a preset: {', '.join(PERIPHERIES)}; "
                                          "default standard); train for the periphery the model is evaluated with.")
    weight_noise: str = setting("row", "HWA weight noise: row (the device's mean programming noise × each row's "
                                       "max |w|) or device (the device model's programming noise at each weight's "
                                       "conductance).")
    clip_sigma: float | None = setting(2.5, "HWA clips the analog weights to ± this many standard deviations after "
                                            "each step (0: no clipping).")

    def __post_init__(self):
        validate.choice(self.workload, "workload", WORKLOADS)
        validate.choice(self.variant, "variant", VARIANTS)
        for name in ("steps", "batch", "train_size"):
            if getattr(self, name) is not None:
                validate.integer(getattr(self, name), name, 1)
        if self.lr is not None:
            validate.number(self.lr, "lr", above=0)
        validate.seed(self.seed)
        if self.output_noise is not None:
            validate.number(self.output_noise, "output_noise", minimum=0, maximum=1)
        if self.periphery is not None:
            validate.choice(self.periphery, "periphery", PERIPHERIES)
            if self.output_noise is not None:
                raise validate.SettingError("periphery", "give the periphery or the output noise, not both")
        validate.integer(self.threads, "threads", 1)
        validate.choice(self.weight_noise, "weight_noise", WEIGHT_NOISE)
        if self.clip_sigma is not None:
            validate.number(self.clip_sigma, "clip_sigma", above=0)
        if self.train_size is not None and self.workload != "sentiment-minilm":
            raise validate.SettingError("train_size", f"only for sentiment-minilm, not {self.workload}")
        if self.resume and self.workload not in RESUMABLE_WORKLOADS:
            raise validate.SettingError("resume", f"only for {' and '.join(RESUMABLE_WORKLOADS)}, not {self.workload}")

    @property
    def hwa_periphery(self) -> Periphery:
        """The periphery HWA trains through: `periphery`, the one `output_noise` names, or `standard`."""
        from .nn.periphery import PRESETS, output_noise_periphery

        if self.output_noise is not None:
            return output_noise_periphery(self.output_noise)
        return PRESETS[self.periphery or "standard"]


@dataclass(frozen=True)
class Mapping:
    """How a weight matrix is laid out on crossbars, normalised and drift-compensated.

    Parameters
    ----------
    tile_rows, tile_cols
        Largest tile: inputs (rows) × outputs (columns); a matrix is cut evenly into as few
        tiles as fit (`split_tiles`).
    normalise
        Unit of w_max: `column`, `tile` or `tensor` (`NORMALISE_UNITS`).
    compensation
        Drift-compensation scope: `column`, `tile`, `layer` or `none`
        (`validate.COMPENSATION_SCOPES`); the old name `all` is read as `layer`.
    reference
        Compensation reference: `read` (a noisy read right after programming) or `programmed`
        (the noise-free programmed state).

    Raises
    ------
    WeightprogError
        For a value not in its table, or a tile smaller than 1 × 1.
    """

    tile_rows: int = 512
    tile_cols: int = 512
    normalise: str = "column"
    compensation: str = "column"
    reference: str = "read"
    """Drift-compensation reference: a noisy read right after programming, or the programmed state."""

    def __post_init__(self):
        if self.reference not in REFERENCES:
            raise WeightprogError(f"compensation reference: use one of {', '.join(REFERENCES)}, "
                                  f"got {self.reference!r}")
        if self.normalise not in NORMALISE_UNITS:
            raise WeightprogError(f"normalise: use one of {', '.join(NORMALISE_UNITS)}, got {self.normalise!r}")
        object.__setattr__(self, "compensation", validate.compensation_scope(self.compensation))
        if self.tile_rows < 1 or self.tile_cols < 1:
            raise WeightprogError("tile size must be at least 1 × 1")


@dataclass(frozen=True)
class NetworkSettings:
    """How candidates are scored on the network; validated when made.

    Parameters
    ----------
    repeats
        Programming realisations per candidate (the same seeds for each).
    seed
        Seed of the realisations.
    periphery
        The periphery the network runs through.
    mapping
        Tiling, normalisation and drift compensation of the deployment.
    include, exclude
        Globs selecting the analog weights.
    limit
        Also score the device's limit.
    """

    repeats: int = 5
    seed: int = 0
    periphery: Periphery | str = "ideal"
    mapping: Mapping = Mapping()
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    limit: bool = True

    def __post_init__(self):
        validate.integer(self.repeats, "network_repeats", 1)
        validate.seed(self.seed)
        validate.choice(self.limit, "limit", (True, False))
