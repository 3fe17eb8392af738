"""The parts of report.json (`records.optimize.OptimizeRecord`): the cell, the settings, the
searches, the bound, the aihwkit export, the error split and the per-layer rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..scores import Score
from ..search.per_layer import LayerResult
from ..search.run import FBound

BOUND_NOTE = ("expected TNMSE (large-column limit) of the best mapping weight -> targets in "
              "[g_min, g_max]^(2P), chosen per weight value: `tnmse` with one free read-out "
              "scale per time (no drift compensation does better), `compensated_tnmse` with "
              "the deployed compensation (alpha from calibration reads) and beta free; "
              "docs/MODEL.md, 'The bound'")
RESCORE_NOTE = "fresh samples and fresh draws (seeds seed+1000 on)"

Json = dict[str, Any]


@dataclass(frozen=True)
class CellRecord:
    pairs: int
    significance: tuple[float, ...]

    def to_json(self) -> Json:
        return {"pairs": self.pairs, "significance": list(self.significance)}

    @classmethod
    def from_json(cls, d: Json) -> CellRecord:
        return cls(int(d["pairs"]), tuple(d["significance"]))


@dataclass(frozen=True)
class SettingsRecord:
    """The run's `OptimizeSettings` as JSON (`settings`), read by the settings' own field names
    (`record.settings.f_max`) so that no setting is declared a second time here; a field an older
    file lacks reads as None and is not written back (`values`: the file's pairs, in its order)."""

    values: tuple[tuple[str, Any], ...]

    def __getattr__(self, name: str) -> Any:
        for k, v in self.values:
            if k == name:
                return v
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def to_json(self) -> Json:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.values}

    @classmethod
    def from_json(cls, d: Json) -> SettingsRecord:
        return cls(tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


@dataclass(frozen=True)
class Improvement:
    vs_best_f1_baseline: float
    vs_best_hand_crafted: float

    def to_json(self) -> Json:
        return {"vs_best_f1_baseline": self.vs_best_f1_baseline, "vs_best_hand_crafted": self.vs_best_hand_crafted}


@dataclass(frozen=True)
class Rescore:
    blocks: int
    weights: int
    note: str = RESCORE_NOTE

    def to_json(self) -> Json:
        return {"blocks": self.blocks, "weights": self.weights, "note": self.note}


@dataclass(frozen=True)
class SearchRun:
    """One search (one cell): its loss history and how it ended."""

    history: tuple[float, ...]
    generations: int
    evaluations: int
    loss: float
    converged: bool
    message: str
    wall_time_s: float
    polish: Json | None
    """steps, held_out_before, held_out_after, kept (empty or None: not polished)."""

    def to_json(self) -> Json:
        return {"history": list(self.history), "generations": self.generations, "evaluations": self.evaluations,
                "loss": self.loss, "converged": self.converged, "message": self.message,
                "wall_time_s": self.wall_time_s, "polish": self.polish}

    @classmethod
    def from_json(cls, d: Json) -> SearchRun:
        return cls(tuple(d.get("history", ())), d.get("generations", 0), d.get("evaluations", 0),
                   d.get("loss", float("nan")), bool(d.get("converged", False)), d.get("message", ""),
                   d.get("wall_time_s", float("nan")), d.get("polish"))

    @property
    def polish_kept(self) -> bool | None:
        """Whether the polish was kept (None: not polished)."""
        return bool(self.polish.get("kept")) if self.polish else None


@dataclass(frozen=True)
class BoundRow:
    f: float
    bound: float
    compensated: float | None
    beta: float | None
    wall_time_s: float | None

    def to_json(self) -> Json:
        return {"f": self.f, "bound": self.bound, "compensated": self.compensated, "beta": self.beta,
                "wall_time_s": self.wall_time_s}

    @classmethod
    def from_json(cls, d: Json) -> BoundRow:
        return cls(d["f"], d["bound"], d.get("compensated"), d.get("beta"), d.get("wall_time_s"))

    @classmethod
    def of(cls, b: FBound) -> BoundRow:
        return cls(b.f, b.bound, b.compensated, b.beta, b.wall_time_s)


@dataclass(frozen=True)
class BoundRecord:
    """The limits: the lowest bound, the lowest under the deployed compensation, and both per F."""

    tnmse: float
    f: float
    compensated_tnmse: float | None
    compensated_f: float | None
    compensated_beta: float | None
    per_f: tuple[BoundRow, ...]
    note: str = BOUND_NOTE

    def to_json(self) -> Json:
        return {"tnmse": self.tnmse, "f": self.f, "compensated_tnmse": self.compensated_tnmse,
                "compensated_f": self.compensated_f, "compensated_beta": self.compensated_beta,
                "per_f": [r.to_json() for r in self.per_f], "note": self.note}

    @classmethod
    def from_json(cls, d: Json) -> BoundRecord:
        return cls(d["tnmse"], d.get("f", float("nan")), d.get("compensated_tnmse"), d.get("compensated_f"),
                   d.get("compensated_beta"), tuple(BoundRow.from_json(r) for r in d.get("per_f", ())),
                   d.get("note", ""))


@dataclass(frozen=True)
class AihwkitExport:
    """Which strategy strategy.aihwkit.json holds when it is not the optimised one, and why."""

    strategy: str
    tnmse: Score | None
    note: str

    def to_json(self) -> Json:
        return {"strategy": self.strategy, "tnmse": self.tnmse.to_dict() if self.tnmse else None, "note": self.note}

    @classmethod
    def from_json(cls, d: Json) -> AihwkitExport:
        return cls(d["strategy"], Score.from_dict(d["tnmse"]) if d.get("tnmse") else None, d.get("note", ""))


@dataclass(frozen=True)
class ErrorSplitRecord:
    """One strategy's expected error per time: systematic and random parts, and the curve E[αŵ]/u."""

    strategy: str
    times_s: tuple[float, ...]
    systematic: tuple[float, ...]
    random: tuple[float, ...]
    curve_u: tuple[float, ...]
    curve_ratio: tuple[tuple[float | None, ...], ...]
    """Per time, the ratio at each of `curve_u` (None where undefined)."""

    def to_json(self) -> Json:
        return {"strategy": self.strategy, "times_s": list(self.times_s), "systematic": list(self.systematic),
                "random": list(self.random), "curve_u": list(self.curve_u),
                "curve_ratio": [list(r) for r in self.curve_ratio]}

    @classmethod
    def from_json(cls, d: Json) -> ErrorSplitRecord:
        return cls(d["strategy"], tuple(d["times_s"]), tuple(d["systematic"]), tuple(d["random"]),
                   tuple(d.get("curve_u", ())), tuple(tuple(r) for r in d.get("curve_ratio", ())))

    @property
    def largest_weight_ratio(self) -> float | None:
        """E[αŵ]/w at the largest node and the last time."""
        return self.curve_ratio[-1][-1] if self.curve_ratio and self.curve_ratio[-1] else None


@dataclass(frozen=True)
class LayerRow:
    """report.json's `per_layer` row: a layer's own strategy against the network-wide one."""

    layer: str
    weights: int
    strategy: str
    """Where the layer's strategy was saved (`layers/<name>.json`)."""
    tnmse_layer_strategy: Score
    tnmse_network_strategy: Score

    def to_json(self) -> Json:
        return {"layer": self.layer, "weights": self.weights, "strategy": self.strategy,
                "tnmse_layer_strategy": self.tnmse_layer_strategy.to_dict(),
                "tnmse_network_strategy": self.tnmse_network_strategy.to_dict()}

    @classmethod
    def from_json(cls, d: Json) -> LayerRow:
        return cls(d["layer"], d["weights"], d["strategy"], Score.from_dict(d["tnmse_layer_strategy"]),
                   Score.from_dict(d["tnmse_network_strategy"]))

    @classmethod
    def of(cls, layer: LayerResult, strategy_file: str) -> LayerRow:
        return cls(layer.name, layer.weights, strategy_file, layer.layer, layer.network)
