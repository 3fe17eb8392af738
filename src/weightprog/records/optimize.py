"""report.json of `weightprog optimize`: `OptimizeRecord`, made from an `OptimizeResult` or read
back from a file (older files included), and `write_optimize_run`, the run folder from a record."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..fileio import atomic_write_json, before_write
from ..report.palette import strategy_label
from ..scores import Scoreboard
from ..search.run import OptimizeResult
from ..select import NetworkRow, NetworkSelection
from .jsonfile import read_json
from .optimize_parts import (
    AihwkitExport,
    BoundRecord,
    BoundRow,
    CellRecord,
    ErrorSplitRecord,
    Improvement,
    LayerRow,
    Rescore,
    SearchRun,
    SettingsRecord,
)

FORMAT_VERSION = 1
"""report.json's layout (the file names no version: `from_json` reads every layout it knows)."""

Json = dict[str, Any]


def network_from_json(d: Json) -> NetworkSelection:
    """report.json's `network` (optimize --model) as the `NetworkSelection` that wrote it."""
    def row(r: Json) -> NetworkRow:
        return NetworkRow(r["strategy"], r["time_s"], r["mean"], r["ci_low"], r["ci_high"])
    return NetworkSelection(d["metric"], d["higher_is_better"], d["split"], [row(r) for r in d["rows"]],
                            d["chosen"], d.get("rule", "network"), list(d["tnmse_ranking"]),
                            list(d["network_ranking"]), [row(r) for r in d.get("limit", [])], d.get("repeats", 0),
                            d.get("interval_over", "realisations"), dict(d.get("same_as", {})))


def bound_items(report: Json, prefix: str = "", lists: bool = False) -> tuple[tuple[str, str, float], ...]:
    """Older files: (label, JSON pointer, value) of every number under a key named *bound* or gap*
    (at any depth; the settings and search histories aside; with `lists` also per-time lists of at
    most 12), whatever the run named them."""
    out = []

    def walk(x, pointer, label, inside):
        if isinstance(x, dict):
            for k, v in x.items():
                key = str(k).lower()
                walk(v, f"{pointer}/{k}", f"{label}.{k}" if label else str(k), inside or "bound" in key
                     or key.startswith("gap"))
        elif isinstance(x, list) and inside and lists and len(x) <= 12:  # per-time values, not histories
            for i, v in enumerate(x):
                walk(v, f"{pointer}/{i}", f"{label}[{i}]", inside)
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and inside:
            out.append((label, pointer, x))
    walk({k: v for k, v in report.items() if k not in ("settings", "search")}, prefix, "", False)
    return tuple(out)


@dataclass(frozen=True)
class OptimizeRecord:
    """report.json: what one `weightprog optimize` run found, re-scored, with its inputs."""

    weightprog_version: str
    device: Json
    """The device's `describe()` (name, curves, statistics)."""
    cell: CellRecord
    beta: float
    weights: str
    """Where the weights came from (`distribution:default`, a file)."""
    search_weights: int
    times_s: tuple[float, ...]
    seed: int
    settings: SettingsRecord
    wall_time_s: float
    chosen_search: str
    tnmse: Scoreboard
    improvement: Improvement | None
    rescore: Rescore | None
    search: dict[str, SearchRun]
    method: str | None = None
    """Older files: None (they searched with differential evolution only)."""
    expressible: bool | None = None
    error_split: tuple[ErrorSplitRecord, ...] = ()
    bound: BoundRecord | None = None
    gap_to_bound: dict[str, float] | None = None
    gap_to_compensated: dict[str, float] | None = None
    aihwkit_export: AihwkitExport | None = None
    network: NetworkSelection | None = None
    """optimize --model: the candidates on the network."""
    per_layer: tuple[LayerRow, ...] | None = None
    """optimize --per-layer: each layer's own strategy."""
    legacy_bounds: tuple[tuple[str, str, float], ...] = field(default=(), compare=False)
    """Older files without `bound`: (label, JSON pointer, value) of the bound-like numbers they hold."""
    legacy_bound_rows: tuple[tuple[str, str, float], ...] = field(default=(), compare=False)
    """The same with their per-time lists (`bound_items(..., lists=True)`)."""
    version: int = FORMAT_VERSION

    @classmethod
    def of(cls, result: OptimizeResult, source: str) -> OptimizeRecord:
        """The record of a run; `source` names the weights."""
        s = result.settings
        scores = result.scores
        bound, gap_b, gap_c = _bounds_of(result)
        return cls(
            __version__, result.device.describe(),
            CellRecord(result.strategy.pairs, tuple(result.strategy.significance[0].tolist())),
            float(result.strategy.beta[0]), source, result.search_weights, tuple(result.final.times_s), s.seed,
            SettingsRecord.from_json(s.to_dict()), result.wall_time_s, result.chosen, scores,
            Improvement(scores.improvement_vs_best_f1_baseline, scores.improvement_vs_best_hand_crafted),
            Rescore(s.rescore_blocks, result.search_weights * s.rescore_blocks),
            {label: SearchRun(tuple(r.history), r.generations, r.evaluations, r.loss, r.converged, r.message,
                              r.wall_time_s, r.polish) for label, r in result.runs.items()},
            result.method, result.expressible,
            tuple(ErrorSplitRecord.from_json(e.to_dict()) for e in result.error_split),
            bound, gap_b, gap_c, _aihwkit_of(result))

    def to_json(self) -> Json:
        """The file's object, keys in the order the command has always written them."""
        out: Json = {
            "weightprog_version": self.weightprog_version, "device": self.device, "cell": self.cell.to_json(),
            "beta": self.beta, "weights": self.weights, "search_weights": self.search_weights,
            "times_s": list(self.times_s), "seed": self.seed, "settings": self.settings.to_json(),
            "wall_time_s": self.wall_time_s, "chosen_search": self.chosen_search, "tnmse": self.tnmse.to_json()}
        if self.improvement is not None:
            out["improvement"] = self.improvement.to_json()
        if self.rescore is not None:
            out["rescore"] = self.rescore.to_json()
        out["search"] = {k: r.to_json() for k, r in self.search.items()}
        if self.method is not None:
            out["method"] = self.method
        if self.expressible is not None:
            out["expressible"] = self.expressible
        out["error_split"] = [e.to_json() for e in self.error_split]
        if self.bound is not None:
            out["bound"] = self.bound.to_json()
        if self.gap_to_bound is not None:
            out["gap_to_bound"] = self.gap_to_bound
        if self.gap_to_compensated is not None:
            out["gap_to_compensated"] = self.gap_to_compensated
        if self.aihwkit_export is not None:
            out["aihwkit_export"] = self.aihwkit_export.to_json()
        if self.network is not None:
            out["network"] = self.network.to_dict()
        if self.per_layer is not None:
            out["per_layer"] = [r.to_json() for r in self.per_layer]
        return out

    @classmethod
    def from_json(cls, d: Json) -> OptimizeRecord:
        """A report.json, of this version or an earlier one (every migration is here)."""
        sig = d["cell"]["significance"]
        bound = d.get("bound")
        typed = isinstance(bound, dict) and isinstance(bound.get("tnmse"), (int, float))
        return cls(
            d.get("weightprog_version", "unknown"), d["device"], CellRecord(int(d["cell"]["pairs"]), tuple(sig)),
            d.get("beta", float("nan")), str(d.get("weights", "")), d.get("search_weights", 0),
            tuple(d["times_s"]), d.get("seed", 0), SettingsRecord.from_json(d.get("settings", {})),
            d.get("wall_time_s", float("nan")), d.get("chosen_search", ""), Scoreboard.from_json(d["tnmse"]),
            Improvement(**d["improvement"]) if "improvement" in d else None,
            Rescore(**d["rescore"]) if "rescore" in d else None,
            {k: SearchRun.from_json(v) for k, v in d.get("search", {}).items()},
            d.get("method"), d.get("expressible"),
            tuple(ErrorSplitRecord.from_json(e) for e in d.get("error_split", ())),
            BoundRecord.from_json(d["bound"]) if typed else None,
            _gaps(d, "gap_to_bound"), _gaps(d, "gap_to_compensated"),
            AihwkitExport.from_json(d["aihwkit_export"]) if d.get("aihwkit_export") else None,
            network_from_json(d["network"]) if d.get("network") else None,
            tuple(LayerRow.from_json(r) for r in d["per_layer"]) if "per_layer" in d else None,
            legacy_bounds=() if typed else bound_items(d),
            legacy_bound_rows=() if typed else bound_items(d, lists=True))

    def with_network(self, network: NetworkSelection | None) -> OptimizeRecord:
        return replace(self, network=network)

    def with_layers(self, rows: list[LayerRow] | None) -> OptimizeRecord:
        return replace(self, per_layer=tuple(rows) if rows is not None else None)

    @property
    def labels(self) -> dict[str, str]:
        """Each scored strategy's label by its JSON key (`lsp_first_best` -> 'lsp-first, best F (F=2)')."""
        return {k: strategy_label(k, v) for k, v in self.tnmse.to_json().items()}

    def gap(self, which: str, key: str = "optimised") -> float | None:
        """`gap_to_bound` or `gap_to_compensated` of one strategy (None when not recorded)."""
        gaps = self.gap_to_bound if which == "gap_to_bound" else self.gap_to_compensated
        value = gaps.get(key) if isinstance(gaps, dict) else None
        return value if isinstance(value, (int, float)) else None


def _gaps(d: Json, key: str) -> dict[str, float] | None:
    """`gap_to_bound` / `gap_to_compensated` per strategy (older files wrote a lone number: in `legacy_bounds`)."""
    value = d.get(key)
    return value if isinstance(value, dict) else None


def _bounds_of(result: OptimizeResult) -> tuple[BoundRecord | None, dict[str, float] | None, dict[str, float] | None]:
    """The bound (limits per F and the lowest) and every scored strategy's gap to it: (TNMSE − limit)/limit."""
    low, comp = result.lowest_bound, result.lowest_compensated
    if low is None or comp is None:
        return None, None, None
    bound = BoundRecord(low.bound, low.f, comp.compensated, comp.f, comp.beta,
                        tuple(BoundRow.of(b) for b in result.bounds.values()))
    scored = list(result.scores.items())
    return (bound, {k: v.mean / low.bound - 1 for k, v in scored},
            {k: v.mean / comp.compensated - 1 for k, v in scored})


def _aihwkit_of(result: OptimizeResult) -> AihwkitExport | None:
    """Where strategy.aihwkit.json holds another strategy than the optimised one: which, and why."""
    note = result.aihwkit_note
    if note is None:
        return None
    name = result.aihwkit_strategy.name  # one of the other methods' strategies (`de`, `pointwise_expressible`)
    return AihwkitExport(name, result.scores.others.get(name), note)


def read_optimize_record(folder: str | Path) -> OptimizeRecord:
    """A run folder's report.json."""
    return OptimizeRecord.from_json(read_json(Path(folder) / "report.json"))


def write_optimize_run(folder: str | Path, record: OptimizeRecord, result: OptimizeResult, values: torch.Tensor,
                       sample_u: torch.Tensor, fork: bool = False) -> list[Path]:
    """report.json and the run's figures into `folder`: strategy.png (the optimised strategy over
    the density of `values`), tnmse_vs_time.png, error_distribution.png (on the search sample
    `sample_u`) and convergence.png; the paths written. `fork`: half of the figures drawn in a
    forked process beside the other half (`concurrency.beside_fork`; the same files), which the
    command line does and a library caller (a notebook's kernel, say) may not want."""
    from ..concurrency import beside_fork

    out = Path(folder)
    atomic_write_json(out / "report.json", record.to_json())
    figures = [out / name for name in ("strategy.png", "tnmse_vs_time.png", "error_distribution.png",
                                       "convergence.png")]
    for path in figures:  # listed in the run's manifest here, not by two processes at once
        before_write(path)
    times = result.settings.times_s

    def strategy_and_time() -> None:
        from ..report.optimize_plots import plot_strategy, plot_tnmse_vs_time

        cell = ",".join(f"{f:g}" for f in record.cell.significance)
        plot_strategy(result.strategy, values, out / "strategy.png",
                      f"optimised strategy, {result.device.name}, f={cell}")
        plot_tnmse_vs_time(times, record.tnmse.to_json(), out / "tnmse_vs_time.png")

    def errors_and_convergence() -> None:
        from ..report.optimize_plots import plot_convergence, plot_error_distribution

        naive, hand = result.scores.naive, result.scores.best_hand_crafted
        shown = {strategy_label("lsp_first"): result.strategy_of(naive), hand.label: result.strategy_of(hand),
                 "optimised": result.strategy}
        plot_error_distribution(shown, sample_u, result.device, times, out / "error_distribution.png",
                                seed=record.seed)
        plot_convergence({k: list(r.history) for k, r in record.search.items()}, out / "convergence.png",
                         record.chosen_search)

    if fork:
        beside_fork(errors_and_convergence, strategy_and_time)
    else:
        strategy_and_time()
        errors_and_convergence()
    return [out / "report.json", *figures]
