"""Strategies chosen on the network: every candidate of a search programmed onto the model and
scored on held-out data, because weight error can mislead (docs/NN.md, "Choosing on the network").

The search ranks strategies by their time-averaged weight error (TNMSE); users judge them by the
network's metric over time. `select_on_network` programs each candidate of an `optimize` run (the
optimum, what each method found, the best hand-crafted strategy and naive programming) onto the
model with R realisations (the same seeds and examples for every candidate), scores it with the
spec's `validate` at the search's times, and picks the best on the network; the test data is never
touched. The device's limit (nn/limit.py) is scored beside them: `limit-chosen` (the better of `limit`
and `limit-mse` at each time on the same held-out data), or plain `limit` for a spec without it.
"""

from __future__ import annotations

from collections.abc import Mapping as Mapping_
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from .choices import DEFAULT_SELECT, LIMIT, LIMIT_CHOSEN, SELECT_RULES
from .devices import DeviceModel
from .progress import ProgressCallback
from .search.run import OptimizeResult
from .settings import NetworkSettings
from .strategy import Strategy
from .timeunits import format_time
from .validate import choice

if TYPE_CHECKING:  # weightprog.nn (and scipy.stats with it) loads only when a network is scored
    from .nn.result import OverTimeResult
    from .nn.spec import ModelSpec


@dataclass(frozen=True)
class NetworkRow:
    """One strategy's metric at one time: mean over realisations and its 95 % interval."""

    strategy: str
    time_s: float
    mean: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "time_s": self.time_s, "mean": self.mean,
                "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class NetworkSelection:
    """The candidates scored on the network, the one chosen, and how the two rankings compare."""

    metric: str
    higher_is_better: bool
    split: str
    """What the candidates were scored on: `validate` (held out), or `test` for a spec without it."""
    rows: list[NetworkRow]
    chosen: str
    """The candidate the rule picked."""
    rule: str
    """`network`, `tnmse` or `resolved` (SELECT_RULES)."""
    tnmse_ranking: list[str]
    """Candidates from lowest to highest weight error (the search's re-score)."""
    network_ranking: list[str]
    """Candidates from best to worst time-averaged network metric."""
    limit: list[NetworkRow] = field(default_factory=list)
    repeats: int = 0
    interval_over: str = "realisations"
    same_as: dict[str, str] = field(default_factory=dict)
    """Candidates not programmed because they are the same table as another (name -> the one kept)."""
    evaluation: OverTimeResult | None = field(default=None, repr=False)

    def is_same(self, a: str, b: str) -> bool:
        """Whether candidates `a` and `b` are one strategy (the same name, or one kept for the other)."""
        return self.same_as.get(a, a) == self.same_as.get(b, b)

    @property
    def agrees(self) -> bool:
        """Whether weight error and the network pick the same best candidate."""
        return self.tnmse_ranking[0] == self.network_ranking[0]

    def to_dict(self) -> dict:
        """report.json's `network` section."""
        return {"metric": self.metric, "higher_is_better": self.higher_is_better, "split": self.split,
                "rule": self.rule, "repeats": self.repeats, "interval_over": self.interval_over,
                "rows": [r.to_dict() for r in self.rows], "chosen": self.chosen,
                "tnmse_ranking": self.tnmse_ranking, "network_ranking": self.network_ranking,
                "same_as": self.same_as, "limit": [r.to_dict() for r in self.limit]}

    @property
    def limit_name(self) -> str | None:
        """The limit's kind (`limit-chosen`, or `limit` for a spec without held-out data), None without one."""
        return self.limit[0].strategy if self.limit else None

    def format(self) -> str:
        """The table (mean and 95 % interval per candidate and time, the limit last) and the words."""
        times = sorted({r.time_s for r in self.rows})
        head = f"{'on the network':<26}" + "".join(f"{format_time(t):>30}" for t in times)
        lines = [head]
        for name in self.network_ranking + ([self.limit_name] if self.limit_name else []):
            cells = {r.time_s: r for r in self.rows + self.limit if r.strategy == name}
            mark = " *" if name == self.chosen else ""
            lines.append(f"{name + mark:<26}" + "".join(
                f"{f'{cells[t].mean:.4g} [{cells[t].ci_low:.4g}, {cells[t].ci_high:.4g}]':>30}" for t in times))
        return "\n".join(lines + self.words())

    def words(self) -> list[str]:
        """The selection in sentences (printed and on the page)."""
        where = "held-out (validate) data" if self.split == "validate" else \
            "the TEST data (the model spec has no validate: give one so that choices stay off the test set)"
        twins = "".join(f" ({a} is {b})" for a, b in self.same_as.items())
        lines = [f"network: {len(self.network_ranking)} distinct candidates{twins} scored on {where}, {self.metric} "
                 f"({'higher' if self.higher_is_better else 'lower'} is better), R = {self.repeats}; "
                 f"chosen by {self.rule}: {self.chosen}."]
        if self.agrees:
            lines.append(f"network: weight error and the network agree on the best candidate ({self.chosen}).")
        else:
            lines.append("network: weight error and the network DISAGREE. By weight error: "
                         + " < ".join(self.tnmse_ranking) + "; on the network (best first): "
                         + " > ".join(self.network_ranking) + ".")
        return lines


def candidates_of(result: OptimizeResult) -> tuple[dict[str, Strategy], dict[str, str]]:
    """The distinct strategies an `optimize` run can hand over, by name: `optimised` (its TNMSE pick),
    what each other method found, the best hand-crafted strategy, and naive programming (lsp-first
    F=1); and the names left out because they are the same table as one kept (e.g. DE finding
    lsp-first F=2 exactly), mapped to it — each is programmed once."""
    listed = [("optimised", result.strategy)]
    listed += [(name, s) for name, s in result.candidates.items() if name != result.method]  # the pick is `optimised`
    for scored in (result.scores.best_hand_crafted, result.scores.naive):
        listed.append((scored.label, result.strategy_of(scored)))
    out: dict[str, Strategy] = {}
    same: dict[str, str] = {}
    for name, strategy in listed:
        twin = next((kept for kept, s in out.items() if _same(s, strategy)), None)
        if name in out or name in same:
            continue
        if twin is None:
            out[name] = replace(strategy, names=[name])
        else:
            same[name] = twin
    return out, same


def _same(a: Strategy, b: Strategy) -> bool:
    """The same mapping: equal cell, β and table (on the union of their grids)."""
    if a.pairs != b.pairs:
        return False
    both = Strategy.stack([a, b])
    return bool(torch.allclose(both.significance[0], both.significance[1])
                and torch.allclose(both.beta[0], both.beta[1], rtol=1e-9)
                and torch.allclose(both.conductances[0], both.conductances[1], atol=1e-9))


def select_on_network(spec: ModelSpec | Mapping_[str, Any], result: OptimizeResult, device: DeviceModel,
                      settings: NetworkSettings, rule: str = DEFAULT_SELECT,
                      progress: ProgressCallback | None = None) -> tuple[NetworkSelection, Strategy]:
    """Score every candidate of `result` on the network and choose one.

    Parameters
    ----------
    spec
        The model spec (or its mapping form); its `validate` scores the candidates (a spec without it falls back to
        `evaluate`, and the selection says so).
    result
        The `optimize` run whose candidates are scored (its times are the network's times).
    device
        The device.
    settings
        Realisations, periphery and mapping of the network evaluation.
    rule
        `network` (the best time-averaged network metric), `tnmse` (the search's own pick) or
        `resolved` (the search's pick unless the network resolves a better one; `choices.SELECT_RULES`).
    progress
        Receives the evaluation's `evaluate` events, as for `evaluate_over_time`.

    Returns
    -------
    tuple of (NetworkSelection, Strategy)
        The selection and the chosen strategy (named as in the selection).
    """
    from .nn.evaluate import evaluate_over_time
    from .nn.spec import ModelSpec

    choice(rule, "select", SELECT_RULES)
    spec = ModelSpec.of(spec)
    candidates, same = candidates_of(result)
    names = list(candidates)
    split = spec.selection_split
    limit = LIMIT_CHOSEN if split == "validate" else LIMIT  # choosing needs held-out data
    listed: list = list(candidates.values()) + ([limit] if settings.limit else [])
    evaluation = evaluate_over_time(spec, strategies=listed, device=device, times_s=result.settings.times_s,
                                    repeats=settings.repeats, seed=settings.seed, mapping=settings.mapping,
                                    periphery=settings.periphery, include=list(settings.include or []) or None,
                                    exclude=list(settings.exclude or []) or None, progress=progress, split=split)
    rows: list[NetworkRow] = []
    limit_rows: list[NetworkRow] = []
    for i, name in enumerate(evaluation.strategies):
        for k, t in enumerate(evaluation.times_s):
            iv = evaluation.interval(i, k)
            row = NetworkRow(name if i < len(names) else limit, t, iv.mean, iv.low, iv.high)
            (rows if i < len(names) else limit_rows).append(row)
    sign = 1.0 if spec.higher_is_better else -1.0
    score = {name: sign * float(evaluation.mean[i].mean()) for i, name in enumerate(names)}
    network_ranking = sorted(names, key=lambda n: -score[n])
    weight_error = {name: s.mean for name, s in tnmse_scores(result).items() if name in candidates}
    tnmse_ranking = sorted(weight_error, key=lambda n: weight_error[n])
    if rule == "network":
        chosen = network_ranking[0]
    elif rule == "tnmse":
        chosen = "optimised"
    else:
        chosen = resolved_choice(evaluation, names, "optimised", score)
    selection = NetworkSelection(spec.metric_name, spec.higher_is_better, split, rows, chosen, rule, tnmse_ranking,
                                 network_ranking, limit_rows, settings.repeats, evaluation.interval_over, same,
                                 evaluation)
    return selection, candidates[chosen]


def resolved_choice(evaluation: OverTimeResult, names: list[str], pick: str, score: dict[str, float]) -> str:
    """The `resolved` rule: `pick` (the lowest weight error) unless some candidates are better than
    it on the network at some time, resolved at 95 % (paired: the same realisations and examples),
    and worse at none; then the one of those with the best time-averaged `score`."""
    base = names.index(pick)
    better = []
    for i, name in enumerate(names):
        if i == base:
            continue
        verdicts = {evaluation.paired(i, base, k).verdict(evaluation.higher_is_better)
                    for k in range(len(evaluation.times_s))}
        if "better" in verdicts and "worse" not in verdicts:
            better.append(name)
    return max(better, key=lambda n: score[n]) if better else pick


def tnmse_scores(result: OptimizeResult) -> dict:
    """Each candidate's re-scored TNMSE by its candidate name."""
    scores = result.scores
    out = {"optimised": scores.optimised}
    out.update({name: score for name, score in scores.others.items()})
    for scored in scores.hand_crafted:
        out[scored.label] = scored.score
    return out
