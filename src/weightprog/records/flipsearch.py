"""flipsearch.json of `weightprog device flipmap DEVICE --search`: `FlipSearchRecord`, made from a
`FlipSearchResult` or read back through `jsonfile.Fields` (a bad field names the file and its JSON
pointer), and `write_flip_search_run` (the record and its figure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_json
from ..flipcheck import Check, FlipSearchResult, PairedChange
from ..flipsearch import DIRECTIONS, FACTORS, DirectionSearch, Expected, SearchPlan, Trial
from .jsonfile import Fields, RecordError, load_record
from .optimize_parts import SettingsRecord

FORMAT = "weightprog.flipsearch"
FILE = "flipsearch.json"
Json = dict[str, Any]


def _expected(f: Fields) -> Expected:
    return Expected(f.number("naive"), f.number("optimised"), f.integer("f"))


def _expected_json(e: Expected) -> Json:
    return {"naive": e.naive, "optimised": e.optimised, "f": e.f}


def _trial(f: Fields) -> Trial:
    factors = f.obj("factors")
    return Trial(tuple(factors.number(k) for k in FACTORS), _expected(f.obj("expected")), f.number("margin"),
                 f.integer("generation"))


def _trial_json(t: Trial) -> Json:
    return {"factors": dict(zip(FACTORS, t.factors)), "expected": _expected_json(t.expected),
            "margin": t.margin, "generation": t.generation}


def _paired(f: Fields) -> PairedChange:
    return PairedChange(f.number("change"), f.number("stderr"))


def _search(f: Fields) -> DirectionSearch:
    return DirectionSearch(f.text("direction"), tuple(_trial(t) for t in f.objs("trials")), f.integer("generations"))


def _search_json(s: DirectionSearch) -> Json:
    return {"direction": s.direction, "generations": s.generations, "best": _trial_json(s.best),
            "trials": [_trial_json(t) for t in s.trials]}


def _check(f: Fields) -> Check:
    return Check(f.text("device"), _trial(f.obj("trial")), _paired(f.obj("naive")), _paired(f.obj("optimised")),
                 f.number("naive_tnmse"), f.number("optimised_tnmse"))


def _check_json(c: Check) -> Json:
    return {"device": c.device, "verdict": c.verdict, "trial": _trial_json(c.trial),
            "naive": {"change": c.naive.change, "stderr": c.naive.stderr},
            "optimised": {"change": c.optimised.change, "stderr": c.optimised.stderr},
            "naive_tnmse": c.naive_tnmse, "optimised_tnmse": c.optimised_tnmse}


@dataclass(frozen=True)
class FlipSearchRecord:
    """flipsearch.json: the plan, every trial of each direction's search, and the Monte-Carlo checks
    of each direction's best candidate against the base (paired re-scores)."""

    base: str
    weights: str
    plan: SearchPlan
    settings: SettingsRecord
    """The settings of the checks' optimisations."""
    base_expected: Expected
    base_naive: float
    base_optimised: float
    searches: tuple[DirectionSearch, ...]
    checks: tuple[Check, ...]
    sentence: str
    wall_time_s: float

    @classmethod
    def of(cls, r: FlipSearchResult, weights: str) -> FlipSearchRecord:
        return cls(r.base, weights, r.plan, SettingsRecord.from_json(r.settings.to_dict()), r.base_expected,
                   r.base_naive, r.base_optimised, r.searches, r.checks, r.sentence(), r.wall_time_s)

    def to_json(self) -> Json:
        return {"format": FORMAT, "base": self.base, "weights": self.weights, "plan": self.plan.to_json(),
                "settings": self.settings.to_json(), "base_expected": _expected_json(self.base_expected),
                "base_naive": self.base_naive, "base_optimised": self.base_optimised,
                "sentence": self.sentence, "checks": [_check_json(c) for c in self.checks],
                "searches": [_search_json(s) for s in self.searches], "wall_time_s": self.wall_time_s}

    @classmethod
    def from_json(cls, d: Any) -> FlipSearchRecord:
        f = Fields(d)
        if f.text("format") != FORMAT:
            raise RecordError(f.at("format"), f"expected {FORMAT!r}, got {f.text('format')!r}")
        p = f.obj("plan")
        bounds = p.numbers("bounds")
        if len(bounds) != 2:
            raise RecordError(p.at("bounds"), f"expected [LO, HI], got {list(bounds)}")
        plan = SearchPlan((bounds[0], bounds[1]), p.integer("popsize"), p.integer("generations"), p.integer("seed"))
        return cls(f.text("base"), f.text("weights"), plan, SettingsRecord.from_json(f.mapping("settings")),
                   _expected(f.obj("base_expected")), f.number("base_naive"), f.number("base_optimised"),
                   tuple(_search(s) for s in f.objs("searches")), tuple(_check(c) for c in f.objs("checks")),
                   f.text("sentence"), f.number("wall_time_s"))


def read_flip_search_record(folder: str | Path) -> FlipSearchRecord:
    """A `device flipmap --search` folder's flipsearch.json."""
    return load_record(Path(folder) / FILE, FlipSearchRecord.from_json)


def write_flip_search_run(folder: str | Path, result: FlipSearchResult, weights: str) -> list[Path]:
    """flipsearch.json, flipsearch.png (every trial's expected changes, the checks) and the optimised
    strategies (strategy_base.json, strategy_flip.json, strategy_reverse.json) into `folder`."""
    from ..report.flipsearch_plots import plot_flip_search  # matplotlib only when writing files

    record = FlipSearchRecord.of(result, weights)
    paths = [Path(folder) / FILE, Path(folder) / "flipsearch.png"]
    atomic_write_json(paths[0], record.to_json())
    plot_flip_search(result, paths[1])
    names = {v: k for k, v in DIRECTIONS.items()}
    devices = {"base": result.base} | {names[s.direction]: c.device for s, c in zip(result.searches, result.checks)}
    for role, strategy in result.strategies.items():
        path = Path(folder) / f"strategy_{role}.json"
        strategy.save(path, device=devices.get(role, role), weights=weights)
        paths.append(path)
    return paths
