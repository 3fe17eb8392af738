"""Network metric over time after programming: S strategies × R realisations × T times.

Each realisation programs every analog weight once, then reads the same devices at each time
(drift accumulates, read noise is fresh per read). Realisation r draws from a generator seeded
by (seed, r) for every strategy: strategies are compared on common random numbers, and a seed
reproduces every number.
"""

from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from collections.abc import Mapping as Mapping_
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..baselines import BASELINES, baseline
from ..cell import Cell
from ..devices import DeviceModel, get_device
from ..errors import WeightprogError
from ..hardware import Mapping
from ..strategy import Strategy
from ..timeunits import DEFAULT_TIMES_S, check_times, format_time
from .attach import attached
from .calibration import Clipping, LayerClipping, Ranges, calibrate
from .discover import find_analog_weights
from .limit import LIMIT, Limit, compute_limit, deployed_values
from .mapping import MappingReport, mapping_report
from .periphery import Periphery, get_periphery
from .program import ProgrammedModel, WeightSwap
from .spec import Measurement, ModelSpec
from .stats import Interval, metric_interval, paired_interval

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


@dataclass
class OverTimeResult:
    """A network's metric over time after programming: S strategies × R realisations × T times.

    Parameters
    ----------
    strategies
        The strategies' names.
    times_s
        The T times, seconds after programming.
    metrics
        (S, R, T) metric per strategy, realisation and time.
    digital
        The metric of the unprogrammed model.
    seed
        The run's seed.
    device, periphery
        JSON summaries of the device and periphery.
    mapping
        Which weights were analog and how they were tiled.
    state_bytes
        Device state of one realisation, bytes.
    wall_time_s
        Wall time of the run, s.
    strategy_dicts
        The strategies' JSON forms.
    layers
        Names of the analog weights.
    weight_errors
        (S, R, T, L) Σ(α·ŵ − w)² of each analog weight.
    weight_energy
        (L,) Σw² of each analog weight.
    clipping
        Per layer with an ADC: outputs digitised and clipped by the ADC range, over all strategies,
        realisations and times (empty without an ADC).
    """

    strategies: list[str]
    times_s: tuple[float, ...]
    metrics: torch.Tensor
    """(S, R, T) metric per strategy, realisation and time (float64)."""
    digital: float
    """The metric of the unprogrammed (digital, FP) model."""
    seed: int
    device: dict
    periphery: dict
    mapping: MappingReport
    state_bytes: int
    """Device state of one realisation (all analog weights), bytes."""
    wall_time_s: float
    strategy_dicts: list[dict]
    layers: list[str]
    """Names of the analog weights, in the order of `weight_errors`' last axis."""
    weight_errors: torch.Tensor
    """(S, R, T, L) Σ(α·ŵ − w)² of each analog weight (float64)."""
    weight_energy: torch.Tensor
    """(L,) Σw² of each analog weight: weight NMSE = error / energy."""
    clipping: list[LayerClipping] = field(default_factory=list)
    """Per layer with an ADC: how many outputs the ADC range clipped (all strategies, realisations, times)."""
    metric_name: str = "accuracy"
    higher_is_better: bool = True
    split: str = "test"
    """What was scored: `test` (the spec's evaluate) or `validate` (held-out data)."""
    calibrated_on: str | None = None
    """What the periphery's ranges came from: `calibrate`, `validate`, `test` (an older spec without
    either: the scored data itself), or None (ideal periphery, nothing calibrated)."""
    examples: torch.Tensor | None = None
    """(S, R, T, N) per-example values when the metric function returns them (float32), else None."""
    digital_examples: torch.Tensor | None = None
    """(N,) per-example values of the digital run, or None."""
    limit: dict | None = None
    """With the `limit` strategy: its cell, read-out scale and expected-error bound per time."""
    aggregate: Callable[[torch.Tensor], Any] | None = field(default=None, repr=False)
    """The spec's per-example aggregate (None: the mean), for the intervals."""

    def interval(self, strategy: int, time: int) -> Interval:
        """95 % interval of one strategy's metric at one time (nn/stats.py: over realisations, and
        over examples when the metric function returned per-example values)."""
        ex = None if self.examples is None else self.examples[strategy, :, time]
        return metric_interval(self.metrics[strategy, :, time], ex, self.aggregate)

    def paired(self, a: int, b: int, time: int) -> Interval:
        """95 % interval of the paired difference strategy a − strategy b at one time (common
        realisation seeds and examples)."""
        ea = eb = None
        if self.examples is not None:
            ea, eb = self.examples[a, :, time], self.examples[b, :, time]
        return paired_interval(self.metrics[a, :, time], self.metrics[b, :, time], ea, eb, self.aggregate)

    @property
    def interval_over(self) -> str:
        """What the intervals cover: `realisations` or `realisations and examples`."""
        return "realisations" if self.examples is None else "realisations and examples"

    def paired_rows(self) -> list[dict]:
        """Every pair of strategies at every time: difference, 95 % interval, verdict (better for the
        first named, worse, or unresolved), in the metric's direction."""
        rows = []
        for a in range(len(self.strategies)):
            for b in range(a + 1, len(self.strategies)):
                for k, t in enumerate(self.times_s):
                    iv = self.paired(a, b, k)
                    rows.append({"strategy": self.strategies[a], "versus": self.strategies[b], "time_s": t,
                                 "time": format_time(t), "diff": iv.mean, "ci_low": iv.low, "ci_high": iv.high,
                                 "verdict": iv.verdict(self.higher_is_better)})
        return rows

    @property
    def repeats(self) -> int:
        """Realisations R."""
        return self.metrics.shape[1]

    @property
    def weight_nmse(self) -> torch.Tensor:
        """(S, R, T) NMSE of all analog weights together, Σ(α·ŵ − w)² / Σw²."""
        return self.weight_errors.sum(-1) / self.weight_energy.sum()

    @property
    def layer_nmse(self) -> torch.Tensor:
        """(S, R, T, L) NMSE of each analog weight."""
        return self.weight_errors / self.weight_energy.clamp_min(torch.finfo(torch.float64).tiny)

    @property
    def mean(self) -> torch.Tensor:
        """(S, T) mean over realisations."""
        return self.metrics.mean(1)

    @property
    def std(self) -> torch.Tensor:
        """(S, T) sample std over realisations (0 for one realisation)."""
        return self.metrics.std(1) if self.repeats > 1 else torch.zeros_like(self.mean)

    def rows(self) -> list[dict]:
        """The tidy table: one row per (strategy, realisation, time)."""
        nmse = self.weight_nmse
        return [{"strategy": s, "realisation": r, "time_s": t, "time": format_time(t),
                 "metric": float(self.metrics[i, r, k]), "weight_nmse": float(nmse[i, r, k])}
                for i, s in enumerate(self.strategies) for r in range(self.repeats)
                for k, t in enumerate(self.times_s)]

    def summary(self) -> list[dict]:
        """Mean and std over realisations per (strategy, time), of the metric and the weight NMSE."""
        mean, std = self.mean, self.std
        nmse_mean, nmse_std = _mean_std(self.weight_nmse)
        rows = []
        for i, s in enumerate(self.strategies):
            for k, t in enumerate(self.times_s):
                iv = self.interval(i, k)
                rows.append({"strategy": s, "time_s": t, "time": format_time(t), "mean": float(mean[i, k]),
                             "std": float(std[i, k]), "ci_low": iv.low, "ci_high": iv.high,
                             "weight_nmse_mean": float(nmse_mean[i, k]), "weight_nmse_std": float(nmse_std[i, k]),
                             "n": self.repeats})
        return rows

    def layer_summary(self) -> list[dict]:
        """Weight NMSE per (strategy, time, analog weight): mean and std over realisations."""
        mean, std = _mean_std(self.layer_nmse)
        return [{"strategy": s, "time_s": t, "time": format_time(t), "layer": name,
                 "weight_nmse_mean": float(mean[i, k, j]), "weight_nmse_std": float(std[i, k, j])}
                for i, s in enumerate(self.strategies) for k, t in enumerate(self.times_s)
                for j, name in enumerate(self.layers)]

    def to_csv(self) -> str:
        """`rows()` as CSV text."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["strategy", "realisation", "time_s", "time", "metric",
                                                 "weight_nmse"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_dict(self) -> dict:
        """The JSON form (results.json): settings, the summaries and every row; NaN and inf as null."""
        def clean(x):  # JSON has no NaN/inf: a diverged metric becomes null
            return x if isinstance(x, float) and math.isfinite(x) else None if isinstance(x, float) else x
        return {"seed": self.seed, "times_s": list(self.times_s), "repeats": self.repeats,
                "metric_name": self.metric_name, "higher_is_better": self.higher_is_better, "split": self.split,
                "calibrated_on": self.calibrated_on, "interval_over": self.interval_over,
                "examples": None if self.examples is None else int(self.examples.shape[-1]),
                "digital_metric": clean(self.digital), "device": self.device, "periphery": self.periphery,
                "mapping": self.mapping.to_dict(), "device_state_bytes": self.state_bytes,
                "wall_time_s": self.wall_time_s, "strategies": self.strategy_dicts,
                "summary": [{k: clean(v) for k, v in row.items()} for row in self.summary()],
                "weight_nmse_per_layer": [{k: clean(v) for k, v in row.items()} for row in self.layer_summary()],
                "adc_clipping": [c.to_dict() for c in self.clipping],
                "paired": [{k: clean(v) for k, v in row.items()} for row in self.paired_rows()],
                "limit": self.limit,
                "rows": [{k: clean(v) for k, v in row.items()} for row in self.rows()]}

    def format(self) -> str:
        """The metric's mean and 95 % interval per strategy (rows) and time (columns), the paired
        verdicts against the first strategy, then the weight NMSE (mean ± std)."""
        head = f"{'strategy':<28}" + "".join(f"{format_time(t):>26}" for t in self.times_s)
        where = "held-out (validate) data" if self.split == "validate" else "test data"
        lines = [f"{self.metric_name} on {where} ({'higher' if self.higher_is_better else 'lower'} is better); "
                 f"digital {self.digital:.6g}; 95 % intervals over {self.interval_over}", head]
        for i, s in enumerate(self.strategies):
            cells = []
            for k in range(len(self.times_s)):
                iv = self.interval(i, k)
                cells.append(f"{iv.mean:>10.4g} [{iv.low:.4g}, {iv.high:.4g}]" if math.isfinite(iv.low)
                             else f"{iv.mean:>10.4g}")
            lines.append(f"{s:<28}" + "".join(f"{c:>26}" for c in cells))
        for i in range(1, len(self.strategies)):
            verdicts = [self.paired(i, 0, k) for k in range(len(self.times_s))]
            lines.append(f"{self.strategies[i]} vs {self.strategies[0]}: " + ", ".join(
                f"{format_time(t)} {iv.mean:+.4g} [{iv.low:+.4g}, {iv.high:+.4g}] {iv.verdict(self.higher_is_better)}"
                for t, iv in zip(self.times_s, verdicts)))
        lines.append("weight NMSE Σ(αŵ−w)²/Σw², all analog weights (mean ± std over realisations)")
        nmse_mean, nmse_std = _mean_std(self.weight_nmse)
        for i, s in enumerate(self.strategies):
            nmse_cells = "".join(f"{float(nmse_mean[i, k]):>16.4g} ±{float(nmse_std[i, k]):<7.2g}"
                                 for k in range(len(self.times_s)))
            lines.append(f"{s:<28}{nmse_cells}")
        if self.clipping:
            worst = max(self.clipping, key=lambda c: c.fraction)
            total = sum(c.clipped for c in self.clipping) / max(1, sum(c.outputs for c in self.clipping))
            lines.append(f"ADC clipping: {total:.3%} of all outputs; most in {worst.layer} ({worst.fraction:.3%})")
        return "\n".join(lines)


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sample std over axis 1 (realisations); std 0 for one realisation."""
    return x.mean(1), (x.std(1) if x.shape[1] > 1 else torch.zeros_like(x.mean(1)))


def _progress(progress, total: int):
    """A tqdm bar, a callback(done, total), or nothing."""
    if progress is True:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="realisations × times", unit="eval", leave=False)
        return bar.update, bar.close
    if callable(progress):
        done = [0]

        def step(n=1):
            done[0] += n
            progress(done[0], total)
        return step, lambda: None
    return (lambda n=1: None), (lambda: None)


def evaluate_over_time(model: nn.Module | ModelSpec | Mapping_[str, Any],
                       evaluate_fn: Callable[[nn.Module], Any] | None = None,
                       strategies: StrategySpec | Sequence[StrategySpec] | None = None,
                       device: DeviceModel | str = "pcm",
                       times_s: Sequence[float] = DEFAULT_TIMES_S, repeats: int = 25, seed: int = 0, *,
                       mapping: Mapping = Mapping(), periphery: Periphery | str = "ideal",
                       significance: Sequence[float] | str | None = None,
                       include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None,
                       compute: str | torch.device | None = None,
                       progress: bool | Callable[[int, int], None] = False,
                       times: Sequence[float] | None = None, split: str = "test",
                       limit: Limit | None = None) -> OverTimeResult:
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
        Strategies, baseline names or strategy files (`resolve_strategies`), and `limit`: the
        bound's mapping with the ideal read-out scale per time (nn/limit.py).
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
        True for a progress bar, a callback `progress(done, total)`, or False.
    times
        Old name of `times_s` (deprecated; give one of the two).
    split
        `test` (the spec's `evaluate`) or `validate` (held-out data, where choices are made).
    limit
        A limit already computed for these weights and times (else computed when `limit` is named).

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
    if not isinstance(repeats, int) or repeats < 1:
        raise WeightprogError(f"repeats: need an integer >= 1, got {repeats!r}")
    if times is not None:
        if times_s is not DEFAULT_TIMES_S:
            raise WeightprogError("times: give times_s only (times is its old name)")
        warnings.warn("evaluate_over_time: `times=` is now `times_s=` (seconds after programming)",
                      DeprecationWarning, stacklevel=2)
        times_s = times
    times_s = check_times(times_s)
    spec.function(split)  # an unknown split or a missing `validate` fails before any work
    dev = get_device(device)
    peri = get_periphery(periphery)
    listed = [strategies] if isinstance(strategies, (Strategy, str, Path)) else list(strategies)
    wants_limit = any(isinstance(x, str) and x == LIMIT for x in listed)
    chosen: list[Strategy | Limit] = list(resolve_strategies([x for x in listed if not (isinstance(x, str)
                                                               and x == LIMIT)], dev, significance)) \
        if len(listed) > int(wants_limit) else []
    if compute is not None:
        spec.model.to(compute)
    weights = find_analog_weights(spec.model, include, exclude)
    if wants_limit:
        if limit is None:
            cell = None if significance is None else \
                Cell.parse(significance) if isinstance(significance, str) else Cell(tuple(significance))
            limit = compute_limit(deployed_values(weights, mapping), dev, times_s,
                                  None if cell is None else cell.significance)
        chosen.insert([i for i, x in enumerate(listed) if isinstance(x, str) and x == LIMIT][0], limit)
    names = [c.name for c in chosen]
    report = mapping_report(spec.model, weights, mapping)
    gen_device = weights[0].param.device
    metrics = torch.empty(len(chosen), repeats, len(times_s), dtype=torch.float64)
    weight_errors = torch.empty(len(chosen), repeats, len(times_s), len(weights), dtype=torch.float64)
    weight_energy = torch.tensor([float(w.matrix().double().square().sum()) for w in weights],
                                 dtype=torch.float64)
    examples: torch.Tensor | None = None
    step, close = _progress(progress, metrics.numel())
    state_bytes = 0
    clipping = Clipping()
    swap = WeightSwap(weights)
    try:
        digital, ranges, calibrated_on = _digital(spec, split, weights, peri, mapping)
        for i, strategy in enumerate(chosen):
            for r in range(repeats):
                gen = torch.Generator(device=gen_device).manual_seed(realisation_seed(seed, r))
                programmed = None if isinstance(strategy, Limit) else ProgrammedModel(weights, strategy, dev,
                                                                                       mapping, gen)
                with attached(weights, peri, ranges, gen, clipping):
                    for k, t in enumerate(times_s):
                        gain = 1.0
                        if isinstance(strategy, Limit):  # each time its own mapping, programmed afresh
                            at = strategy.for_time(t)
                            programmed, gain = ProgrammedModel(weights, at.strategy, dev, strategy.mapping(mapping),
                                                               gen), at.scale
                        assert programmed is not None
                        state_bytes = programmed.state_bytes
                        with programmed.applied(t, swap, gen, gain) as errors:
                            weight_errors[i, r, k] = errors
                            got = spec.measure(split, f"{names[i]}, t={t:g} s")
                        metrics[i, r, k] = got.value
                        if got.examples is not None:
                            if examples is None:
                                examples = torch.full(metrics.shape + got.examples.shape, math.nan,
                                                      dtype=torch.float32)
                            examples[i, r, k] = got.examples
                        step(1)
                del programmed
    finally:
        swap.restore()
        close()
    dicts = [c.to_dict() for c in chosen]
    return OverTimeResult(names, times_s, metrics, digital.value, seed, dev.describe(),
                          peri.to_dict(), report, state_bytes, time.perf_counter() - start,
                          dicts, [w.name for w in weights], weight_errors,
                          weight_energy, clipping.layers(weights), spec.metric_name, spec.higher_is_better,
                          split, calibrated_on, examples, digital.examples,
                          limit.to_dict() if limit is not None and wants_limit else None, spec.aggregate)


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
             mapping: Mapping) -> tuple[Measurement, Ranges | None, str | None]:
    """The digital metric on `split`, and the periphery's ranges with the data they came from (one
    run serves both when the older form calibrates on the evaluated data itself)."""
    if peri.is_ideal:
        return spec.measure(split, "digital run", finite=True), None, None
    run, source = spec.calibration_run()
    same = spec.function(split) is getattr(spec, source)
    value, ranges = calibrate(weights, peri, run, tile_cols=mapping.tile_cols, tile_rows=mapping.tile_rows)
    digital = spec.reduce(value, "digital run", finite=True) if same else \
        spec.measure(split, "digital run", finite=True)
    return digital, ranges, "test" if source == "evaluate" else source
