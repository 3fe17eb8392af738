"""results.json of `weightprog evaluate`: `EvaluateRecord`, made from an `OverTimeResult` or read
back from a file (older files included), and `write_evaluate_run`, the run folder from a record."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._version import __version__
from ..fileio import atomic_write_json, atomic_write_text
from ..nn.precision import PrecisionReport
from ..nn.result import OverTimeResult, PassTiming
from ..timeunits import format_times
from .jsonfile import read_json

FORMAT = "weightprog.evaluate"
FORMAT_VERSION = 1
Json = dict[str, Any]


def _row(cls, d: Json):
    """A row dataclass from its JSON object: keys an older file lacks are None, unknown keys ignored."""
    return cls(**{f.name: d.get(f.name) for f in fields(cls)})


def _json(row) -> Json:
    return {f.name: getattr(row, f.name) for f in fields(row)}


@dataclass(frozen=True)
class SummaryRow:
    """One strategy at one time: the metric's mean and std over realisations, its 95 % interval
    (None in older files) and the weight NMSE."""

    strategy: str
    time_s: float
    time: str
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    weight_nmse_mean: float | None
    weight_nmse_std: float | None
    n: int


@dataclass(frozen=True)
class LayerNmseRow:
    strategy: str
    time_s: float
    time: str
    layer: str
    weight_nmse_mean: float | None
    weight_nmse_std: float | None


@dataclass(frozen=True)
class PairedRow:
    """Strategy − versus at one time, on the same realisations and examples."""

    strategy: str
    versus: str
    time_s: float
    time: str
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str


@dataclass(frozen=True)
class AnalogLayer:
    name: str
    kind: str
    shape: tuple[int, ...]
    matrix: tuple[int, ...]
    tiles: tuple[int, ...]
    weights: int

    @classmethod
    def from_json(cls, d: Json) -> AnalogLayer:
        return cls(d["name"], d["kind"], tuple(d["shape"]), tuple(d["matrix"]), tuple(d["tiles"]), d["weights"])

    def to_json(self) -> Json:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "matrix": list(self.matrix),
                "tiles": list(self.tiles), "weights": self.weights}


@dataclass(frozen=True)
class MappingRecord:
    """How the model was mapped onto tiles (hardware.Mapping and what it found in the model)."""

    tile_rows: int | None
    tile_cols: int | None
    normalise: str | None
    compensation: str | None
    compensation_reference: str | None
    analog_weights: int | None
    digital_params: int | None
    tiles: int | None
    layers: tuple[AnalogLayer, ...]

    @classmethod
    def from_json(cls, d: Json) -> MappingRecord:
        return cls(d.get("tile_rows"), d.get("tile_cols"), d.get("normalise"), d.get("compensation"),
                   d.get("compensation_reference"), d.get("analog_weights"), d.get("digital_params"),
                   d.get("tiles"), tuple(AnalogLayer.from_json(x) for x in d.get("layers", ())))

    def to_json(self) -> Json:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "layers"}
        return out | {"layers": [x.to_json() for x in self.layers]}


@dataclass(frozen=True)
class EvaluateRecord:
    """results.json: a model's metric over time after programming, per strategy."""

    model: str
    compute: str | None
    times: tuple[str, ...]
    seed: int | None
    times_s: tuple[float, ...]
    repeats: int | None
    metric_name: str
    higher_is_better: bool
    split: str | None
    calibrated_on: str | None
    interval_over: str | None
    """`realisations` or `realisations and examples`; None in older files (± std instead of intervals)."""
    examples: int | None
    digital_metric: float | None
    device: Json
    """The device's `describe()`."""
    periphery: Json
    mapping: MappingRecord
    device_state_bytes: int | None
    wall_time_s: float | None
    strategies: tuple[Json, ...]
    """Each strategy's JSON form (strategy.json), or a per-time description (the limit)."""
    summary: tuple[SummaryRow, ...]
    weight_nmse_per_layer: tuple[LayerNmseRow, ...]
    adc_clipping: tuple[Json, ...]
    paired: tuple[PairedRow, ...]
    limit: Json | None
    rows: tuple[Json, ...]
    """Every (strategy, realisation, time): also results.csv."""
    weightprog_version: str = __version__
    version: int = FORMAT_VERSION
    precision: PrecisionReport | None = None
    """With `--precision`: the target, the width reached and the test items per round."""
    timing: PassTiming | None = None
    """The digital pass's time against the analogue passes' (None in older files)."""

    @classmethod
    def of(cls, result: OverTimeResult, model: str, compute: str,
           precision: PrecisionReport | None = None) -> EvaluateRecord:
        return cls.from_json({"format": FORMAT, "version": __version__, "model": model, "compute": compute,
                              "times": format_times(result.times_s), **result.to_dict(),
                              **({"precision": precision.to_dict()} if precision else {})})

    @classmethod
    def from_json(cls, d: Json) -> EvaluateRecord:
        """A results.json of this version or an earlier one (every migration is here)."""
        return cls(
            d["model"], d.get("compute"), tuple(d.get("times") or format_times(d["times_s"])), d.get("seed"),
            tuple(d["times_s"]), d.get("repeats"), d.get("metric_name", "metric"), d.get("higher_is_better", True),
            d.get("split"), d.get("calibrated_on"), d.get("interval_over"), d.get("examples"),
            d.get("digital_metric"), d["device"], d.get("periphery", {}), MappingRecord.from_json(d.get("mapping", {})),
            d.get("device_state_bytes"), d.get("wall_time_s", d.get("wall_s")),  # wall_s: the older name
            tuple(d.get("strategies", ())), tuple(_row(SummaryRow, x) for x in d.get("summary", ())),
            tuple(_row(LayerNmseRow, x) for x in d.get("weight_nmse_per_layer", ())),
            tuple(d.get("adc_clipping", ())), tuple(_row(PairedRow, x) for x in d.get("paired", ())),
            d.get("limit"), tuple(d.get("rows", ())), d.get("version", "unknown"),
            precision=PrecisionReport.from_dict(d["precision"]) if d.get("precision") else None,
            timing=PassTiming.from_dict(d["timing"]) if d.get("timing") else None)

    def to_json(self) -> Json:
        """The file's object, keys in the order the command has always written them."""
        return {"format": FORMAT, "version": self.weightprog_version, "model": self.model, "compute": self.compute,
                "times": list(self.times), "seed": self.seed, "times_s": list(self.times_s), "repeats": self.repeats,
                "metric_name": self.metric_name, "higher_is_better": self.higher_is_better, "split": self.split,
                "calibrated_on": self.calibrated_on, "interval_over": self.interval_over, "examples": self.examples,
                "digital_metric": self.digital_metric, "device": self.device, "periphery": self.periphery,
                "mapping": self.mapping.to_json(), "device_state_bytes": self.device_state_bytes,
                "wall_time_s": self.wall_time_s, "strategies": list(self.strategies),
                "summary": [_json(x) for x in self.summary],
                "weight_nmse_per_layer": [_json(x) for x in self.weight_nmse_per_layer],
                "adc_clipping": list(self.adc_clipping), "paired": [_json(x) for x in self.paired],
                "limit": self.limit, "rows": list(self.rows)} | (
                    {"precision": self.precision.to_dict()} if self.precision else {}) | (
                    {"timing": self.timing.to_dict()} if self.timing else {})

    @property
    def strategy_names(self) -> list[str]:
        """The strategies in the order the summary lists them."""
        return list(dict.fromkeys(x.strategy for x in self.summary))

    def cells(self) -> list[tuple[str, list[float] | None]]:
        """(name, significance factors) of each strategy; None for one whose cell changes with time (the limit)."""
        return [(s["name"], s.get("significance")) for s in self.strategies]


def is_evaluate_file(d: Any) -> bool:
    """Whether a results.json is evaluate's (a study's results.json is another record)."""
    return isinstance(d, dict) and d.get("format") == FORMAT


def read_evaluate_record(folder: str | Path) -> EvaluateRecord:
    return EvaluateRecord.from_json(read_json(Path(folder) / "results.json"))


def write_evaluate_run(folder: str | Path, record: EvaluateRecord, result: OverTimeResult) -> list[Path]:
    """results.csv, results.json and accuracy_vs_time.png into `folder`; the paths written."""
    from ..report.nn_plots import plot_metric_vs_time  # matplotlib only when writing files

    out = Path(folder)
    paths = [out / "results.csv", out / "results.json", out / "accuracy_vs_time.png"]
    atomic_write_text(paths[0], result.to_csv())
    atomic_write_json(paths[1], record.to_json())
    plot_metric_vs_time(result, paths[2], result.metric_name)
    return paths
