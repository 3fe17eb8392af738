"""Compare memory devices at their optimum (paper Fig. 5; issue 6 part 5).

For each device the same optimisation is run (`search.run.optimize`, same settings, same search
sample, same seeds, same cell choice and times), and the naive baselines (F = 1) and the optimised
strategy are re-scored on the same fresh draws. Devices are then ranked twice, by their naive
baseline and by their optimum; the point of the paper's Fig. 5 is that these rankings can differ
(a device better under naive programming can be worse at its optimum).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .baselines import BASELINES
from .choices import NAIVE
from .devices import DeviceModel, get_device
from .errors import WeightprogError
from .fileio import folder_lock
from .progress import ProgressCallback, within
from .sample import WeightSample
from .scores import Score, Scoreboard
from .search.run import OptimizeResult, OptimizeSettings, optimize
from .timeunits import format_times


@dataclass
class DeviceRow:
    """One device's scores (the optimised strategy and the hand-crafted ones; the other search
    methods' strategies are not kept)."""

    device: str
    describe: dict
    scores: Scoreboard
    cell: list[float]
    beta: float
    chosen_search: str
    wall_time_s: float

    def score(self, name: str) -> Score:
        """`optimised` or a hand-crafted strategy's name at F = 1."""
        return self.scores.optimised if name == "optimised" else self.scores.baseline(name).score


@dataclass
class Ranking:
    """Devices ordered best (lowest TNMSE) first by one score."""

    by: str
    order: list[str]
    means: dict[str, float]
    stderrs: dict[str, float]

    def rank_of(self, device: str) -> int:
        return self.order.index(device) + 1

    def ties(self, z: float = 2.0) -> list[tuple[str, str]]:
        """Neighbouring pairs whose difference is within z combined standard errors."""
        out = []
        for a, b in zip(self.order, self.order[1:]):
            se = (self.stderrs[a] ** 2 + self.stderrs[b] ** 2) ** 0.5
            if abs(self.means[b] - self.means[a]) <= z * se:
                out.append((a, b))
        return out


@dataclass
class Comparison:
    """Devices scored with the same search and ranked twice: by their optimum and by naive programming."""

    rows: list[DeviceRow]
    times_s: tuple[float, ...]
    naive: str
    """The F = 1 baseline the naive ranking uses (CLI spelling, e.g. `lsp-first`)."""
    by_optimum: Ranking
    by_naive: Ranking
    settings: OptimizeSettings
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ranking_changes(self) -> bool:
        return self.by_optimum.order != self.by_naive.order

    def sentence(self) -> str:
        return ranking_sentence(self.by_naive, self.by_optimum, self.naive)


def rank(means: dict[str, float], stderrs: dict[str, float] | None = None, by: str = "") -> Ranking:
    """Order devices by mean TNMSE, lowest first (ties keep the given order)."""
    if not means:
        raise WeightprogError("compare: no devices to rank")
    order = sorted(means, key=lambda d: means[d])
    return Ranking(by, order, dict(means), dict(stderrs or {d: 0.0 for d in means}))


def ranking_sentence(naive: Ranking, optimum: Ranking, naive_name: str = NAIVE) -> str:
    """Says whether the order of devices under naive programming holds at their optimum."""
    label = f"naive ({naive_name} F=1)"
    if naive.order == optimum.order:
        text = (f"The ranking does not change: {' < '.join(optimum.order)} both under {label} "
                f"programming and at their optimum.")
    else:
        moved = [d for d in optimum.order if naive.rank_of(d) != optimum.rank_of(d)]
        text = (f"The ranking changes: under {label} programming {' < '.join(naive.order)}, "
                f"at their optimum {' < '.join(optimum.order)}"
                f" ({', '.join(f'{d} {naive.rank_of(d)}→{optimum.rank_of(d)}' for d in moved)}).")
    ties = [f"{a}/{b} ({r.by})" for r in (naive, optimum) for a, b in r.ties()]
    if ties:
        text += f" Within 2 standard errors (not resolved): {', '.join(ties)}."
    return text


def check_devices(devices, naive: str = NAIVE) -> list:
    """The devices to compare, resolved (before any search or output): at least 2, no name twice,
    and a known naive baseline; else one line."""
    if naive not in BASELINES:
        raise WeightprogError(f"compare: naive strategy {naive!r} is not one of {', '.join(BASELINES)}")
    if len(devices) < 2:
        raise WeightprogError(f"compare: need at least 2 devices, got {len(devices)}")
    models = [get_device(d) for d in devices]
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise WeightprogError(f"compare: device given more than once: {', '.join(dup)}")
    return models


def compare_devices(devices: Sequence[str | DeviceModel], sample: WeightSample, values: torch.Tensor,
                    settings: OptimizeSettings = OptimizeSettings(), naive: str = NAIVE,
                    source: str = "", checkpoint_dir: str | Path | None = None,
                    progress: ProgressCallback | None = None,
                    optimizer: Callable[..., OptimizeResult] = optimize) -> Comparison:
    """Optimise each device with the same settings, sample and seeds; rank by optimum and by naive.

    Parameters
    ----------
    devices
        Two or more device names, files or models.
    sample, values
        The search's weight sample and the normalised weights the re-score draws from.
    settings
        The one search every device gets.
    naive
        The F = 1 baseline the naive ranking uses (`single-pair`, `lsp-first`, `msp-first`).
    source
        What the weights are (recorded).
    checkpoint_dir
        Folder for each device's resumable search (one subfolder per device).
    progress
        Receives each device's `optimize` events (`Event`) named inside the device: its searches
        (`("pcm", "f=1,2")`) and its phase after them.
    optimizer
        The optimisation to run per device (`optimize`; tests pass a cheaper one).

    Returns
    -------
    Comparison
    """
    models = check_devices(devices, naive)
    rows = []
    with folder_lock(checkpoint_dir, "weightprog compare-devices"):  # checked above: now it may be created
        for model in models:
            ckpt = Path(checkpoint_dir) / model.name if checkpoint_dir else None
            result = optimizer(sample, values, model, settings, checkpoint_dir=ckpt,
                               progress=within(progress, model.name))
            rows.append(DeviceRow(model.name, model.describe(), result.scores,
                                  result.strategy.significance[0].tolist(), float(result.strategy.beta[0]),
                                  result.chosen, result.wall_time_s))
    return comparison_from_rows(rows, tuple(result.final.times_s), settings, naive, source,
                                extra={"search_weights": sample.size,
                                       "rescore_weights": sample.size * settings.rescore_blocks})


def comparison_from_rows(rows: list[DeviceRow], times_s: tuple[float, ...], settings: OptimizeSettings,
                         naive: str = NAIVE, source: str = "", extra: dict | None = None) -> Comparison:
    """Rankings from already-scored rows (also for constructed numbers in tests)."""
    def ranking(name: str, by: str) -> Ranking:
        scores = {r.device: r.score(name) for r in rows}
        return rank({d: s.mean for d, s in scores.items()}, {d: s.stderr for d, s in scores.items()}, by=by)
    by_opt = ranking("optimised", "optimum")
    by_naive = ranking(naive, "naive")
    return Comparison(rows, tuple(times_s), naive, by_opt, by_naive, settings, source, extra or {})


def table_text(comparison: Comparison) -> str:
    """The printed table: one line per device, then the ranking sentence."""
    k = comparison.naive
    width = max(8, *(len(r.device) for r in comparison.rows)) + 2
    head = (f"{'device':<{width}}{'naive ' + k:>20}{'± s.e.':>10}{'best F=1':>12}{'optimised':>12}"
            f"{'± s.e.':>10}{'gain':>8}{'cell':>10}{'rank naive':>12}{'rank opt':>10}")
    lines = [head]
    for r in comparison.rows:
        naive, opt = r.score(k), r.scores.optimised
        best_f1 = r.scores.best_f1_baseline.score.mean
        lines.append(f"{r.device:<{width}}{naive.mean:20.4e}{naive.stderr:10.1e}{best_f1:12.4e}"
                     f"{opt.mean:12.4e}{opt.stderr:10.1e}{100 * opt.improvement_over(naive):7.1f}%"
                     f"{'f=' + ','.join(f'{f:g}' for f in r.cell):>10}"
                     f"{comparison.by_naive.rank_of(r.device):>12}{comparison.by_optimum.rank_of(r.device):>10}")
    lines.append(comparison.sentence())
    return "\n".join(lines)


def csv_text(comparison: Comparison) -> str:
    """Long form: one line per (device, strategy), with the TNMSE at each time."""
    labels = format_times(comparison.times_s)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["device", "strategy", "f", "tnmse", "stderr", *(f"t_{t}" for t in labels),
                *(f"stderr_{t}" for t in labels), "rank_by_optimum", "rank_by_naive"])
    for r in comparison.rows:
        for key, s in r.scores.to_json(others=False).items():
            f = s.get("f", 1) if key != "optimised" else ",".join(f"{x:g}" for x in r.cell)
            w.writerow([r.device, key, f, repr(s["mean"]), repr(s["stderr"]), *map(repr, s["per_time"]),
                        *map(repr, s.get("per_time_stderr", [0.0] * len(labels))),
                        comparison.by_optimum.rank_of(r.device), comparison.by_naive.rank_of(r.device)])
    return buf.getvalue()
