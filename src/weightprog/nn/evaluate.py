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
from dataclasses import dataclass, field, replace
from pathlib import Path

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
from .calibration import Clipping, LayerClipping, calibrate
from .discover import find_analog_weights
from .mapping import MappingReport, mapping_report
from .periphery import Periphery, get_periphery
from .program import ProgrammedModel, WeightSwap

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
        return [{"strategy": s, "time_s": t, "time": format_time(t), "mean": float(mean[i, k]),
                 "std": float(std[i, k]), "weight_nmse_mean": float(nmse_mean[i, k]),
                 "weight_nmse_std": float(nmse_std[i, k]), "n": self.repeats}
                for i, s in enumerate(self.strategies) for k, t in enumerate(self.times_s)]

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
                "digital_metric": clean(self.digital), "device": self.device, "periphery": self.periphery,
                "mapping": self.mapping.to_dict(), "device_state_bytes": self.state_bytes,
                "wall_time_s": self.wall_time_s, "strategies": self.strategy_dicts,
                "summary": [{k: clean(v) for k, v in row.items()} for row in self.summary()],
                "weight_nmse_per_layer": [{k: clean(v) for k, v in row.items()} for row in self.layer_summary()],
                "adc_clipping": [c.to_dict() for c in self.clipping],
                "rows": [{k: clean(v) for k, v in row.items()} for row in self.rows()]}

    def format(self) -> str:
        """Mean ± std per strategy (rows) and time (columns): the metric, then the weight NMSE."""
        head = f"{'strategy':<28}" + "".join(f"{format_time(t):>18}" for t in self.times_s)
        lines = [f"digital metric {self.digital:.6g}", head]
        nmse_mean, nmse_std = _mean_std(self.weight_nmse)
        for title, mean, std in (("", self.mean, self.std),
                                 ("weight NMSE Σ(αŵ−w)²/Σw², all analog weights", nmse_mean, nmse_std)):
            if title:
                lines.append(title)
            for i, s in enumerate(self.strategies):
                cells = "".join(f"{float(mean[i, k]):>10.4g} ±{float(std[i, k]):<7.2g}"
                                for k in range(len(self.times_s)))
                lines.append(f"{s:<28}{cells}")
        if self.clipping:
            worst = max(self.clipping, key=lambda c: c.fraction)
            total = sum(c.clipped for c in self.clipping) / max(1, sum(c.outputs for c in self.clipping))
            lines.append(f"ADC clipping: {total:.3%} of all outputs; most in {worst.layer} ({worst.fraction:.3%})")
        return "\n".join(lines)


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sample std over axis 1 (realisations); std 0 for one realisation."""
    return x.mean(1), (x.std(1) if x.shape[1] > 1 else torch.zeros_like(x.mean(1)))


def _metric(value, where: str, finite: bool = False) -> float:
    """The number evaluate_fn returned: NaN is never a metric (a broken evaluation, not a result),
    and the digital run must be finite (programmed runs may overflow to inf, e.g. a perplexity)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise WeightprogError(f"evaluate_fn: must return a number, got {type(value).__name__} ({where})") from None
    if math.isnan(value) or (finite and math.isinf(value)):
        raise WeightprogError(f"evaluate_fn: returned {value} ({where}); it must return a finite number")
    return value


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


def evaluate_over_time(model: nn.Module, evaluate_fn: Callable[[nn.Module], float],
                       strategies: StrategySpec | Sequence[StrategySpec], device: DeviceModel | str = "pcm",
                       times_s: Sequence[float] = DEFAULT_TIMES_S, repeats: int = 25, seed: int = 0, *,
                       mapping: Mapping = Mapping(), periphery: Periphery | str = "ideal",
                       significance: Sequence[float] | str | None = None,
                       include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None,
                       compute: str | torch.device | None = None,
                       progress: bool | Callable[[int, int], None] = False,
                       times: Sequence[float] | None = None) -> OverTimeResult:
    """Metric of `model` over time after programming its analog weights.

    `evaluate_fn(model) -> float` runs the user's evaluation (its inputs must be on the model's
    compute device). The model is first evaluated digitally (that run also calibrates a
    non-ideal periphery); every realisation then programs all analog weights once and the model
    is evaluated at each time with the read weights swapped in place. The original weights are
    restored on return, also after an error.

    Parameters
    ----------
    model
        The torch model; its analog weights are found by `find_analog_weights`.
    evaluate_fn
        `evaluate_fn(model) -> float`: the metric of the model as it is (NaN is refused).
    strategies
        Strategies, baseline names or strategy files (`resolve_strategies`).
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
        Significance factors of the baselines named in `strategies`.
    include, exclude
        Globs selecting the analog weights.
    compute
        Moves the model first (`cpu`, `cuda`), or None to leave it where it is.
    progress
        True for a progress bar, a callback `progress(done, total)`, or False.
    times
        Old name of `times_s` (deprecated; give one of the two).

    Returns
    -------
    OverTimeResult

    Raises
    ------
    WeightprogError
        Bad repeats, times, strategies, device, periphery or patterns, or an `evaluate_fn` that
        returns NaN or a non-number.
    """
    start = time.perf_counter()
    if not isinstance(repeats, int) or repeats < 1:
        raise WeightprogError(f"repeats: need an integer >= 1, got {repeats!r}")
    if times is not None:
        if times_s is not DEFAULT_TIMES_S:
            raise WeightprogError("times: give times_s only (times is its old name)")
        warnings.warn("evaluate_over_time: `times=` is now `times_s=` (seconds after programming)",
                      DeprecationWarning, stacklevel=2)
        times_s = times
    times_s = check_times(times_s)
    dev = get_device(device)
    peri = get_periphery(periphery)
    chosen = resolve_strategies(strategies, dev, significance)
    if compute is not None:
        model.to(compute)
    weights = find_analog_weights(model, include, exclude)
    report = mapping_report(model, weights, mapping)
    gen_device = weights[0].param.device
    metrics = torch.empty(len(chosen), repeats, len(times_s), dtype=torch.float64)
    weight_errors = torch.empty(len(chosen), repeats, len(times_s), len(weights), dtype=torch.float64)
    weight_energy = torch.tensor([float(w.matrix().double().square().sum()) for w in weights],
                                 dtype=torch.float64)
    step, close = _progress(progress, metrics.numel())
    state_bytes = 0
    clipping = Clipping()
    swap = WeightSwap(weights)
    try:
        if peri.is_ideal:
            digital, ranges = _metric(evaluate_fn(model), "digital run", finite=True), None
        else:
            digital, ranges = calibrate(weights, peri, lambda: _metric(evaluate_fn(model), "digital run", finite=True),
                                        tile_cols=mapping.tile_cols, tile_rows=mapping.tile_rows)
            digital = _metric(digital, "digital run")
        for i, strategy in enumerate(chosen):
            for r in range(repeats):
                gen = torch.Generator(device=gen_device).manual_seed(realisation_seed(seed, r))
                programmed = ProgrammedModel(weights, strategy, dev, mapping, gen)
                state_bytes = programmed.state_bytes
                with attached(weights, peri, ranges, gen, clipping):
                    for k, t in enumerate(times_s):
                        with programmed.applied(t, swap, gen) as errors:
                            weight_errors[i, r, k] = errors
                            metrics[i, r, k] = _metric(evaluate_fn(model), f"{strategy.name}, t={t:g} s")
                        step(1)
                del programmed
    finally:
        swap.restore()
        close()
    return OverTimeResult([s.name for s in chosen], times_s, metrics, digital, seed, dev.describe(),
                          peri.to_dict(), report, state_bytes, time.perf_counter() - start,
                          [s.to_dict() for s in chosen], [w.name for w in weights], weight_errors,
                          weight_energy, clipping.layers(weights))
