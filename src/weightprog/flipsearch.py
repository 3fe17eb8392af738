"""Searching the property scalings of a device for a ranking flip (the paper's Fig. 5): a scaled
variant X of a base device that naive programming (lsp-first F=1) calls better than the base while
optimal programming calls it worse (`FLIP`), or the reverse (`REVERSE`).

All five property factors (`Scales`: programming, drift_mean, drift_std, read, g_max) are searched
together by differential evolution over their logarithms within `bounds`. Every candidate is scored
with the expected-error model (no sampling noise): naive in closed form, optimised as the lowest
pointwise optimum under the deployed drift compensation over F (the pointwise method of
`optimize`, which it picks on every built-in device), F climbed from the base's best F. The DE
maximises the flip margin: the smaller of the two relative changes in the flip's direction, so a
positive margin is a flip of at least that size either way. `flipcheck.py` re-scores the best
candidates by Monte Carlo.

The search keeps a checkpoint after each generation: an interrupted run resumes there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .baselines import baseline
from .cell import Cell
from .choices import NAIVE
from .devices import DeviceModel, ScaledDevice, Scales
from .errors import WeightprogError
from .expected import ExpectedTNMSE, Pointwise
from .fileio import atomic_write_json
from .progress import Event, ProgressCallback
from .records.jsonfile import read_json
from .search.de import Generations
from .search.lhs import latin_hypercube

FLIP = "naive better, optimised worse"
REVERSE = "naive worse, optimised better"
DIRECTIONS = {"flip": FLIP, "reverse": REVERSE}
"""The command line's names of the two directions (verdicts of `advise.verdict`)."""
FACTORS = tuple(f.name for f in fields(Scales))
"""The searched factors, in `Scales` order."""
BOUNDS = (0.25, 4.0)
"""Default range of every factor (log-uniform)."""
POINTWISE_BINS = 24
"""Quantile bins of the pointwise optimum during the search (48 in `optimize`; 24 changes it by
< 0.05 % on pcm and takes 30 % less time)."""


@dataclass(frozen=True)
class Expected:
    """Expected TNMSE of one device: naive and optimised, and the F of the optimised cell."""

    naive: float
    optimised: float
    f: int


class ExpectedScorer:
    """Expected naive and optimised TNMSE of scaled variants of `base` for a weight density."""

    def __init__(self, values: torch.Tensor, base: DeviceModel, times_s: Sequence[float], *,
                 compensation: str = "column", pairs: int = 2, f_max: int = 5):
        self.values, self.base, self.times_s = values, base, tuple(times_s)
        self.compensation, self.pairs, self.f_max = compensation, pairs, f_max
        self.start_f = 2 if pairs > 1 and f_max > 1 else 1

    def key(self) -> dict:
        """What the scores depend on, for a checkpoint's key (the weights by their count and sums)."""
        v = self.values.double()
        return {"base": self.base.name, "times_s": list(self.times_s), "compensation": self.compensation,
                "pairs": self.pairs, "f_max": self.f_max,
                "weights": [v.numel(), float(v.sum()), float(v.abs().sum()), float((v * v).sum())]}

    def device(self, factors: Sequence[float]) -> DeviceModel:
        scales = Scales(**dict(zip(FACTORS, (float(f) for f in factors))))
        return ScaledDevice(self.base, scales) if scales.label() else self.base

    def __call__(self, factors: Sequence[float]) -> Expected:
        dev = self.device(factors)
        model = ExpectedTNMSE(self.values, dev, self.times_s, compensation=self.compensation)
        naive = float(model(baseline(NAIVE, Cell.with_pairs(self.pairs, 1.0), dev.g_min, dev.g_max))[0])
        optimised, f = self._best_f(model)
        return Expected(naive, optimised, f)

    def _best_f(self, model: ExpectedTNMSE) -> tuple[float, int]:
        """Lowest compensated pointwise optimum over the cells (1, F, F², …)."""
        def at(f: int) -> float:
            cell = Cell.with_pairs(self.pairs, float(f)).significance
            return Pointwise(model, cell, POINTWISE_BINS).solve(compensated=True).mean

        if self.pairs == 1:
            return at(1), 1
        return climb(at, self.start_f, self.f_max)


def climb(at: Callable[[int], float], start: int, f_max: int) -> tuple[float, int]:
    """(lowest value, F) of `at` over F in 1…f_max, climbing from `start` while it falls: exact for
    a unimodal `at`, as the pointwise optimum is in F on every device tried (tests/test_flipsearch.py
    checks it against every F on pcm); each F is evaluated once."""
    seen: dict[int, float] = {}

    def value(f: int) -> float:
        if f not in seen:
            seen[f] = at(f)
        return seen[f]

    f = start
    for step in (1, -1):
        while 1 <= f + step <= f_max and value(f + step) < value(f):
            f += step
    return value(f), f


def changes(base: Expected, x: Expected) -> tuple[float, float]:
    """Relative changes (naive, optimised) of X's expected TNMSE against the base's (negative: better)."""
    return x.naive / base.naive - 1.0, x.optimised / base.optimised - 1.0


def margin(base: Expected, x: Expected, direction: str) -> float:
    """The flip margin: the smaller of the two relative changes in the direction's sense (FLIP: naive
    gain and optimised loss); positive only for a flip."""
    naive, optimised = changes(base, x)
    if direction == FLIP:
        return min(-naive, optimised)
    if direction == REVERSE:
        return min(naive, -optimised)
    raise WeightprogError(f"direction: use {FLIP!r} or {REVERSE!r}, got {direction!r}")


@dataclass(frozen=True)
class Trial:
    """One scaled device the search scored."""

    factors: tuple[float, ...]
    """In `FACTORS` order."""
    expected: Expected
    margin: float
    generation: int

    def label(self) -> str:
        return ",".join(f"{k}={v:.3g}" for k, v in zip(FACTORS, self.factors))

    def to_list(self) -> list:
        e = self.expected
        return [*self.factors, e.naive, e.optimised, e.f, self.margin, self.generation]

    @classmethod
    def from_list(cls, row: Sequence) -> Trial:
        n = len(FACTORS)
        return cls(tuple(map(float, row[:n])), Expected(float(row[n]), float(row[n + 1]), int(row[n + 2])),
                   float(row[n + 3]), int(row[n + 4]))


@dataclass(frozen=True)
class DirectionSearch:
    """The DE run for one direction: every trial in order, and the best (the closest case when its
    margin is not positive)."""

    direction: str
    trials: tuple[Trial, ...]
    generations: int
    """Generations run after the initial population."""

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda t: t.margin)


@dataclass(frozen=True)
class SearchPlan:
    """What the DE over the factors does (validated here)."""

    bounds: tuple[float, float] = BOUNDS
    popsize: int = 4
    """Population = popsize × 5 factors."""
    generations: int = 10
    seed: int = 0

    def __post_init__(self):
        lo, hi = self.bounds
        if not (0 < lo < 1 < hi and math.isfinite(hi)):
            raise WeightprogError(f"bounds: LO:HI with 0 < LO < 1 < HI, got {lo:g}:{hi:g}")
        if self.popsize < 1 or self.generations < 0:
            raise WeightprogError(f"search: popsize ≥ 1 and generations ≥ 0, got {self.popsize}, {self.generations}")

    def to_json(self) -> dict:
        return {"bounds": list(self.bounds), "popsize": self.popsize, "generations": self.generations,
                "seed": self.seed}


def search_direction(scorer: ExpectedScorer, base: Expected, direction: str, plan: SearchPlan,
                     checkpoint: Path | None = None, progress: ProgressCallback | None = None) -> DirectionSearch:
    """Maximise the flip margin in `direction` over the log factors (best1bin DE, search/de.py, from
    a Latin hypercube); resumes from `checkpoint` when it holds this plan's run (a run with more
    generations continues it; one with fewer returns it as it is)."""
    margin(base, base, direction)  # validates the direction before any work
    dims = len(FACTORS)
    lo, hi = math.log(plan.bounds[0]), math.log(plan.bounds[1])
    init = lo + (hi - lo) * latin_hypercube(dims, plan.popsize * dims, plan.seed)
    trials: list[Trial] = []
    generation = 0

    def loss(x: np.ndarray) -> np.ndarray:  # (S, dims) log factors -> (S,) minus the margin
        out = []
        for logs in x:
            factors = tuple(float(f"{math.exp(v):.4g}") for v in logs)
            e = scorer(factors)
            trials.append(Trial(factors, e, margin(base, e, direction), generation))
            out.append(-trials[-1].margin)
        return np.array(out)

    de = Generations(loss, [(lo, hi)] * dims, tol=0.0, mutation=(0.5, 1.0), recombination=0.7, seed=plan.seed,
                     init=init, integrality=np.zeros(dims, bool))
    key = {"direction": direction, **scorer.key(), **plan.to_json()}
    del key["generations"]  # more generations continue a finished run
    saved = read_json(checkpoint) if checkpoint is not None and checkpoint.exists() else None
    if saved is not None and saved.get("key") == key:
        de.restore(saved["state"])
        trials.extend(Trial.from_list(t) for t in saved["trials"])
        generation = int(saved["generation"])
    else:
        de.score_initial()
        _save(checkpoint, key, de, trials, generation)
    while generation < plan.generations:
        if progress is not None:
            progress(Event("flipsearch", (direction,), generation, plan.generations))
        generation += 1
        de.step()
        _save(checkpoint, key, de, trials, generation)
    if progress is not None:
        progress(Event("flipsearch", (direction,), generation, plan.generations))
    return DirectionSearch(direction, tuple(trials), generation)


def _save(checkpoint: Path | None, key: dict, de: Generations, trials: list[Trial], generation: int) -> None:
    if checkpoint is not None:
        atomic_write_json(checkpoint, {"key": key, "generation": generation, "state": de.state(),
                                       "trials": [t.to_list() for t in trials]})
