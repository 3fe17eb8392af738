"""comparison.json of `weightprog compare-devices`: `ComparisonRecord`, made from a `Comparison`
or read back from a file (older files included), and `write_comparison_run`, the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..choices import baseline_name
from ..compare import Comparison, csv_text
from ..fileio import atomic_write_json, atomic_write_text
from ..scores import Score, Scoreboard, json_key
from .jsonfile import read_json
from .optimize import SettingsRecord

FORMAT_VERSION = 1
Json = dict[str, Any]


@dataclass(frozen=True)
class DeviceScores:
    """One device: its optimised cell and β, and every strategy's re-scored TNMSE on it."""

    device: str
    model: Json
    """The device's `describe()`."""
    cell: tuple[float, ...]
    beta: float
    chosen_search: str
    wall_time_s: float
    tnmse: Scoreboard

    def to_json(self) -> Json:
        return {"device": self.device, "model": self.model, "cell": list(self.cell), "beta": self.beta,
                "chosen_search": self.chosen_search, "wall_time_s": self.wall_time_s,
                "tnmse": self.tnmse.to_json(others=False)}

    @property
    def labels(self) -> dict[str, str]:
        """Each strategy's label by its JSON key (`lsp_first_best` -> 'lsp-first, best F (F=2)')."""
        from ..report.palette import strategy_label
        return {k: strategy_label(k, v) for k, v in self.tnmse.to_json(others=False).items()}

    def naive(self, key: str) -> Score:
        """The naive baseline's score (its JSON key: `lsp_first`)."""
        return self.tnmse.baseline(baseline_name(key)).score

    @classmethod
    def from_json(cls, d: Json) -> DeviceScores:
        return cls(d["device"], d["model"], tuple(d["cell"]), d.get("beta", float("nan")), d.get("chosen_search", ""),
                   d.get("wall_time_s", 0.0), Scoreboard.from_json(d["tnmse"]))


@dataclass(frozen=True)
class RankingRecord:
    by_optimum: tuple[str, ...]
    by_naive: tuple[str, ...]
    changes: bool
    ties_by_optimum: tuple[tuple[str, str], ...]
    ties_by_naive: tuple[tuple[str, str], ...]
    sentence: str

    def to_json(self) -> Json:
        return {"by_optimum": list(self.by_optimum), "by_naive": list(self.by_naive), "changes": self.changes,
                "ties_by_optimum": [list(t) for t in self.ties_by_optimum],
                "ties_by_naive": [list(t) for t in self.ties_by_naive], "sentence": self.sentence}

    @classmethod
    def from_json(cls, d: Json) -> RankingRecord:
        return cls(tuple(d["by_optimum"]), tuple(d["by_naive"]), bool(d.get("changes", d["by_optimum"] !=
                                                                           d["by_naive"])),
                   tuple(tuple(t) for t in d.get("ties_by_optimum", ())),
                   tuple(tuple(t) for t in d.get("ties_by_naive", ())), d.get("sentence", ""))


@dataclass(frozen=True)
class ComparisonRecord:
    """comparison.json: devices scored with the same search, ranked by naive programming and by their optimum."""

    weightprog_version: str
    weights: str
    times_s: tuple[float, ...]
    settings: SettingsRecord
    naive: str
    """The naive baseline as shown: `lsp-first F=1`."""
    devices: tuple[DeviceScores, ...]
    ranking: RankingRecord
    extra: Json = field(default_factory=dict)
    """search_weights, rescore_weights (and whatever else the run added)."""
    version: int = FORMAT_VERSION

    @classmethod
    def of(cls, c: Comparison) -> ComparisonRecord:
        rows = tuple(DeviceScores(r.device, r.describe, tuple(r.cell), r.beta, r.chosen_search, r.wall_time_s,
                                  Scoreboard.from_json(r.scores.to_json(others=False)))  # what the file keeps
                     for r in c.rows)
        ranking = RankingRecord(tuple(c.by_optimum.order), tuple(c.by_naive.order), c.ranking_changes,
                                tuple(c.by_optimum.ties()), tuple(c.by_naive.ties()), c.sentence())
        return cls(__version__, c.source, tuple(c.times_s), SettingsRecord.from_json(c.settings.to_dict()),
                   f"{c.naive} F=1", rows, ranking, dict(c.extra))

    def to_json(self) -> Json:
        return {"weightprog_version": self.weightprog_version, "weights": self.weights,
                "times_s": list(self.times_s), "settings": self.settings.to_json(), "naive": self.naive,
                "devices": [d.to_json() for d in self.devices], "ranking": self.ranking.to_json(), **self.extra}

    @classmethod
    def from_json(cls, d: Json) -> ComparisonRecord:
        known = {"weightprog_version", "weights", "times_s", "settings", "naive", "devices", "ranking"}
        return cls(d.get("weightprog_version", "unknown"), str(d.get("weights", "")), tuple(d["times_s"]),
                   SettingsRecord.from_json(d.get("settings", {})), d["naive"],
                   tuple(DeviceScores.from_json(x) for x in d["devices"]), RankingRecord.from_json(d["ranking"]),
                   {k: v for k, v in d.items() if k not in known})

    @property
    def naive_key(self) -> str:
        """The naive baseline's key in each device's `tnmse`: `lsp_first` (older files: `lsp_first F=1`)."""
        return json_key(self.naive.split()[0])

    @property
    def search_weights(self) -> int | None:
        return self.extra.get("search_weights")

    @property
    def rescore_weights(self) -> int | None:
        return self.extra.get("rescore_weights")


def read_comparison_record(folder: str | Path) -> ComparisonRecord:
    return ComparisonRecord.from_json(read_json(Path(folder) / "comparison.json"))


def write_comparison_run(comparison: Comparison, out_dir: str | Path) -> list[Path]:
    """comparison.json, comparison.csv and tnmse_vs_time.png in `out_dir`, each written atomically."""
    from ..report.compare_plots import plot_compare_tnmse_vs_time

    out = Path(out_dir)
    paths = [out / "comparison.json", out / "comparison.csv", out / "tnmse_vs_time.png"]
    atomic_write_json(paths[0], ComparisonRecord.of(comparison).to_json())
    atomic_write_text(paths[1], csv_text(comparison))
    plot_compare_tnmse_vs_time(comparison, paths[2])
    return paths
