"""The paper's validation study on the reference workloads (docs/MODEL.md §9, issue 5).

For each workload and device: optimise the programming strategy on the network's own normalised
weights (no inference in the loop), then evaluate {FP-trained, HWA-trained} × {naive = lsp-first
at F = 1, best hand-crafted = the baseline with the lowest re-scored TNMSE over every F,
optimised} over time with R programming realisations, and write a results table and figures.

    from weightprog.study import StudySettings, run_study
    run_study(StudySettings(workloads=("fmnist-resnet32",), repeats=3), "results/study")

Output (all written atomically): per workload `<out>/<workload>/results.json` (everything), and
across all workloads found in `<out>`: `results.csv` (one row per workload, device, variant,
strategy, time), `summary.md` (the tables), and figures in `<out>/figures/`.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import validate
from ._version import __version__
from .baselines import baseline
from .cell import Cell
from .devices import get_device
from .errors import WeightprogError
from .fileio import atomic_write_json, atomic_write_text, folder_lock
from .hardware import Mapping
from .nn import evaluate_over_time, find_analog_weights, get_periphery, gradient_weight_correlation
from .sample import normalise_matrix, sample_from_values
from .search.run import OptimizeResult, OptimizeSettings, optimize
from .timeunits import format_times

STUDY_TIMES_S = (1.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
DEFAULT_EVAL_SIZE = {"fmnist-resnet32": 1000, "ptb-lstm": 8000, "sentiment-minilm": 256}
ROLES = ("naive", "best hand-crafted", "optimised")
STUDY_PERIPHERY = "chip-8bit"
"""The study's periphery: `standard`'s 8-bit converters and noise run as chips run them (docs/NN.md)."""
SEARCH_ON = ("each", "fp")
"""Which weights a variant's strategy is searched on: its own (`each`) or the FP model's (`fp`)."""


@dataclass(frozen=True)
class StudySettings:
    """The study's settings, validated when made (one line naming the field and what is allowed)."""

    workloads: tuple[str, ...] = ("ptb-lstm", "fmnist-resnet32", "sentiment-minilm")
    devices: tuple[str, ...] = ("pcm", "pcm-lowdrift")
    variants: tuple[str, ...] = ("fp", "hwa")
    times_s: tuple[float, ...] = STUDY_TIMES_S
    repeats: int = 3
    seed: int = 0
    eval_size: dict = field(default_factory=lambda: dict(DEFAULT_EVAL_SIZE))
    periphery: str = STUDY_PERIPHERY
    max_generations: int = 15
    popsize: int = 10
    f_max: int = 4
    sample_size: int = 10_240
    polish_steps: int = 30
    compile: bool = False
    """torch.compile the search objective (pays off only for long searches)."""
    search_on: str = "each"
    """'each': one search per trained variant (on its own weights); 'fp': the FP weights' strategy for both."""

    def __post_init__(self):
        from .sample import DEFAULT_ROWS
        from .workloads import WORKLOADS

        for name in ("workloads", "devices", "variants"):
            value = getattr(self, name)
            if isinstance(value, str) or not value:
                raise validate.SettingError(name, f"a non-empty list, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for w in self.workloads:
            validate.choice(w, "workloads", WORKLOADS)
        for v in self.variants:
            validate.choice(v, "variants", ("fp", "hwa"))
        for d in self.devices:
            get_device(d)
        for w, n in self.eval_size.items():
            validate.integer(n, f"eval_size[{w}]", 1)
        validate.integer(self.repeats, "repeats", 1)
        validate.choice(self.search_on, "search_on", SEARCH_ON)
        get_periphery(self.periphery)
        validate.integer(self.sample_size, "sample_size", DEFAULT_ROWS)
        if self.sample_size % DEFAULT_ROWS:
            raise validate.SettingError("sample_size", f"must be a multiple of {DEFAULT_ROWS}, got {self.sample_size}")
        search = self.optimize_settings()  # seed, times, search sizes: OptimizeSettings' own ranges
        object.__setattr__(self, "times_s", search.times_s)

    def optimize_settings(self) -> OptimizeSettings:
        """The search each (workload, device, variant) runs."""
        return OptimizeSettings(seed=self.seed, max_generations=self.max_generations, popsize=self.popsize,
                                f_max=self.f_max, times_s=tuple(self.times_s), rescore_blocks=5,
                                polish_steps=self.polish_steps, polish=self.polish_steps > 0, compile=self.compile)


def network_values(model) -> torch.Tensor:
    """All analog weights of a model, normalised per output column as deployed, pooled."""
    vals = [normalise_matrix(w.matrix().detach().float(), "column") for w in find_analog_weights(model)]
    return torch.cat(vals)


def _tnmse_row(result: OptimizeResult) -> dict:
    scores = result.scores
    return {"optimised": scores.optimised.mean, "naive": scores.naive.score.mean,
            "best_hand_crafted": scores.best_hand_crafted.score.mean,
            "best_hand_crafted_name": scores.best_hand_crafted.label,
            "optimised_f": [float(x) for x in result.strategy.significance[0].tolist()],
            "chosen_search": result.chosen, "wall_time_s": result.wall_time_s}


def run_workload(name: str, settings: StudySettings, out: Path,
                 log: Callable[[str], None] = lambda m: None, progress: bool = False) -> dict:
    """The study of one workload on every device; writes `<out>/<name>/results.json` and figures.
    `progress`: a bar over each evaluation's realisations × times (stderr)."""
    from .report.nn_plots import plot_gradient_weight
    from .report.optimize_plots import plot_strategy
    from .report.study_plots import plot_study_metric
    from .workloads import get_workload

    start = time.perf_counter()
    fig_dir = out / "figures"
    eval_size = settings.eval_size.get(name)
    models = {v: get_workload(name, v, eval_size=eval_size) for v in settings.variants}
    meta0 = models[settings.variants[0]].metadata
    metric = meta0["metric"]
    record = {"workload": name, "metric": metric, "higher_is_better": meta0["higher_is_better"],
              "eval_size": meta0["eval_size"], "checkpoints": {v: m.metadata["checkpoint"] for v, m in models.items()},
              "devices": {}, "gradients": None}
    # gradient-weight correlation of the first variant's model (one batch)
    wl = models[settings.variants[0]]
    grads = gradient_weight_correlation(wl.model, wl.metadata["loss_fn"], seed=settings.seed)
    plot_gradient_weight(grads, fig_dir / f"{name}_gradient_weight.png")
    record["gradients"] = {"r": grads.r, "r_abs": grads.r_abs,
                           "layers": [{"name": layer.name, "r": layer.r, "r_abs": layer.r_abs}
                                      for layer in grads.layers]}
    log(f"{name}: gradient-weight correlation r={grads.r:+.3f} r(|W|)={grads.r_abs:+.3f}")
    values = {v: network_values(m.model) for v, m in models.items()}
    fp = models["fp"] if "fp" in models else get_workload(name, "fp", eval_size=eval_size)
    record["fp_digital"] = fp.evaluate_fn(fp.model)  # the criteria's reference, also when only HWA is studied
    record["settings"] = _settings_dict(settings)
    record["periphery"] = settings.periphery
    record["version"] = __version__
    record["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                         "torch": torch.__version__, "threads": torch.get_num_threads()}
    path = out / name / "results.json"
    finished = _finished_devices(path, record)
    for dev_name in settings.devices:
        if dev_name in finished:  # resume: same settings and checkpoints, this device already done
            record["devices"][dev_name] = finished[dev_name]
            log(f"{name} {dev_name}: kept from {path} (same settings and checkpoints)")
            continue
        device = get_device(dev_name)
        drec = {"device": device.describe(), "variants": {}}
        results: dict[str, OptimizeResult] = {}
        for v in settings.variants:
            src = v if settings.search_on == "each" else settings.variants[0]
            if src not in results:
                sample = sample_from_values(values[src], settings.sample_size, seed=settings.seed,
                                            source=f"{name}-{src}")
                results[src] = optimize(sample, values[src], device, settings.optimize_settings())
                found = results[src]
                log(f"{name} {dev_name} {src}: optimised ({found.chosen}) TNMSE {found.scores.optimised.mean:.3e} "
                    f"vs naive {found.scores.naive.score.mean:.3e} ({found.wall_time_s:.0f} s)")
            result = results[src]
            naive = baseline("lsp-first", Cell.with_pairs(2, 1.0), device.g_min, device.g_max)
            hand = result.strategy_of(result.scores.best_hand_crafted)
            strategies = [naive, hand, result.strategy]
            wl = models[v]
            res = evaluate_over_time(wl.model, wl.evaluate_fn, strategies, device, settings.times_s,
                                     settings.repeats, settings.seed, periphery=settings.periphery,
                                     mapping=Mapping(), progress=progress)
            mean, std = res.mean, res.std
            drec["variants"][v] = {
                "digital": res.digital, "tnmse": _tnmse_row(result), "searched_on": src,
                "strategies": {role: {"label": _label(role, s), "mean": mean[i].tolist(), "std": std[i].tolist(),
                                      "strategy": s.to_dict()}
                               for i, (role, s) in enumerate(zip(ROLES, strategies))},
                "rows": res.rows(), "wall_time_s": res.wall_time_s}
            log(f"{name} {dev_name} {v}: digital {res.digital:.4g}; {format_times(settings.times_s)[-1]}: " + ", ".join(
                f"{role} {mean[i, -1]:.4g}±{std[i, -1]:.2g}" for i, role in enumerate(ROLES)))
            plot_strategy(result.strategy, values[src], fig_dir / f"{name}_{dev_name}_{v}_strategy.png",
                          title=f"{name} ({v}) on {dev_name}: optimised strategy, F = "
                                f"{result.strategy.significance[0, -1].item():g}")
        record["devices"][dev_name] = drec
        plot_study_metric(name, metric, record["devices"][dev_name], settings.times_s,
                          settings.repeats, fig_dir / f"{name}_{dev_name}_metric_vs_time.png", dev_name,
                          record["fp_digital"])
        atomic_write_json(path, _clean(record))  # after every device, so that a rerun resumes here
    for dev_name, drec in finished.items():  # devices of the earlier run that this one did not ask for
        record["devices"].setdefault(dev_name, drec)
    record["settings"]["devices"] = list(record["devices"])
    record["wall_time_s"] = time.perf_counter() - start
    atomic_write_json(path, _clean(record))
    return record


def _settings_dict(settings: StudySettings) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()}


def _finished_devices(path: Path, record: dict) -> dict:
    """Device records of an earlier run of this workload with the same settings (the list of
    workloads and devices aside) and the same checkpoints; {} if there is none."""
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged record is recomputed, not trusted
    ignore = ("workloads", "devices")
    settings = {("search_on" if k == "optimise_on" else k): v for k, v in old.get("settings", {}).items()}
    same = ({k: v for k, v in settings.items() if k not in ignore}
            == {k: v for k, v in record["settings"].items() if k not in ignore})
    return dict(old.get("devices", {})) if same and old.get("checkpoints") == _clean(record["checkpoints"]) else {}


def _label(role: str, s) -> str:
    if role != "optimised":
        return s.name
    return "optimised (f=" + ",".join(f"{f:g}" for f in s.significance[0].tolist()) + ")"


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def collect(out: Path) -> list[dict]:
    records = []
    for p in sorted(out.glob("*/results.json")):
        try:
            records.append(json.loads(p.read_text()))
        except json.JSONDecodeError as exc:
            raise WeightprogError(f"{p}: not valid JSON ({exc})") from None
    return records


def write_tables(out: Path) -> str:
    """results.csv and summary.md across every workload in `out`; returns the markdown."""
    lines_csv = ["workload,device,variant,role,strategy,time_s,time,mean,std,repeats,fp_digital,tnmse"]
    md = []
    records = collect(out)
    for rec in records:
        times = rec["settings"]["times_s"]
        labels = format_times(times)
        better = "higher" if rec["higher_is_better"] else "lower"
        md.append(f"### {rec['workload']} ({rec['metric']}, {better} is better; {rec['eval_size']} test items, "
                  f"R = {rec['settings']['repeats']})\n")
        md.append("| device | trained | strategy | digital | " + " | ".join(labels) + " | TNMSE |")
        md.append("|---|---|---|---|" + "---|" * len(labels) + "---|")
        for dev, drec in rec["devices"].items():
            for v, vrec in drec["variants"].items():
                t = vrec["tnmse"]
                tn = {"naive": t["naive"], "best hand-crafted": t["best_hand_crafted"], "optimised": t["optimised"]}
                for role, s in vrec["strategies"].items():
                    cells = " | ".join(_fmt(m, sd) for m, sd in zip(s["mean"], s["std"]))
                    md.append(f"| {dev} | {v} | {role}: {s['label']} | {vrec['digital']:.4g} | {cells} "
                              f"| {tn[role]:.3e} |")
                    for k, (m, sd) in enumerate(zip(s["mean"], s["std"])):
                        lines_csv.append(",".join(str(x) for x in (
                            rec["workload"], dev, v, role, f"\"{s['label']}\"", times[k], labels[k], m, sd,
                            rec["settings"]["repeats"], vrec["digital"], tn[role])))
        g = rec.get("gradients") or {}
        if g:
            first = rec["settings"].get("variants", ["fp"])[0]  # the model it was computed on
            md.append(f"\nGradient–weight correlation ({first.upper()} model, one batch): r = {g['r']:+.3f}, "
                      f"r(|W|) = {g['r_abs']:+.3f}.\n")
    if records:
        md.append(criteria_table(records))
    text = "\n".join(md) + "\n"
    atomic_write_text(out / "results.csv", "\n".join(lines_csv) + "\n")
    atomic_write_text(out / "summary.md", text)
    return text


@dataclass(frozen=True)
class Curve:
    """One strategy's metric over the study's times: mean and standard deviation over realisations."""

    label: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_json(cls, d: dict) -> Curve:
        return cls(d["label"], tuple(d["mean"]), tuple(d["std"]))

    @property
    def complete(self) -> bool:
        """False where a time's metric is missing (an evaluation that failed, written as null)."""
        return None not in self.mean


@dataclass(frozen=True)
class Criterion:
    """The issue's check for one workload, device and trained variant, at the last time point."""

    workload: str
    device: str
    variant: str
    higher_is_better: bool
    repeats: int
    fp_digital: float
    naive: Curve
    hand_crafted: Curve
    optimised: Curve

    @property
    def gap_to_digital(self) -> float:
        """Optimised at the last time vs the FP model's digital metric: points (accuracy, as a
        fraction) or relative change (perplexity)."""
        last = self.optimised.mean[-1]
        return last - self.fp_digital if self.higher_is_better else last / self.fp_digital - 1

    def _differences(self) -> tuple[list[float], list[float]]:
        sign = 1 if self.higher_is_better else -1
        diffs = [sign * (o - n) for o, n in zip(self.optimised.mean, self.naive.mean)]
        se = [math.sqrt((so ** 2 + sn ** 2) / self.repeats) for so, sn in zip(self.optimised.std, self.naive.std)]
        return diffs, se

    @property
    def times_at_least_naive(self) -> int:
        """At how many times optimised is at least as good as naive."""
        return sum(d >= 0 for d in self._differences()[0])

    @property
    def times_worse_than_naive(self) -> int:
        """At how many times optimised is worse than naive by more than 2 standard errors of the difference."""
        diffs, se = self._differences()
        return sum(d < -2 * e for d, e in zip(diffs, se))


def criteria(records: list[dict]) -> list[Criterion]:
    """The checks of every workload, device and trained variant in the study's records (results.json);
    variants whose naive or optimised curve is incomplete are left out."""
    out = []
    for rec in records:
        for dev, drec in rec["devices"].items():
            fp_digital = rec.get("fp_digital")  # records before it was kept: the FP variant's digital run
            if fp_digital is None:
                fp_digital = drec["variants"].get("fp", next(iter(drec["variants"].values())))["digital"]
            for v, vrec in drec["variants"].items():
                st = {role: Curve.from_json(c) for role, c in vrec["strategies"].items()}
                naive, hand, opt = st["naive"], st["best hand-crafted"], st["optimised"]
                if not (opt.complete and naive.complete):
                    continue
                out.append(Criterion(rec["workload"], dev, v, rec["higher_is_better"], rec["settings"]["repeats"],
                                     fp_digital, naive, hand, opt))
    return out


def criteria_table(records: list[dict]) -> str:
    """The issue's checks per workload, device and trained variant: the metric at the last time,
    HWA/FP + optimised there against the FP model's digital metric (accuracy: absolute points;
    perplexity: relative %), and at how many times optimised is at least as good as naive (with the
    exceptions worse by more than 2 standard errors of the difference)."""
    md = ["### Criteria at the last time point\n",
          "| workload | device | trained | FP digital | naive | best hand-crafted | optimised | "
          "optimised vs FP digital | optimised ≥ naive (worse > 2 s.e.) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for c in criteria(records):
        gap = f"{100 * c.gap_to_digital:+.1f} " + ("points" if c.higher_is_better else "%")
        naive, hand, opt = c.naive, c.hand_crafted, c.optimised
        md.append(f"| {c.workload} | {c.device} | {c.variant} | {c.fp_digital:.4g} | "
                  f"{_fmt(naive.mean[-1], naive.std[-1])} | {_fmt(hand.mean[-1], hand.std[-1])} ({hand.label}) | "
                  f"{_fmt(opt.mean[-1], opt.std[-1])} | {gap} | {c.times_at_least_naive}/{len(opt.mean)} "
                  f"({c.times_worse_than_naive}) |")
    return "\n".join(md) + "\n"


def _fmt(m, sd) -> str:
    if m is None:
        return "n/a"
    return f"{m:.4g} ± {sd:.2g}" if m < 10 else f"{m:.1f} ± {sd:.1f}"


@dataclass(frozen=True)
class StudyResult:
    """What `run_study` wrote: each workload's record (its results.json) and the criteria."""

    out: Path
    records: dict[str, dict]
    """results.json of each workload, by name."""
    summary: str
    """summary.md: the tables and the criteria."""

    @property
    def criteria(self) -> list[Criterion]:
        """The issue's checks at the last time point, per workload, device and trained variant."""
        return criteria(list(self.records.values()))


def run_study(settings: StudySettings, out: str | Path, log: Callable[[str], None] = lambda m: None,
              progress: bool = False) -> StudyResult:
    """Run (or resume) the study in `out`.

    Parameters
    ----------
    settings
        Workloads, devices, variants, times, realisations and the search's size.
    out
        The output folder (locked while the study runs): `<workload>/results.json`, figures,
        results.csv and summary.md.
    log
        Called with one line per step.
    progress
        Show a bar over each evaluation's realisations × times (stderr).

    Returns
    -------
    StudyResult
    """
    out = Path(out)
    with folder_lock(out, "weightprog study"):  # one study per folder: two would mix their records
        records = {}
        for name in settings.workloads:
            records[name] = run_workload(name, settings, out, log, progress)
        return StudyResult(out, records, write_tables(out))
