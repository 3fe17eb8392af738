"""advice.json of `weightprog device advise` and flipmap.json of `weightprog device flipmap`:
`AdviceRecord` and `FlipMapRecord`, made from an `Advice` / `FlipMap` or read back from a file
(older files included), and `write_advice_run` / `write_flip_map_run`, each run's files.

Both are read through `jsonfile.Fields`: a missing or mistyped field fails with one line naming
the file and the field's JSON pointer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..advise import CHOICES, LABELS, Advice, DeviceScores, FlipMap, FlipPoint, PropertyEffect
from ..fileio import atomic_write_json
from ..scores import Score
from .jsonfile import Fields, RecordError, load_record
from .optimize_parts import SettingsRecord

ADVICE_FORMAT = "weightprog.advise"
FLIPMAP_FORMAT = "weightprog.flipmap"
FORMAT_VERSION = 1
"""The layout of both files (they name their format, not a version: `from_json` reads every layout it knows)."""
ADVICE_FILE = "advice.json"
FLIPMAP_FILE = "flipmap.json"
Json = dict[str, Any]


def _check_format(f: Fields, expected: str) -> None:
    found = f.text("format", expected)
    if found != expected:
        raise RecordError(f.at("format"), f"expected {expected!r}, got {found!r}")


def _score(f: Fields) -> Score:
    return Score(f.number("mean"), f.number("stderr"))


def _score_json(s: Score) -> Json:
    return {"mean": s.mean, "stderr": s.stderr}


def scores_from_json(f: Fields) -> DeviceScores:
    """One device's scores (`base`, a property's `scores`); older files have no `bound` (None)."""
    return DeviceScores(f.text("device"), _score(f.obj("naive")), _score(f.obj("hand_crafted")),
                        f.text("hand_crafted_name"), _score(f.obj("optimised")), f.numbers("cell"),
                        f.optional_number("bound"))


def scores_to_json(s: DeviceScores) -> Json:
    return {"device": s.device, "naive": _score_json(s.naive), "hand_crafted": _score_json(s.hand_crafted),
            "hand_crafted_name": s.hand_crafted_name, "optimised": _score_json(s.optimised), "cell": list(s.cell),
            "bound": s.bound}


def _as_kept(s: DeviceScores) -> DeviceScores:
    """The scores as the file keeps them: mean and standard error, not the per-time values."""
    def kept(x: Score) -> Score:
        return Score(x.mean, x.stderr)
    return replace(s, naive=kept(s.naive), hand_crafted=kept(s.hand_crafted), optimised=kept(s.optimised))


@dataclass(frozen=True)
class ByChoice:
    """One quantity of an improved property per programming choice (`CHOICES`); `bound` is None
    where the optimisations ran without bounds, and in older files."""

    naive: float
    hand_crafted: float
    optimised: float
    bound: float | None = None

    @classmethod
    def of(cls, effect: PropertyEffect, measure: Callable[[str], float]) -> ByChoice:
        """`measure` (`effect.change`, `effect.elasticity`) of every choice the effect has."""
        naive, hand, opt = (measure(c) for c in CHOICES)
        return cls(naive, hand, opt, measure("bound") if "bound" in effect.choices() else None)

    def to_json(self, prefix: str) -> Json:
        """`{prefix}_naive`, … (`change_optimised`): flat keys, as the file has always had them."""
        out = {f"{prefix}_{c}": getattr(self, c) for c in CHOICES}
        return out | ({f"{prefix}_bound": self.bound} if self.bound is not None else {})

    @classmethod
    def from_json(cls, f: Fields, prefix: str) -> ByChoice:
        naive, hand, opt = (f.number(f"{prefix}_{c}") for c in CHOICES)
        return cls(naive, hand, opt, f.optional_number(f"{prefix}_bound"))


@dataclass(frozen=True)
class PropertyRecord:
    """One property improved by `factor`: the improved device's scores and the change and
    elasticity of its TNMSE against the base device."""

    prop: str
    label: str
    factor: float
    scores: DeviceScores
    change: ByChoice
    elasticity: ByChoice

    @classmethod
    def of(cls, e: PropertyEffect) -> PropertyRecord:
        return cls(e.prop, LABELS[e.prop], e.factor, _as_kept(e.scores), ByChoice.of(e, e.change),
                   ByChoice.of(e, e.elasticity))

    def to_json(self) -> Json:
        return {"property": self.prop, "label": self.label, "factor": self.factor,
                "scores": scores_to_json(self.scores), **self.change.to_json("change"),
                **self.elasticity.to_json("elasticity")}

    @classmethod
    def from_json(cls, f: Fields) -> PropertyRecord:
        return cls(f.text("property"), f.text("label"), f.number("factor"), scores_from_json(f.obj("scores")),
                   ByChoice.from_json(f, "change"), ByChoice.from_json(f, "elasticity"))


@dataclass(frozen=True)
class AdviceRecord:
    """advice.json: which improved property of `device` pays most once the strategy is re-optimised."""

    device: str
    improvement: float
    times_s: tuple[float, ...]
    wall_time_s: float
    settings: SettingsRecord
    base: DeviceScores
    properties: tuple[PropertyRecord, ...]
    """Sorted by payoff: the largest drop of the optimised TNMSE first."""
    words: tuple[str, ...]
    weights: str | None = None
    """Where the weights came from (`distribution:default`, a file); the command always writes it."""
    version: int = FORMAT_VERSION

    @classmethod
    def of(cls, advice: Advice, weights: str) -> AdviceRecord:
        return cls(advice.device, advice.improvement, tuple(advice.times_s), advice.wall_time_s,
                   SettingsRecord.from_json(advice.settings.to_dict()), _as_kept(advice.base),
                   tuple(PropertyRecord.of(e) for e in advice.effects), tuple(advice.words()), weights)

    @property
    def with_bound(self) -> bool:
        """Whether the optimisations computed the bound (a `bound` column)."""
        return self.base.bound is not None

    def to_json(self) -> Json:
        """The file's object, keys in the order the command has always written them."""
        out = {"format": ADVICE_FORMAT, "device": self.device, "improvement": self.improvement,
               "times_s": list(self.times_s), "wall_time_s": self.wall_time_s, "settings": self.settings.to_json(),
               "base": scores_to_json(self.base), "properties": [p.to_json() for p in self.properties],
               "words": list(self.words)}
        return out | ({"weights": self.weights} if self.weights is not None else {})

    @classmethod
    def from_json(cls, d: Any) -> AdviceRecord:
        """An advice.json of this layout or an earlier one (before bounds: no `bound`, no `*_bound`)."""
        f = Fields(d)
        _check_format(f, ADVICE_FORMAT)
        return cls(f.text("device"), f.number("improvement"), f.numbers("times_s"), f.number("wall_time_s"),
                   SettingsRecord.from_json(f.mapping("settings", {})), scores_from_json(f.obj("base")),
                   tuple(PropertyRecord.from_json(p) for p in f.objs("properties")), f.texts("words"),
                   f.text("weights", None))


@dataclass(frozen=True)
class FlipAxis:
    prop: str
    factors: tuple[float, ...]

    def to_json(self) -> Json:
        return {"property": self.prop, "factors": list(self.factors)}

    @classmethod
    def from_json(cls, f: Fields) -> FlipAxis:
        return cls(f.text("property"), f.numbers("factors"))


@dataclass(frozen=True)
class FlipRow:
    """A scaled device against the base, with the verdict the run gave it."""

    point: FlipPoint
    verdict: str

    def to_json(self) -> Json:
        p = self.point
        return {"x": p.x, "y": p.y, "device": p.device, "naive_change": p.naive_change,
                "naive_stderr": p.naive_stderr, "optimised_change": p.optimised_change,
                "optimised_stderr": p.optimised_stderr, "verdict": self.verdict}

    @classmethod
    def from_json(cls, f: Fields) -> FlipRow:
        point = FlipPoint(f.number("x"), f.number("y"), f.text("device"), f.number("naive_change"),
                          f.number("naive_stderr"), f.number("optimised_change"), f.number("optimised_stderr"))
        return cls(point, f.text("verdict"))


@dataclass(frozen=True)
class FlipMapRecord:
    """flipmap.json: a grid of scaled devices compared with their base, naive and optimised."""

    base: str
    x: FlipAxis
    y: FlipAxis
    counts: dict[str, int]
    """How many scaled devices got each verdict."""
    sentence: str
    points: tuple[FlipRow, ...]
    """Row-major: y outer, x inner."""
    version: int = FORMAT_VERSION

    @classmethod
    def of(cls, flip: FlipMap) -> FlipMapRecord:
        return cls(flip.base, FlipAxis(flip.x_prop, flip.x_factors), FlipAxis(flip.y_prop, flip.y_factors),
                   flip.counts(), flip.sentence(), tuple(FlipRow(p, p.verdict()) for p in flip.points))

    def to_json(self) -> Json:
        return {"format": FLIPMAP_FORMAT, "base": self.base, "x": self.x.to_json(), "y": self.y.to_json(),
                "counts": dict(self.counts), "sentence": self.sentence, "points": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, d: Any) -> FlipMapRecord:
        f = Fields(d)
        _check_format(f, FLIPMAP_FORMAT)
        counts = f.obj("counts")
        return cls(f.text("base"), FlipAxis.from_json(f.obj("x")), FlipAxis.from_json(f.obj("y")),
                   {k: counts.integer(k) for k in counts.data}, f.text("sentence"),
                   tuple(FlipRow.from_json(p) for p in f.objs("points")))


def read_advice_record(folder: str | Path) -> AdviceRecord:
    """A `device advise` folder's advice.json."""
    return load_record(Path(folder) / ADVICE_FILE, AdviceRecord.from_json)


def read_flip_map_record(folder: str | Path) -> FlipMapRecord:
    """A `device flipmap` folder's flipmap.json."""
    return load_record(Path(folder) / FLIPMAP_FILE, FlipMapRecord.from_json)


def write_advice_run(folder: str | Path, advice: Advice, weights: str) -> list[Path]:
    """advice.json and advice.png (the tornado of changes) into `folder`; the paths written."""
    from ..report.advise_plots import plot_advice  # matplotlib only when writing files

    paths = [Path(folder) / ADVICE_FILE, Path(folder) / "advice.png"]
    atomic_write_json(paths[0], AdviceRecord.of(advice, weights).to_json())
    plot_advice(advice, paths[1])
    return paths


def write_flip_map_run(folder: str | Path, flip: FlipMap) -> list[Path]:
    """flipmap.json and flipmap.png (the verdict per scaled device) into `folder`; the paths written."""
    from ..report.advise_plots import plot_flip_map

    paths = [Path(folder) / FLIPMAP_FILE, Path(folder) / "flipmap.png"]
    atomic_write_json(paths[0], FlipMapRecord.of(flip).to_json())
    plot_flip_map(flip, paths[1])
    return paths
