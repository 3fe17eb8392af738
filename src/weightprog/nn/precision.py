"""Precision on demand (`--precision P`): test items are added in rounds until every compared
interval is at most ±P, or the test set is exhausted.

What is compared: with two or more strategies, every paired difference (each pair, each time);
with one, its metric at each time. An interval's half-width combines a realisations term and an
examples term in quadrature (nn/stats.py). The examples term shrinks as 1/√N; so does most of the
realisations term on a classifier, since each realisation's metric is measured on the same N items
(which items a realisation flips is sampling noise too). So after each round the next size is the
one at which the widest interval would just reach P if it shrank as 1/√N, times 1.1 for the
estimate's own noise and at least 1.5 N. Where the realisations term alone stays above P over a
round (it kept more than 90 % of itself), it is the realisations' own spread, which more items
cannot narrow: the loop stops and says so (`limited_by = "realisations"`: raise `--repeats`). Each
round is a complete evaluation on the first N items, so the result is exactly the run
`--eval-size N` would give; stopping on an observed width is a sequential rule, so the intervals'
coverage is nominal, not exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import WeightprogError
from .result import OverTimeResult
from .stats import Interval

GROWTH_MIN = 1.5
"""Each round has at least this many times the items of the one before (bounds the rounds)."""
SAFETY = 1.1
"""The predicted size is raised by this factor: the widths it comes from are estimates."""
STUCK = 0.9
"""A realisations term above the target that kept more than this share of itself over a round of
more items is taken as the realisations' own spread, which more items cannot narrow."""


@dataclass(frozen=True)
class PrecisionTarget:
    """The half-width to reach: in the metric's unit, or a fraction of the digital metric (`1%`)."""

    value: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str | float) -> PrecisionTarget:
        """`0.005` (the metric's unit: half a point of accuracy) or `1%` (of the digital metric)."""
        raw = str(text).strip()
        relative = raw.endswith("%")
        try:
            value = float(raw[:-1] if relative else raw)
        except ValueError:
            raise WeightprogError(f"precision: a number or a percentage like 1%, got {raw!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise WeightprogError(f"precision: must be > 0, got {raw!r}")
        return cls(value / 100 if relative else value, relative)

    def absolute(self, digital: float) -> float:
        """The half-width in the metric's unit, for a run whose digital metric is `digital`."""
        return self.value * abs(digital) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}% of digital" if self.relative else f"{self.value:g}"


@dataclass(frozen=True)
class PrecisionReport:
    """How far `--precision` got: the target, the widest half-width reached, the items per round."""

    requested: str
    target: float
    """The half-width asked for, in the metric's unit."""
    reached: float
    """The widest compared half-width of the last round."""
    rounds: tuple[int, ...]
    """Test items of each round; the last is the result's."""
    available: int
    limited_by: str | None
    """None (met), `test set` (every item used) or `realisations` (their term alone exceeds the target)."""

    @property
    def met(self) -> bool:
        return self.reached <= self.target

    @property
    def examples(self) -> int:
        return self.rounds[-1]

    def to_dict(self) -> dict:
        return {"requested": self.requested, "target": self.target, "reached": self.reached, "met": self.met,
                "examples": self.examples, "available": self.available, "rounds": list(self.rounds),
                "limited_by": self.limited_by}

    @classmethod
    def from_dict(cls, d: dict) -> PrecisionReport:
        return cls(d["requested"], d["target"], d["reached"], tuple(d["rounds"]), d["available"], d.get("limited_by"))

    def format(self) -> str:
        head = (f"precision: ±{self.reached:.4g} reached, ±{self.target:.4g} asked ({self.requested}); "
                f"{self.examples} of {self.available} test items, rounds {', '.join(map(str, self.rounds))}")
        if self.met:
            return head
        why = ("every test item is used" if self.limited_by == "test set" else
               "the realisations' share alone is wider: raise --repeats")
        return f"{head}; not met: {why}"


def compared_intervals(result: OverTimeResult) -> list[Interval]:
    """The intervals `--precision` holds to P: every paired difference, or with one strategy its metric."""
    s, t = len(result.strategies), len(result.times_s)
    if s == 1:
        return [result.interval(0, k) for k in range(t)]
    return [result.paired(a, b, k) for a in range(s) for b in range(a + 1, s) for k in range(t)]


def grown_size(widest: float, target: float, items: int) -> int:
    """Test items at which a half-width `widest` on `items` would reach `target` if it shrank as
    1/√N (both terms do, to first order: a realisation's metric on N items carries their
    sampling noise), × SAFETY, and at least GROWTH_MIN × the items."""
    need = math.ceil(items * (widest / target) ** 2) if widest > target else items
    return max(math.ceil(SAFETY * need), math.ceil(GROWTH_MIN * items))


def next_size(intervals: list[Interval], target: float, items: int) -> int:
    """`grown_size` for the widest of the intervals."""
    return grown_size(max((iv.high - iv.low) / 2 for iv in intervals), target, items)


def realisations_term(intervals: list[Interval], target: float) -> float:
    """The widest realisations term among the intervals still wider than `target` (0 if none)."""
    return max((iv.half_realisations for iv in intervals if (iv.high - iv.low) / 2 > target), default=0.0)


def evaluate_to_precision(run: Callable[[int], tuple[OverTimeResult, int]], start: int,
                          target: PrecisionTarget,
                          log: Callable[[str], None] | None = None) -> tuple[OverTimeResult, PrecisionReport]:
    """Evaluate on more and more test items until every compared interval is at most ±target.

    Parameters
    ----------
    run
        `run(n)`: the evaluation on the first n test items (per-example values required; n is
        capped at what the test set has) and the number of items the test set has.
    start
        Items of the first round.
    target
        The half-width to reach.
    log
        Receives one line per round.

    Returns
    -------
    (OverTimeResult, PrecisionReport)
        The last round's result and how far it got.

    Raises
    ------
    WeightprogError
        When the metric gives one number per run (no per-example values to add to).
    """
    rounds: list[int] = []
    n, before = start, math.inf
    while True:
        result, available = run(n)
        if result.examples is None:
            raise WeightprogError("precision: the metric must return per-example values (a 1-D tensor) "
                                  "for items to be added")
        n = min(n, available)
        rounds.append(n)
        intervals = compared_intervals(result)
        goal = target.absolute(result.digital)
        reached = max((iv.high - iv.low) / 2 for iv in intervals)
        if log is not None:
            log(f"precision round {len(rounds)}: {n} of {available} test items, widest ±{reached:.4g} "
                f"(target ±{goal:.4g})")
        term = realisations_term(intervals, goal)
        stuck = not term < goal and term > STUCK * before  # NaN too: one realisation
        if reached <= goal or stuck or n >= available:
            limited = None if reached <= goal else "realisations" if stuck else "test set"
            return result, PrecisionReport(str(target), goal, reached, tuple(rounds), available, limited)
        n, before = min(next_size(intervals, goal, n), available), term
