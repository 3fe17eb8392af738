"""Network metric over time after programming: S strategies × R realisations × T times.

Each realisation programs every analog weight once, then reads the same devices at each time
(drift accumulates, read noise is fresh per read). Realisation r draws from a generator seeded
by (seed, r) for every strategy: strategies are compared on common random numbers, and a seed
reproduces every number.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from collections.abc import Mapping as Mapping_
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..baselines import BASELINES, baseline
from ..cell import Cell
from ..choices import LIMIT, LIMIT_CHOSEN, LIMIT_MSE, LIMITS
from ..devices import DeviceModel, get_device
from ..errors import WeightprogError
from ..hardware import Mapping
from ..progress import Event, ProgressCallback
from ..strategy import Strategy
from ..timeunits import DEFAULT_TIMES_S, check_times
from . import fused
from .attach import attached
from .calibration import Clipping, Ranges, calibrate
from .discover import find_analog_weights
from .limit import GAIN_START, Limit, best_gains, chosen_limit, compute_limit, deployed_values, next_gains
from .mapping import mapping_report
from .periphery import Periphery, get_periphery
from .program import ProgrammedModel, WeightSwap
from .result import OverTimeResult, PassTiming
from .spec import Measurement, ModelSpec

StrategySpec = Strategy | str | Path


def resolve_strategies(specs: StrategySpec | Sequence[StrategySpec], device: DeviceModel | str = "pcm",
                       significance: Sequence[float] | str | None = None) -> list[Strategy]:
    """Strategy objects, strategy JSON files or baseline names (built for `significance` on the
    device's range) -> one single Strategy per entry, with unique names.

    Without `significance`, `single-pair` is one pair (f = 1) and the other baselines two (1, 1):
    a second pair that single-pair leaves idle would still be programmed to g_min and read with
    noise.

    Parameters
    ----------
    specs
        A strategy, a baseline name (`BASELINES`), a strategy .json file, or a sequence of these;
        a batch of strategies counts as one entry per strategy.
    device
        The device whose range the baselines are built on.
    significance
        Significance factors of the baselines (a sequence or text like `1,2`), or None.

    Returns
    -------
    list of Strategy
        Single strategies with unique names (a repeated name gets ` #2`, …).

    Raises
    ------
    WeightprogError
        For an entry that is neither, an invalid file, or no entries.
    """
    if isinstance(specs, (Strategy, str, Path)):
        specs = [specs]
    dev = get_device(device)
    if significance is None:
        cell, single = Cell((1.0, 1.0)), Cell((1.0,))
    else:
        cell = Cell.parse(significance) if isinstance(significance, str) else Cell(tuple(significance))
        single = cell
    out: list[Strategy] = []
    for spec in specs:
        if isinstance(spec, Strategy):
            out.extend(spec[i] for i in range(len(spec)))
        elif isinstance(spec, (str, Path)) and str(spec) in BASELINES:
            out.append(baseline(str(spec), single if str(spec) == "single-pair" else cell, dev.g_min, dev.g_max))
        elif isinstance(spec, (str, Path)) and (Path(spec).suffix.lower() == ".json" or Path(spec).exists()):
            s = Strategy.load(spec)
            if s.name == "strategy":  # the default name says nothing: use the file's
                s = replace(s, names=[Path(spec).stem])
            out.append(s)
        else:
            raise WeightprogError(f"strategy: {spec!r} is neither a baseline ({', '.join(BASELINES)}) "
                                  f"nor a strategy .json file")
    if not out:
        raise WeightprogError("strategy: give at least one strategy")
    seen: dict[str, int] = {}
    unique = []
    for s in out:
        count = seen[s.name] = seen.get(s.name, 0) + 1
        unique.append(s if count == 1 else replace(s, names=[f"{s.name} #{count}"]))
    return unique


def realisation_seed(seed: int, realisation: int) -> int:
    """Independent, reproducible stream per realisation (same for every strategy).

    Parameters
    ----------
    seed
        The run's seed.
    realisation
        Index of the realisation.

    Returns
    -------
    int
        A 63-bit seed for `torch.Generator.manual_seed`.
    """
    return int(np.random.SeedSequence([int(seed), int(realisation)]).generate_state(1, np.uint64)[0] >> 1)


def _counter(progress: ProgressCallback | None, total: int) -> Callable[[], None]:
    """A step that sends `progress` an `evaluate` event with one more of `total` done; sends the
    first (none done) now."""
    if progress is True:  # the old form: the bar is now the caller's (report.progress)
        raise TypeError("evaluate_over_time: progress takes a callback of a progress Event or None, "
                        "not a bool (for a bar: weightprog.report.progress.count_progress)")
    if progress is None or progress is False:  # False: the old form of None
        return lambda: None
    callback, done = progress, [0]
    callback(Event("evaluate", (), 0, total))

    def step() -> None:
        done[0] += 1
        callback(Event("evaluate", (), done[0], total))
    return step


def evaluate_over_time(model: nn.Module | ModelSpec | Mapping_[str, Any],
                       evaluate_fn: Callable[[nn.Module], Any] | None = None,
                       strategies: StrategySpec | Limit | Sequence[StrategySpec | Limit] | None = None,
                       device: DeviceModel | str = "pcm",
                       times_s: Sequence[float] = DEFAULT_TIMES_S, repeats: int = 25, seed: int = 0, *,
                       mapping: Mapping = Mapping(), periphery: Periphery | str = "ideal",
                       significance: Sequence[float] | str | None = None,
                       include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None,
                       compute: str | torch.device | None = None,
                       progress: ProgressCallback | None = None,
                       times: Sequence[float] | None = None, split: str = "test",
                       limit: Limit | Sequence[Limit] | None = None, first_realisation: int = 0) -> OverTimeResult:
    """Metric of a model over time after programming its analog weights.

    The model comes as `(model, evaluate_fn)` or as a model spec (`ModelSpec` or its mapping form,
    nn/spec.py; then give `strategies=` by keyword). `evaluate_fn(model)` runs the user's
    evaluation (its inputs on the model's compute device) and returns a number or a 1-D tensor of
    per-example values. A non-ideal periphery is first calibrated on the spec's `calibrate` data
    (else `validate`, else, for the older form, the evaluated data itself: the result records
    which in `calibrated_on`); the model is evaluated digitally; every realisation then programs
    all analog weights once and the model is evaluated at each time with the read weights swapped
    in place. The original weights are restored on return, also after an error.

    Parameters
    ----------
    model
        The torch model (its analog weights are found by `find_analog_weights`), or a model spec.
    evaluate_fn
        With a bare model: `evaluate_fn(model) -> float | 1-D tensor` (NaN is refused).
    strategies
        Strategies, baseline names or strategy files (`resolve_strategies`), `limit` (per weight
        value the least-noise unbiased targets), `limit-mse` (the weight-error bound's mapping) and
        `limit-chosen` (at each time the one of the two that scores better on the spec's `validate`
        data, `LIMIT_CHOICE_REPEATS` realisations, read with the gain that scores best there), each
        read with an oracle scale per crossbar column and time (nn/limit.py); or a `Limit` itself.
    device
        A `DeviceModel` or a name/file for `get_device`.
    times_s
        Seconds after programming at which the model is evaluated.
    repeats
        Programming realisations R per strategy.
    seed
        Seed of the realisations (`realisation_seed`), shared by every strategy.
    mapping
        Tiling, normalisation and drift compensation.
    periphery
        A preset name or a `Periphery`.
    significance
        Significance factors of the baselines named in `strategies` (and of the limit's cell).
    include, exclude
        Globs selecting the analog weights.
    compute
        Moves the model first (`cpu`, `cuda`), or None to leave it where it is.
    progress
        Receives an `evaluate` event (`Event`) at the start and after each evaluation:
        realisations × times done of all (a bar: `report.progress.count_progress`); or None.
    times
        Old name of `times_s` (deprecated; give one of the two).
    split
        `test` (the spec's `evaluate`) or `validate` (held-out data, where choices are made).
    limit
        Limits already computed for these weights and times, each used where its name is listed
        (any other listed limit is computed). results' `limit` records the first limit listed.
    first_realisation
        Index of the first realisation: realisations first … first + repeats − 1 are run, so a
        study split in blocks of realisations gives the same numbers as one run of them all.

    Returns
    -------
    OverTimeResult

    Raises
    ------
    WeightprogError
        Bad repeats, times, strategies, device, periphery, patterns or spec, or a metric function
        that returns NaN or a non-number.
    """
    start = time.perf_counter()
    spec = _spec(model, evaluate_fn)
    if strategies is None:
        raise WeightprogError("strategies: give at least one strategy")
    _check_realisations(repeats, first_realisation)
    times_s = _times(times_s, times)
    spec.function(split)  # an unknown split or a missing `validate` fails before any work
    dev = get_device(device)
    peri = get_periphery(periphery)
    listed = [strategies] if isinstance(strategies, (Strategy, str, Path, Limit)) else list(strategies)
    limits = [(i, x) for i, x in enumerate(listed) if isinstance(x, Limit) or isinstance(x, str) and x in LIMITS]
    others = [x for x in listed if not (isinstance(x, Limit) or isinstance(x, str) and x in LIMITS)]
    chosen: list[Strategy | Limit] = list(resolve_strategies(others, dev, significance)) if others else []
    if compute is not None:
        spec.model.to(compute)
    weights = find_analog_weights(spec.model, include, exclude)
    given = [] if limit is None else [limit] if isinstance(limit, Limit) else list(limit)
    computed = [x if isinstance(x, Limit) else _limit(x, given, weights, mapping, dev, times_s, significance)
                if x != LIMIT_CHOSEN else _limit_chosen(spec, given, weights, dev, times_s, seed, mapping, peri,
                                                        significance, include, exclude) for _, x in limits]
    for (i, _), lim in zip(limits, computed):
        chosen.insert(i, lim)
    names = [c.name for c in chosen]
    report = mapping_report(spec.model, weights, mapping)
    gen_device = weights[0].param.device
    metrics = torch.empty(len(chosen), repeats, len(times_s), dtype=torch.float64)
    weight_errors = torch.empty(len(chosen), repeats, len(times_s), len(weights), dtype=torch.float64)
    weight_energy = torch.tensor([float(w.matrix().double().square().sum()) for w in weights],
                                 dtype=torch.float64)
    examples: torch.Tensor | None = None
    step = _counter(progress, metrics.numel())
    state_bytes = 0
    clipping = Clipping()
    swap = WeightSwap(weights)
    try:
        digital, ranges, calibrated_on, digital_s = _digital(spec, split, weights, peri, mapping)
        analogue_start = _clock()
        for i, strategy in enumerate(chosen):
            for r in range(repeats):
                gen = torch.Generator(device=gen_device).manual_seed(realisation_seed(seed, first_realisation + r))
                programmed = None if isinstance(strategy, Limit) else ProgrammedModel(weights, strategy, dev,
                                                                                       mapping, gen)
                with attached(weights, peri, ranges, gen, clipping):
                    for k, t in enumerate(times_s):
                        read_out = None
                        if isinstance(strategy, Limit):  # each time its own mapping, programmed afresh
                            limit_map = strategy.mapping(mapping)
                            programmed = ProgrammedModel(weights, strategy.for_time(t).strategy, dev, limit_map, gen)
                            read_out = strategy.read_out(limit_map, t)
                        assert programmed is not None
                        state_bytes = programmed.state_bytes
                        with programmed.applied(t, swap, gen, read_out) as errors:
                            weight_errors[i, r, k] = errors
                            got = spec.measure(split, f"{names[i]}, t={t:g} s")
                        metrics[i, r, k] = got.value
                        if got.examples is not None:
                            if examples is None:
                                examples = torch.full(metrics.shape + got.examples.shape, math.nan,
                                                      dtype=torch.float32)
                            examples[i, r, k] = got.examples
                        step()
                del programmed
        timing = _timing(digital_s, analogue_start, metrics.numel())
    finally:
        swap.restore()
    dicts = [c.to_dict() for c in chosen]
    return OverTimeResult(names, times_s, metrics, digital.value, seed, dev.describe(),
                          peri.to_dict(), report, state_bytes, time.perf_counter() - start,
                          dicts, [w.name for w in weights], weight_errors,
                          weight_energy, clipping.layers(weights), spec.metric_name, spec.higher_is_better,
                          split, calibrated_on, examples, digital.examples,
                          computed[0].to_dict() if computed else None, spec.aggregate, timing)


def _clock() -> tuple[float, float | None]:
    """Now, and the seconds this process has compiled kernels so far: where a run's timing starts."""
    return time.perf_counter(), fused.compiling_seconds()


def _timing(digital_s: float | None, start: tuple[float, float | None], passes: int) -> PassTiming:
    """The analogue passes' timing since `start` (`_clock`), the compiling in it included and named."""
    compiled = fused.compiling_seconds()
    return PassTiming(digital_s, time.perf_counter() - start[0], passes,
                      None if start[1] is None or compiled is None else compiled - start[1])


def _limit(name: str, given: Sequence[Limit], weights, mapping: Mapping, dev, times_s: tuple[float, ...],
           significance: Sequence[float] | str | None) -> Limit:
    """The limit `name` (`limit` or `limit-mse`): the one of `given` with that name, else computed on
    the deployed weights."""
    for lim in given:
        if lim.name == name:
            return lim
    cell = None if significance is None else \
        Cell.parse(significance) if isinstance(significance, str) else Cell(tuple(significance))
    return compute_limit(deployed_values(weights, mapping), dev, times_s,
                         None if cell is None else cell.significance, unbiased=name == LIMIT)


LIMIT_CHOICE_REPEATS = 3
"""Realisations `limit-chosen` scores its two mappings and its gains with on held-out data."""


def _limit_chosen(spec: ModelSpec, given: Sequence[Limit], weights, dev: DeviceModel, times_s: tuple[float, ...],
                  seed: int, mapping: Mapping, peri: Periphery, significance: Sequence[float] | str | None,
                  include, exclude) -> Limit:
    """`limit-chosen`: `given`'s, else `choose_limit` on `limit` and `limit-mse` (`given`'s or computed)."""
    for lim in given:
        if lim.name == LIMIT_CHOSEN:
            return lim
    unbiased, mse = (_limit(name, given, weights, mapping, dev, times_s, significance) for name in (LIMIT, LIMIT_MSE))
    return choose_limit(spec, unbiased, mse, dev, times_s, seed, mapping, peri, include, exclude)


def choose_limit(spec: ModelSpec, unbiased: Limit, mse: Limit, device: DeviceModel, times_s: tuple[float, ...],
                 seed: int, mapping: Mapping, periphery: Periphery, include=None, exclude=None,
                 repeats: int = LIMIT_CHOICE_REPEATS) -> Limit:
    """`limit-chosen` (`nn.limit.chosen_limit`): `limit` and `limit-mse` scored on the spec's `validate`
    data (never the test data) with `repeats` realisations from `seed`, the better taken at each
    time; then its read-out gain per time, chosen there too (`choose_gain`).

    Raises
    ------
    WeightprogError
        When the spec has no `validate` data.
    """
    if spec.validate is None:
        raise WeightprogError(f"{LIMIT_CHOSEN}: the model spec has no held-out `validate` data to choose on")
    held = evaluate_over_time(spec, strategies=[LIMIT, LIMIT_MSE], device=device, times_s=times_s,
                              repeats=repeats, seed=seed, mapping=mapping, periphery=periphery,
                              include=include, exclude=exclude, split="validate", limit=[unbiased, mse])
    chosen = chosen_limit(unbiased, mse, held.paired_rows(), held.higher_is_better)
    # gain 1 is what was just scored: each time's chosen mapping, on the same data and draws
    at_one = [float(held.metrics[0 if a.unbiased else 1][:, k].mean()) for k, a in enumerate(chosen.at)]
    return choose_gain(spec, chosen, device, times_s, seed, mapping, periphery, include, exclude, repeats,
                       known={1.0: at_one})


def choose_gain(spec: ModelSpec, limit: Limit, device: DeviceModel, times_s: tuple[float, ...], seed: int,
                mapping: Mapping, periphery: Periphery, include=None, exclude=None,
                repeats: int = LIMIT_CHOICE_REPEATS, known: dict[float, list[float]] | None = None) -> Limit:
    """`limit` with, per time, the read-out gain whose `validate` metric is best (`repeats`
    realisations from `seed`, the same for every gain): `GAIN_START` first, then a step beyond an end
    while some time's best is there (`nn.limit.next_gains`). `known`: per gain, the metric per time
    already measured on those draws (not scored again). The gains tried are kept (`gain_scan`)."""
    means: dict[float, list[float]] = dict(known or {})
    todo = [g for g in GAIN_START if g not in means]
    higher_is_better = True
    while todo:
        res = evaluate_over_time(spec, strategies=[limit.with_gain(g) for g in todo], device=device,
                                 times_s=times_s, repeats=repeats, seed=seed, mapping=mapping,
                                 periphery=periphery, include=include, exclude=exclude, split="validate")
        higher_is_better = res.higher_is_better
        means.update({g: m.mean(0).tolist() for g, m in zip(todo, res.metrics)})
        todo = next_gains(means, higher_is_better)
    gains = best_gains(times_s, means, higher_is_better)
    return limit.with_gains(gains, [{"gain": g, "means": means[g]} for g in sorted(means)])


def _check_realisations(repeats: int, first: int) -> None:
    if not isinstance(repeats, int) or repeats < 1:
        raise WeightprogError(f"repeats: need an integer >= 1, got {repeats!r}")
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise WeightprogError(f"first_realisation: need an integer >= 0, got {first!r}")


def _times(times_s: Sequence[float], times: Sequence[float] | None) -> tuple[float, ...]:
    """The checked times, from `times_s` or its deprecated old name `times`."""
    if times is not None:
        if times_s is not DEFAULT_TIMES_S:
            raise WeightprogError("times: give times_s only (times is its old name)")
        warnings.warn("evaluate_over_time: `times=` is now `times_s=` (seconds after programming)",
                      DeprecationWarning, stacklevel=3)
        times_s = times
    return check_times(times_s)


def _spec(model, evaluate_fn) -> ModelSpec:
    """The model spec of evaluate_over_time's first two arguments."""
    if isinstance(model, nn.Module):
        if evaluate_fn is None or not callable(evaluate_fn):
            raise WeightprogError("evaluate_fn: give the function that scores the model, evaluate_fn(model)")
        return ModelSpec(model, evaluate_fn)
    if evaluate_fn is not None:
        raise WeightprogError("evaluate_over_time: with a model spec, give strategies= by keyword "
                              "(the spec holds the metric functions)")
    return ModelSpec.of(model)


def _digital(spec: ModelSpec, split: str, weights, peri: Periphery,
             mapping: Mapping) -> tuple[Measurement, Ranges | None, str | None, float | None]:
    """The digital metric on `split`, the periphery's ranges with the data they came from (one run
    serves both when the older form calibrates on the evaluated data itself), and the digital
    pass's wall time (None when it was that calibration run)."""
    if not peri.is_ideal:
        run, source = spec.calibration_run()
        value, ranges = calibrate(weights, peri, run, tile_cols=mapping.tile_cols, tile_rows=mapping.tile_rows)
        calibrated_on = "test" if source == "evaluate" else source
        if spec.function(split) is getattr(spec, source):
            return spec.reduce(value, "digital run", finite=True), ranges, calibrated_on, None
    else:
        ranges, calibrated_on = None, None
    start = time.perf_counter()
    digital = spec.measure(split, "digital run", finite=True)
    return digital, ranges, calibrated_on, time.perf_counter() - start
