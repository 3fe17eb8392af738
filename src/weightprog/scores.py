"""Re-scored TNMSE of a run's strategies, and the answers derived from them, decided in one place.

Every command that reports a run (optimize, compare-devices, device advise and flipmap, sweep,
study, the HTML report) asks a `Scoreboard` for "the best F = 1 baseline", "the best hand-crafted
strategy" and "the improvement over it"; nobody recomputes them from dictionaries.

Names: a hand-crafted strategy is named as the CLI spells it (`single-pair`, `lsp-first`,
`msp-first`) with its significance ratio F (`lsp-first F=2`). JSON keys are the same names as
identifiers (`lsp_first`, `lsp_first_best`); `to_json` / `from_json` are the only places that
spell them, and `from_json` reads the files earlier versions wrote.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from .choices import BASELINES, NAIVE
from .metric import TNMSEResult

SPLIT_BASELINES = ("lsp-first", "msp-first")
"""The hand-crafted strategies that use a significance ratio F > 1 (P ≥ 2)."""


def json_key(name: str) -> str:
    """`lsp-first` -> `lsp_first`: a strategy name as a JSON key."""
    return name.replace("-", "_")


@dataclass(frozen=True)
class Score:
    """Re-scored TNMSE of one strategy: the mean over time and its standard error (over columns),
    and the same per time."""

    mean: float
    stderr: float
    per_time: tuple[float, ...] = ()
    per_time_stderr: tuple[float, ...] = ()

    @classmethod
    def of(cls, result: TNMSEResult, index: int = 0) -> Score:
        """Score of strategy `index` of a Monte-Carlo result."""
        return cls(float(result.mean[index]), float(result.stderr[index]),
                   tuple(float(x) for x in result.per_time[index]),
                   tuple(float(x) for x in result.per_time_stderr[index]))

    @classmethod
    def from_dict(cls, d: dict) -> Score:
        """From the JSON form (`mean`, `stderr`, optional `per_time`, `per_time_stderr`)."""
        return cls(float(d["mean"]), float(d["stderr"]), tuple(float(x) for x in d.get("per_time", ())),
                   tuple(float(x) for x in d.get("per_time_stderr", ())))

    def to_dict(self) -> dict:
        """The JSON form."""
        out: dict = {"mean": self.mean, "stderr": self.stderr}
        if self.per_time:
            out["per_time"] = list(self.per_time)
            out["per_time_stderr"] = list(self.per_time_stderr)
        return out

    def relative_to(self, base: Score) -> tuple[float, float]:
        """(self / base − 1, its standard error if the two were independent: an upper bound, since
        weightprog's scores of two strategies or devices share their draws)."""
        ratio = self.mean / base.mean
        return ratio - 1.0, ratio * math.hypot(self.stderr / self.mean, base.stderr / base.mean)

    def within_error_of(self, limit: float) -> bool:
        """Whether this score is within its re-score's error of a lower `limit` (e.g. the bound):
        (mean − limit)/limit below two relative standard errors plus 0.5 %: little is left to gain."""
        return self.mean / limit - 1 < 2 * self.stderr / self.mean + 0.005

    def improvement_over(self, base: Score) -> float:
        """1 − self / base: the fraction of `base`'s error this strategy removes."""
        return 1.0 - self.mean / base.mean


@dataclass(frozen=True)
class Scored:
    """A hand-crafted strategy at one significance ratio F, with its score."""

    name: str
    """As the CLI spells it: `single-pair`, `lsp-first`, `msp-first`."""
    f: float
    score: Score

    @property
    def label(self) -> str:
        """`lsp-first F=2`."""
        return f"{self.name} F={self.f:g}"


@dataclass(frozen=True)
class Scoreboard:
    """The re-scored TNMSE of one run: the optimised strategy, what the other search methods found,
    and the hand-crafted strategies (each at F = 1; the split ones also at every F searched)."""

    optimised: Score
    hand_crafted: tuple[Scored, ...]
    others: dict[str, Score] = field(default_factory=dict)
    """Other methods' strategies by name (`de`, `pointwise`, `pointwise_expressible`)."""

    def __post_init__(self):
        if not any(s.f == 1 and s.name in BASELINES for s in self.hand_crafted):
            raise ValueError("a scoreboard needs the hand-crafted strategies at F = 1")

    def baseline(self, name: str, f: float = 1.0) -> Scored:
        """The hand-crafted strategy `name` at F = `f`."""
        for s in self.hand_crafted:
            if s.name == name and s.f == f:
                return s
        raise KeyError(f"{name} F={f:g} was not scored")

    @property
    def naive(self) -> Scored:
        """lsp-first at F = 1 (the paper's naive mapping)."""
        return self.baseline(NAIVE)

    @property
    def best_f1_baseline(self) -> Scored:
        """The best hand-crafted strategy at F = 1."""
        return min((s for s in self.hand_crafted if s.f == 1), key=lambda s: s.score.mean)

    def best_f(self, name: str) -> Scored:
        """`name` at its best F."""
        return min((s for s in self.hand_crafted if s.name == name), key=lambda s: s.score.mean)

    @property
    def best_hand_crafted(self) -> Scored:
        """The best hand-crafted strategy at any F scored."""
        return min(self.hand_crafted, key=lambda s: s.score.mean)

    @property
    def improvement_vs_best_hand_crafted(self) -> float:
        """1 − optimised / best hand-crafted."""
        return self.optimised.improvement_over(self.best_hand_crafted.score)

    @property
    def improvement_vs_best_f1_baseline(self) -> float:
        """1 − optimised / best F = 1 baseline."""
        return self.optimised.improvement_over(self.best_f1_baseline.score)

    @staticmethod
    def key_of(scored: Scored) -> str:
        """Where `to_json` keeps a hand-crafted score that `best_*` returned: `lsp_first` at F = 1,
        `lsp_first_best` at a higher F."""
        return json_key(scored.name) + ("" if scored.f == 1 else "_best")

    def entries(self) -> Iterator[tuple[str, str, Score]]:
        """(JSON key, name as the CLI spells it, score) in report order: optimised, the other
        methods, each baseline at F = 1 (`lsp-first F=1`), each split baseline at its best F
        (`lsp_first_best`, `lsp-first F=2 (best F)`)."""
        yield "optimised", "optimised", self.optimised
        for name, score in self.others.items():
            yield name, name, score
        for name in BASELINES:
            at_1 = self.baseline(name)
            yield json_key(name), at_1.label, at_1.score
        for name in SPLIT_BASELINES:
            best = self.best_f(name)
            yield json_key(name) + "_best", f"{best.label} (best F)", best.score

    def items(self) -> Iterator[tuple[str, Score]]:
        """(JSON key, score) in report order (`entries` without the names)."""
        return ((key, score) for key, _, score in self.entries())

    def to_json(self, others: bool = True) -> dict[str, dict]:
        """The `tnmse` object of report.json (`lsp_first_best` carries its `f`); without the other
        methods' strategies if `others` is False."""
        out = {key: score.to_dict() for key, score in self.items() if others or key not in self.others}
        for name in SPLIT_BASELINES:
            out[json_key(name) + "_best"]["f"] = _int_if_whole(self.best_f(name).f)
        return out

    @classmethod
    def from_json(cls, d: dict) -> Scoreboard:
        """From a `tnmse` object written by `to_json` (report.json, a sweep record, comparison.json)."""
        hand = [Scored(name, 1.0, Score.from_dict(d[json_key(name)])) for name in BASELINES if json_key(name) in d]
        for name in SPLIT_BASELINES:
            best = d.get(json_key(name) + "_best")
            if best is not None and float(best.get("f", 1)) != 1:
                hand.append(Scored(name, float(best["f"]), Score.from_dict(best)))
        known = {"optimised"} | {json_key(n) for n in BASELINES} | {json_key(n) + "_best" for n in SPLIT_BASELINES}
        others = {k: Score.from_dict(v) for k, v in d.items() if k not in known}
        return cls(Score.from_dict(d["optimised"]), tuple(hand), others)


def _int_if_whole(f: float) -> float | int:
    return int(f) if float(f).is_integer() else f
