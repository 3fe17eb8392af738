"""Which device improvement pays once the weights are programmed optimally (the paper's Fig. 5
lesson, asked per property).

For a device and a weight distribution, each property of the device model (programming noise,
drift mean, drift spread, read noise, dynamic range; for a tabulated device each curve as a whole)
is improved by a relative step (default 10 %) with `ScaledDevice`, the strategy is *re-optimised*
for the improved device, and the change of the optimised TNMSE is set beside the change under the
naive strategy (lsp-first at F = 1) and the best hand-crafted one. The elasticity
d log TNMSE / d log property comes from the same finite step. Every score is a re-score on fresh
draws; all devices share the search sample and seeds, so the differences are not sampling noise
of separate runs (common random numbers).

`flip_map` asks the ranking question on a grid: for a base device and two properties, which scaled
devices the naive comparison calls better than the base while the optimised comparison calls them
worse (and the reverse). It runs as a sweep of optimize jobs (resumable, local or Ray).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .choices import PROPERTIES
from .devices import DeviceModel, ScaledDevice, Scales, get_device
from .errors import WeightprogError
from .progress import Event, ProgressCallback
from .sample import WeightSample
from .scores import Score, Scoreboard
from .search.run import OptimizeResult, OptimizeSettings, optimize
from .settings import IMPROVEMENT

LABELS = {"programming": "programming noise σ_p", "drift_mean": "drift mean μ_ν",
          "drift_std": "drift spread σ_ν", "read": "read noise Q", "g_max": "dynamic range g_max"}


def improved_factor(prop: str, improvement: float) -> float:
    """The scale that improves `prop` by the relative step: ×(1 − s) for noise, ×(1 + s) for range."""
    if prop not in PROPERTIES:
        raise WeightprogError(f"property: use one of {', '.join(PROPERTIES)}, got {prop!r}")
    return 1.0 + improvement if prop == "g_max" else 1.0 - improvement


@dataclass(frozen=True)
class DeviceScores:
    """Re-scored TNMSE of one device under the three programming choices."""

    device: str
    naive: Score
    """lsp-first at F = 1 (the paper's naive mapping)."""
    hand_crafted: Score
    """The best hand-crafted strategy (any baseline, any F searched)."""
    hand_crafted_name: str
    optimised: Score
    cell: tuple[float, ...]
    bound: float | None = None
    """The expected-error bound (free scale per time), lowest over the F searched; None when the
    optimisation ran without bounds (`OptimizeSettings(bound=False)`)."""

    @classmethod
    def of(cls, result: OptimizeResult) -> DeviceScores:
        """Scores of a finished optimisation, with the bound it computed."""
        s = result.scores
        best = s.best_hand_crafted
        cell = tuple(result.strategy.significance[0].tolist())
        limit = result.lowest_bound.bound if result.lowest_bound is not None else None
        return cls(result.device.name, s.naive.score, best.score, best.label, s.optimised, cell, limit)


CHOICES = ("naive", "hand_crafted", "optimised")
"""The programming choices every effect is reported for (and `bound` where it was computed)."""


@dataclass(frozen=True)
class PropertyEffect:
    """One property improved by `factor` (its scale), with the improved device's scores."""

    prop: str
    factor: float
    scores: DeviceScores
    base: DeviceScores

    def _means(self, choice: str) -> tuple[float, float]:
        if choice == "bound":
            if self.scores.bound is None or self.base.bound is None:
                raise ValueError("bound: this optimisation ran without bounds")
            return self.scores.bound, self.base.bound
        return getattr(self.scores, choice).mean, getattr(self.base, choice).mean

    def change(self, choice: str) -> float:
        """Relative change of the TNMSE (negative: the improvement pays)."""
        new, old = self._means(choice)
        return new / old - 1.0

    def change_stderr(self, choice: str) -> float:
        """Standard error of `change` (`Score.relative_to`: an upper bound)."""
        return getattr(self.scores, choice).relative_to(getattr(self.base, choice))[1]

    def elasticity(self, choice: str) -> float:
        """d log TNMSE / d log property, from the finite step."""
        new, old = self._means(choice)
        return math.log(new / old) / math.log(self.factor)

    def choices(self) -> tuple[str, ...]:
        return CHOICES + (("bound",) if self.scores.bound is not None and self.base.bound is not None else ())


@dataclass
class Advice:
    device: str
    improvement: float
    base: DeviceScores
    effects: list[PropertyEffect]
    """Sorted by payoff: the largest drop of the optimised TNMSE first."""
    times_s: tuple[float, ...]
    settings: OptimizeSettings
    wall_time_s: float

    def words(self) -> list[str]:
        """What the table means, one sentence per property (halving extrapolated by elasticity)."""
        out = []
        for e in self.effects:
            step = "doubling" if e.prop == "g_max" else "halving"
            half = 2.0 if e.prop == "g_max" else 0.5
            opt, naive = (half ** e.elasticity(c) - 1.0 for c in ("optimised", "naive"))
            limit = f", bound {half ** e.elasticity('bound') - 1.0:+.1%}" if "bound" in e.choices() else ""
            out.append(f"{step} {LABELS[e.prop]} changes the optimised TNMSE by {opt:+.1%} "
                       f"(naive: {naive:+.1%}{limit}; extrapolated from the measured step {e.factor:g}×: "
                       f"optimised {e.change('optimised'):+.2%}, naive {e.change('naive'):+.2%})")
        return out

    def table(self) -> str:
        with_bound = self.base.bound is not None
        head = (f"{'property':<24}{'factor':>7}{'Δ optimised':>13}{'Δ naive':>10}{'Δ hand-crafted':>16}"
                + (f"{'Δ bound':>10}" if with_bound else "") + f"{'elasticity opt':>16}{'elasticity naive':>18}")
        lines = [f"device {self.device}: naive {self.base.naive.mean:.4e}, best hand-crafted "
                 f"{self.base.hand_crafted.mean:.4e} ({self.base.hand_crafted_name}), optimised "
                 f"{self.base.optimised.mean:.4e} (cell {','.join(f'{f:g}' for f in self.base.cell)})"
                 + (f", bound {self.base.bound:.4e}" if with_bound else ""), head]
        for e in self.effects:
            bound = f"{e.change('bound'):>10.2%}" if with_bound else ""
            lines.append(f"{LABELS[e.prop]:<24}{e.factor:>7.3g}{e.change('optimised'):>13.2%}"
                         f"{e.change('naive'):>10.2%}{e.change('hand_crafted'):>16.2%}{bound}"
                         f"{e.elasticity('optimised'):>16.3f}{e.elasticity('naive'):>18.3f}")
        return "\n".join(lines)


def advise(sample: WeightSample, values: torch.Tensor, device: DeviceModel | str = "pcm",
           settings: OptimizeSettings = OptimizeSettings(), improvement: float = IMPROVEMENT,
           properties: Sequence[str] = PROPERTIES,
           progress: ProgressCallback | None = None) -> Advice:
    """Re-optimise the device with each property improved by `improvement` (relative); the bound
    of each variant comes with its optimisation (unless `settings.bound` is off). `progress`
    receives an `advise` event (`Event`) as each optimisation starts: the device variant's name,
    the optimisations done before it, and how many there are."""
    if not (isinstance(improvement, (int, float)) and 0 < improvement < 1):
        raise WeightprogError(f"improvement: a relative step in (0, 1), got {improvement!r}")
    start = time.perf_counter()
    base_device = get_device(device)
    props = list(dict.fromkeys(properties))
    for p in props:
        improved_factor(p, improvement)  # validates the name before any work
    total = len(props) + 1
    if progress is not None:
        progress(Event("advise", (base_device.name,), 0, total))
    base = DeviceScores.of(optimize(sample, values, base_device, settings))
    effects = []
    for i, p in enumerate(props, start=1):
        factor = improved_factor(p, improvement)
        scaled = ScaledDevice(base_device, Scales(**{p: factor}))
        if progress is not None:
            progress(Event("advise", (scaled.name,), i, total))
        result = optimize(sample, values, scaled, settings)
        effects.append(PropertyEffect(p, factor, DeviceScores.of(result), base))
    effects.sort(key=lambda e: e.change("optimised"))
    return Advice(base_device.name, float(improvement), base, effects, tuple(settings.times_s), settings,
                  time.perf_counter() - start)


# --- where rankings flip ---------------------------------------------------------------------------

VERDICTS = ("both better", "both worse", "naive better, optimised worse", "naive worse, optimised better",
            "within error")


@dataclass(frozen=True)
class FlipPoint:
    """A scaled device against the base: relative TNMSE changes and their standard errors."""

    x: float
    y: float
    device: str
    naive_change: float
    naive_stderr: float
    optimised_change: float
    optimised_stderr: float

    def verdict(self, z: float = 2.0) -> str:
        """Better/worse only beyond z standard errors of the change, else 'within error'."""
        return verdict(self.naive_change, self.naive_stderr, self.optimised_change, self.optimised_stderr, z)


def verdict(naive_change: float, naive_stderr: float, optimised_change: float, optimised_stderr: float,
            z: float = 2.0) -> str:
    """One of `VERDICTS` for relative TNMSE changes (negative: better) and their standard errors:
    better/worse only beyond z standard errors, else 'within error'."""
    def sign(change, se):
        return 0 if abs(change) <= z * se else (1 if change < 0 else -1)
    naive, opt = sign(naive_change, naive_stderr), sign(optimised_change, optimised_stderr)
    if naive == 0 or opt == 0:
        return "within error"
    if naive == opt:
        return "both better" if naive > 0 else "both worse"
    return "naive better, optimised worse" if naive > 0 else "naive worse, optimised better"


@dataclass
class FlipMap:
    base: str
    x_prop: str
    y_prop: str
    x_factors: tuple[float, ...]
    y_factors: tuple[float, ...]
    points: list[FlipPoint]
    """Row-major: y outer, x inner."""

    def counts(self) -> dict[str, int]:
        return {v: sum(p.verdict() == v for p in self.points) for v in VERDICTS}

    def sentence(self) -> str:
        c = self.counts()
        flips = c["naive better, optimised worse"]
        reverse = c["naive worse, optimised better"]
        grid = f"{len(self.x_factors)}×{len(self.y_factors)} grid of {LABELS[self.x_prop]} × {LABELS[self.y_prop]}"
        if flips == 0 and reverse == 0:
            return (f"No ranking flip on the {grid} around {self.base}: wherever both comparisons are beyond "
                    f"2 standard errors they agree ({c['both better']} better, {c['both worse']} worse, "
                    f"{c['within error']} within error).")
        return (f"On the {grid} around {self.base}: {flips} scaled device(s) look better than {self.base} under "
                f"naive programming but are worse once both are programmed optimally (the paper's Fig. 5 "
                f"situation), {reverse} the reverse; {c['both better']} better and {c['both worse']} worse "
                f"either way, {c['within error']} within error.")


def scaled_name(base: str, x_prop: str, x: float, y_prop: str, y: float) -> str:
    return f"{base}:{x_prop}={x:g},{y_prop}={y:g}"


def flip_sweep(base: str, x_prop: str, x_factors: Sequence[float], y_prop: str, y_factors: Sequence[float],
               *, weights: str = "distribution:default", pairs: int = 2, f_max: int = 5,
               times: str | None = None, seed: int = 0, settings: dict | None = None) -> dict:
    """The sweep file (as a mapping) of a flip map: one optimize job per scaled device and the base,
    all on the same weights and seed (common random numbers)."""
    for prop in (x_prop, y_prop):
        improved_factor(prop, 0.1)  # validates the name
    if x_prop == y_prop:
        raise WeightprogError(f"flip map: the two properties must differ, got {x_prop} twice")
    devices = [base] + [scaled_name(base, x_prop, x, y_prop, y) for y in y_factors for x in x_factors]
    spec = {"name": f"flipmap {base} {x_prop}×{y_prop}", "kind": "optimize", "devices": list(dict.fromkeys(devices)),
            "cells": [{"pairs": pairs, "f_max": f_max}], "weights": [weights], "seeds": [seed],
            "settings": dict(settings or {})}
    if times:
        spec["times"] = [times]
    return spec


def flip_map_from_records(base: str, x_prop: str, x_factors: Sequence[float], y_prop: str,
                          y_factors: Sequence[float], boards: dict[str, Scoreboard]) -> FlipMap:
    """`boards[device]` is each job's re-scored TNMSE (naive = lsp-first F=1, optimised)."""
    def change(device: str, which: str) -> tuple[float, float]:
        def score(d: str) -> Score:
            return boards[d].naive.score if which == "naive" else boards[d].optimised
        return score(device).relative_to(score(base))

    points = []
    for y in y_factors:
        for x in x_factors:
            name = scaled_name(base, x_prop, x, y_prop, y)
            if name not in boards:
                raise WeightprogError(f"flip map: no finished result for {name}")
            n, n_se = change(name, "naive")
            o, o_se = change(name, "optimised")
            points.append(FlipPoint(float(x), float(y), name, n, n_se, o, o_se))
    return FlipMap(base, x_prop, y_prop, tuple(map(float, x_factors)), tuple(map(float, y_factors)), points)


def parse_axis(text: str, where: str) -> tuple[str, tuple[float, ...]]:
    """`PROP=LO:HI:N` (N factors spaced evenly in log between LO and HI) or `PROP=a,b,c`."""
    prop, sep, spec = text.partition("=")
    prop = prop.strip()
    if not sep or prop not in PROPERTIES:
        raise WeightprogError(f"{where}: use PROPERTY=LO:HI:N or PROPERTY=a,b,c with PROPERTY one of "
                              f"{', '.join(PROPERTIES)}, got {text!r}")
    try:
        if ":" in spec:
            lo_text, hi_text, n_text = spec.split(":")
            lo, hi, n = float(lo_text), float(hi_text), int(n_text)
            if not (0 < lo < hi and n >= 2):
                raise ValueError
            factors = tuple(float(f"{lo * (hi / lo) ** (k / (n - 1)):.4g}") for k in range(n))
        else:
            factors = tuple(float(x) for x in spec.split(","))
    except ValueError:
        raise WeightprogError(f"{where}: {spec!r} is not LO:HI:N (0 < LO < HI, N ≥ 2) nor a list of "
                              f"factors") from None
    if any(not (math.isfinite(f) and f > 0) for f in factors) or len(set(factors)) != len(factors):
        raise WeightprogError(f"{where}: factors must be distinct and > 0, got {list(factors)}")
    return prop, factors


def run_flip_map(base: str, x: tuple[str, Sequence[float]], y: tuple[str, Sequence[float]], out,
                 *, workers: int = 1, ray: str | None = None, progress: ProgressCallback | None = None,
                 **sweep_args) -> FlipMap:
    """Run (or resume) the flip map's sweep in `out` and assemble the map from its records;
    `progress` receives the sweep's `sweep` events (`run_sweep`). The command writes the map's
    files (`records.advice.write_flip_map_run`)."""
    from .records.sweep import SweepJobRecord
    from .sweep import parse_sweep, read_record, run_sweep

    get_device(base)  # a bad base fails before any work
    spec = flip_sweep(base, x[0], x[1], y[0], y[1], **sweep_args)
    sweep = parse_sweep(spec, f"flip map of {base}")
    result = run_sweep(sweep, out, workers=workers, ray=ray, progress=progress, summary=False)
    if result.failed:
        first = next(iter(result.failed.items()))
        raise WeightprogError(f"flip map: {len(result.failed)} job(s) failed, e.g. {first[0]}: {first[1]}; "
                              f"rerun to retry them")
    boards = {}
    for job in sweep.jobs:
        raw = read_record(out, job.id)
        optimized = SweepJobRecord.from_json(raw).optimize if raw is not None else None
        if optimized is None:  # run_sweep reported no failure: every job has its optimize record
            raise WeightprogError(f"flip map: no record of job {job.id} in {out}")
        boards[job.params["device"]] = optimized.tnmse
    return flip_map_from_records(base, x[0], x[1], y[0], y[1], boards)
