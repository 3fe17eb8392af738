"""`weightprog study --precision P`: per workload, rounds of more test items until every paired
comparison of every cell (workload × device × variant, each time) is within ±P, the test set is
used up, or the widest interval stops narrowing (the realisations' own spread: raise --repeats).

A round re-runs the workload's digital runs and evaluations on its first N items (new jobs, `_pN`
in their ids, so an interrupted study resumes every round); the searches and the gradient
correlation do not depend on the test items and run once. The next N is the one at which the
widest interval would reach P if it narrowed as 1/√N (nn/precision.py's rule)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..nn.precision import STUCK, PrecisionReport, PrecisionTarget, grown_size
from .data import StudyData
from .plan import Rounds
from .tables import fp_digital, paired_rows, summary_rows


def widest(data: StudyData) -> dict[str, float]:
    """Per workload, the widest half-width of its paired comparisons (a workload with none, e.g.
    one role studied: of its metrics' own intervals)."""
    out: dict[str, float] = {}

    def widen(workload: str, low: float, high: float) -> None:  # an interval that cannot be had (NaN) never meets P
        half = (high - low) / 2
        out[workload] = max(out.get(workload, 0.0), half if math.isfinite(half) else math.inf)

    for row in paired_rows(data):
        widen(row.workload, row.ci_low, row.ci_high)
    compared = set(out)
    for own in summary_rows(data):
        if own.workload not in compared:
            widen(own.workload, own.ci_low, own.ci_high)
    return out


def available_items(records: dict[str, dict], workloads) -> dict[str, int]:
    """Per workload, the items its test set has: from the digital runs' records (by job id), or
    for records written before they kept it, from the workload itself."""
    from ..workloads import get_workload

    found = {rec["job"]["workload"]: int(rec["result"]["available"]) for rec in records.values()
             if rec["job"]["kind"] == "digital" and rec["result"].get("available") is not None}
    for w in workloads:
        if w not in found:
            found[w] = int(get_workload(w, "fp", eval_size=1).metadata["available"])
    return found


@dataclass
class PrecisionRounds:
    """The rounds so far of each workload, and where each stopped."""

    targets: dict[str, PrecisionTarget]
    """Per workload that has one (`StudySettings.precision_targets`); the others run one round."""
    sizes: dict[str, list[int]]
    """Test items of each round, per workload."""
    widths: dict[str, list[float]]
    """The widest half-width of each round, per workload."""
    reports: dict[str, PrecisionReport]
    """Workloads that stopped: met, test set used up, or realisations."""

    @classmethod
    def start(cls, targets: dict[str, PrecisionTarget]) -> PrecisionRounds:
        return cls(targets, {}, {}, {})

    def step(self, rounds: Rounds, data: StudyData, records: dict[str, dict], first: dict[str, int]) -> Rounds:
        """After a round (its data and job records): the next round of every workload still short
        of the target (the same `rounds` when every workload has stopped). `first`: each
        workload's first-round items (None: its whole test set)."""
        wide = {w: reached for w, reached in widest(data).items() if w in self.targets}
        digital = fp_digital(data)
        available = available_items(records, [w for w in wide if w not in self.reports])
        nxt = dict(rounds)
        for w, reached in wide.items():
            if w in self.reports:
                continue
            index, size = rounds.get(w, (0, first.get(w)))
            n = min(size or available[w], available[w])
            goal = self.targets[w].absolute(digital.get(w, 1.0))
            self.sizes.setdefault(w, []).append(n)
            widths = self.widths.setdefault(w, [])
            stuck = bool(widths) and reached > STUCK * widths[-1]
            widths.append(reached)
            if reached <= goal or n >= available[w] or stuck:
                limited = None if reached <= goal else "test set" if n >= available[w] else "realisations"
                self.reports[w] = PrecisionReport(str(self.targets[w]), goal, reached, tuple(self.sizes[w]),
                                                  available[w], limited)
                continue
            nxt[w] = (index + 1, min(grown_size(reached, goal, n), available[w]))
        return nxt
