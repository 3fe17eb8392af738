"""Checking what the flip search found (flipsearch.py) by Monte Carlo, and the whole run
(`run_flip_search` → `FlipSearchResult`).

Each candidate and the base are optimised with the same settings, sample and seed (`optimize`), and
their re-scores are compared pairwise: both re-scores draw the same weight samples and the same
standard normals (same seed, same sample size; a scaled device only multiplies the curves the normals
are scaled by), so the relative change and its standard error come from the per-column differences
(`paired_change`), not from two independent scores. A change is better or worse beyond 2 paired
standard errors (`advise.verdict`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .advise import verdict
from .choices import NAIVE
from .devices import DeviceModel, get_device
from .flipsearch import DIRECTIONS, FLIP, DirectionSearch, Expected, ExpectedScorer, SearchPlan, Trial, search_direction
from .progress import Event, ProgressCallback
from .sample import WeightSample
from .search.run import OptimizeResult, OptimizeSettings, optimize
from .strategy import Strategy

Z = 2.0
"""Paired standard errors a change must exceed to count."""
NAMES = {direction: name for name, direction in DIRECTIONS.items()}
"""Each direction's command-line name (`flip`, `reverse`), for its files."""


@dataclass(frozen=True)
class PairedChange:
    """Relative change X/base − 1 of a re-scored TNMSE, with its paired standard error."""

    change: float
    stderr: float


def paired_change(x: torch.Tensor, base: torch.Tensor) -> PairedChange:
    """From per-column TNMSE (C,) of X and the base on the same columns and draws: r = mean x / mean
    base, and the delta-method standard error sd(x − r·base) / (√C · mean base)."""
    if x.shape != base.shape or x.numel() < 2:
        raise ValueError(f"paired_change: two equal column sets of ≥ 2, got {tuple(x.shape)} and {tuple(base.shape)}")
    x, base = x.double(), base.double()
    ratio = float(x.mean() / base.mean())
    se = float((x - ratio * base).std() / (math.sqrt(x.numel()) * base.mean()))
    return PairedChange(ratio - 1.0, se)


def columns(result: OptimizeResult) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column TNMSE (C,) of the naive and the optimised strategy in `optimize`'s re-score."""
    final = result.final
    naive = final.names.index(result.hand_crafted[(NAIVE, 1.0)].names[0])
    per_column = final.per_column.mean(1)  # (B, C): the time average per column
    return per_column[naive], per_column[0]


@dataclass(frozen=True)
class Check:
    """A candidate against the base, re-optimised and re-scored on the same draws."""

    device: str
    trial: Trial
    """What the search expected of it."""
    naive: PairedChange
    optimised: PairedChange
    naive_tnmse: float
    optimised_tnmse: float

    @property
    def verdict(self) -> str:
        return verdict(self.naive.change, self.naive.stderr, self.optimised.change, self.optimised.stderr, Z)


def check(base: OptimizeResult, other: OptimizeResult, trial: Trial) -> Check:
    """`other` (a scaled device's optimisation) against `base` on their shared re-score draws."""
    if base.final.per_column.shape[1:] != other.final.per_column.shape[1:] or base.settings != other.settings:
        raise ValueError("check: the two optimisations must share settings (re-score draws)")
    (bn, bo), (xn, xo) = columns(base), columns(other)
    return Check(other.device.name, trial, paired_change(xn, bn), paired_change(xo, bo),
                 float(xn.mean()), float(xo.mean()))


@dataclass(frozen=True)
class FlipSearchResult:
    """The searches (one per direction), the base's expected and re-scored TNMSE, the checks."""

    base: str
    plan: SearchPlan
    base_expected: Expected
    searches: tuple[DirectionSearch, ...]
    base_naive: float
    base_optimised: float
    """The base's re-scored TNMSE (naive, optimised)."""
    checks: tuple[Check, ...]
    """The best candidate of each direction, in the order of `searches`."""
    settings: OptimizeSettings
    wall_time_s: float
    strategies: dict[str, Strategy] = field(default_factory=dict)
    """The optimised strategy of the base (`base`) and of each direction's best candidate (`flip`,
    `reverse`), for programming a network with them (`weightprog evaluate --strategy FILE`)."""

    def flips(self) -> tuple[Check, ...]:
        """The checks whose verdict is their search's direction."""
        return tuple(c for s, c in zip(self.searches, self.checks) if c.verdict == s.direction)

    def sentence(self) -> str:
        lo, hi = self.plan.bounds
        n = sum(len(s.trials) for s in self.searches)
        region = (f"{n} scaled {self.base} devices (every factor {lo:g}…{hi:g}, log-uniform; "
                  f"expected-error model)")
        found = self.flips()
        if found:
            c = found[0]
            return (f"Searched {region}: {c.device} flips against {self.base} ({c.verdict}): naive "
                    f"{c.naive.change:+.2%} ± {c.naive.stderr:.2%}, optimised {c.optimised.change:+.2%} ± "
                    f"{c.optimised.stderr:.2%} (paired re-scores on the same draws; beyond {Z:g} s.e.).")
        closest = max(self.checks, key=lambda c: c.trial.margin)
        return (f"Searched {region}: no flip beyond {Z:g} paired standard errors. Closest: {closest.device} "
                f"(expected margin {closest.trial.margin:+.2%}; re-scored naive {closest.naive.change:+.2%} ± "
                f"{closest.naive.stderr:.2%}, optimised {closest.optimised.change:+.2%} ± "
                f"{closest.optimised.stderr:.2%}: {closest.verdict}).")


def run_flip_search(sample: WeightSample, values: torch.Tensor, base: DeviceModel | str,
                    settings: OptimizeSettings = OptimizeSettings(), plan: SearchPlan = SearchPlan(),
                    directions: tuple[str, ...] = (FLIP,), out: str | Path | None = None,
                    progress: ProgressCallback | None = None) -> FlipSearchResult:
    """Search the five property factors of `base` for a flip in each direction (`flipsearch`), then
    optimise the base and each direction's best candidate with `settings` and compare them on the
    same re-score draws. With `out`, each search keeps a checkpoint there (a rerun resumes it).
    `progress` receives `flipsearch` events (each DE generation; `path`: the direction) and
    `advise` events as each optimisation starts."""
    start = time.perf_counter()
    dev = get_device(base)
    for d in directions:
        if d not in DIRECTIONS.values():
            raise ValueError(f"run_flip_search: unknown direction {d!r}")
    scorer = ExpectedScorer(values, dev, settings.times_s, compensation=settings.compensation,
                            pairs=settings.pairs, f_max=settings.f_max)
    base_expected = scorer((1.0,) * 5)
    searches = []
    for d in directions:
        name = NAMES[d]
        ckpt = Path(out) / f"flipsearch_{name}.checkpoint.json" if out is not None else None
        searches.append(search_direction(scorer, base_expected, d, plan, ckpt, progress))
    total = 1 + len(searches)
    if progress is not None:
        progress(Event("advise", (dev.name,), 0, total))
    base_result = optimize(sample, values, dev, settings)
    checks, strategies = [], {"base": base_result.strategy}
    for i, s in enumerate(searches, start=1):
        candidate = scorer.device(s.best.factors)
        if progress is not None:
            progress(Event("advise", (candidate.name,), i, total))
        result = optimize(sample, values, candidate, settings)
        checks.append(check(base_result, result, s.best))
        strategies[NAMES[s.direction]] = result.strategy
    bn, bo = columns(base_result)
    return FlipSearchResult(dev.name, plan, base_expected, tuple(searches), float(bn.mean()), float(bo.mean()),
                            tuple(checks), settings, time.perf_counter() - start, strategies)
