"""One whole optimisation: search every F, pick the best, re-score honestly.

`optimize()` is what `weightprog optimize` runs: the search over programming strategies for a
weight sample and device (on the deterministic expected TNMSE by default, or on the Monte-Carlo
TNMSE with its common random numbers, choosing among F on held-out draws), then the chosen
strategy and every hand-crafted baseline re-scored by Monte Carlo on fresh samples and fresh
draws with ten times the search's weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar, cast

import torch

from .. import validate
from ..cell import Cell
from ..concurrency import Part, in_order, quiet
from ..devices import DeviceModel, get_device
from ..error_split import ErrorSplit, error_split
from ..expected import ExpectedTNMSE, Pointwise, PointwiseResult
from ..expected.model import CHUNK
from ..expected.tables import pointwise_parts
from ..metric import TNMSE, TNMSEResult, compile_available, rescore
from ..progress import Event, ProgressCallback, within
from ..sample import WeightSample
from ..scores import Score, Scoreboard, Scored
from ..settings import OptimizeSettings
from ..strategy import Strategy
from .evolve import EvolutionResult, evolve, polish
from .space import StrategySpace, make_grid, snap_to_kinks
from .strategies import hand_crafted, is_expressible

T = TypeVar("T")

SEARCH_BINS = 4
"""Density bins per grid segment of the search's expected objective (8, the model's default, for
the limits): the search only ranks candidates, and every reported number is re-scored."""

COMPILE_ABOVE_CALLS = 10_000
"""Kernel calls (chunks of 64 candidates; populations × generation limit, over every search) above
which `compile="auto"` compiles the search's expected objective. A compiled call saves ~2.5 ms of
CPU over an eager one, while compiling costs 3–9 s of CPU even from a warm cache (benchmarks/
RESULTS.md, issue 26): the default run (~1,400 calls, 5,000 at most) is faster eager."""

@dataclass
class OptimizeResult:
    """What `optimize` found, re-scored, with the answers a report needs (scipy's `OptimizeResult`
    in spirit): the strategy, every candidate and baseline's score, the bounds, the search runs."""

    strategy: Strategy
    """The optimised strategy (named `optimised`)."""
    runs: dict[str, EvolutionResult]
    """One search per cell, keyed by its label (e.g. 'f=1,2')."""
    chosen: str
    """Label of the search run chosen on held-out draws."""
    scores: Scoreboard
    """Re-scored TNMSE of the optimised strategy, the other methods' and every hand-crafted one."""
    hand_crafted: dict[tuple[str, float], Strategy]
    """Each hand-crafted strategy scored, by (name, F)."""
    final: TNMSEResult
    """The re-score itself (optimised first, then the other methods, then the hand-crafted)."""
    wall_time_s: float
    settings: OptimizeSettings
    device: DeviceModel
    search_weights: int
    """Weights in the search's sample (the re-score uses `rescore_blocks` times as many)."""
    method: str
    """The method whose strategy was chosen (`de`, `pointwise`, or with `clip` False `pointwise_expressible`)."""
    bounds: dict[float, FBound] = field(default_factory=dict)
    """Per F: the bound and the best achievable under the deployed drift compensation."""
    candidates: dict[str, Strategy] = field(default_factory=dict)
    """What each method found (`de`, `pointwise`, `pointwise_expressible`), re-scored in `scores`."""
    export: Strategy | None = None
    """The best strategy aihwkit's CustomPairConductanceConverter can express (`strategy` itself
    unless it clips the largest weights; None when none can)."""
    error_split: list[ErrorSplit] = field(default_factory=list)
    """Expected error per time split into systematic and random parts: optimised, best hand-crafted, naive."""

    def strategy_of(self, scored: Scored) -> Strategy:
        """The strategy behind a hand-crafted score (e.g. `scores.best_hand_crafted`)."""
        return self.hand_crafted[(scored.name, scored.f)]

    @property
    def lowest_bound(self) -> FBound | None:
        """The F with the lowest bound (None when the bounds were not computed)."""
        return min(self.bounds.values(), key=lambda b: b.bound) if self.bounds else None

    @property
    def lowest_compensated(self) -> FBound | None:
        """The F with the lowest optimum under the deployed compensation (None without bounds)."""
        return min(self.bounds.values(), key=lambda b: b.compensated) if self.bounds else None

    @property
    def aihwkit_strategy(self) -> Strategy:
        """What strategy.aihwkit.json holds: `export`, or the optimised strategy when none is expressible."""
        return self.export if self.export is not None else self.strategy

    @property
    def aihwkit_note(self) -> str | None:
        """Why strategy.aihwkit.json holds another strategy than the optimised one (None when it does not)."""
        other = self.aihwkit_strategy
        if other is self.strategy:
            return None
        return (f"the optimised strategy clips the largest weights (beta {float(self.strategy.beta[0]):.1f} uS > "
                f"W_hw(1)), which CustomPairConductanceConverter cannot express; this file holds '{other.name}', "
                f"the best strategy it can")

    @property
    def expressible(self) -> bool:
        """Whether aihwkit's CustomPairConductanceConverter can express the optimised strategy."""
        return is_expressible(self.strategy)


@dataclass
class FBound:
    """For one cell (1, F, F², …): expected-error limits (expected.py, large-column limit)."""

    f: float
    bound: float
    """Lowest expected TNMSE of any mapping weight → targets, one free read-out scale per time."""
    compensated: float
    """Lowest found under the deployed drift compensation (α from calibration reads, β free)."""
    beta: float | None
    """β of that compensated optimum, µS per unit weight."""
    wall_time_s: float


def cell_label(cell: Cell) -> str:
    return "f=" + ",".join(f"{f:g}" for f in cell.significance)


def candidate_cells(settings: OptimizeSettings) -> list[Cell | None]:
    """Fixed cell; or one search per integer F; or one search with F a coordinate."""
    if settings.significance is not None:
        return [settings.significance]
    if settings.pairs == 1:
        return [Cell((1.0,))]
    if not settings.f_integer:
        return [None]
    return [Cell.with_pairs(settings.pairs, f) for f in range(1, settings.f_max + 1)]


def optimize(sample: WeightSample, values: torch.Tensor, device: DeviceModel | str = "pcm",
             settings: OptimizeSettings = OptimizeSettings(), checkpoint_dir: str | Path | None = None,
             progress: ProgressCallback | None = None, workers: int = 1,
             importance: torch.Tensor | None = None) -> OptimizeResult:
    """Search programming strategies for a weight distribution on a device, and re-score the result.

    The phases, each a function below: the search spaces (`_spaces`), the objectives
    (`_objectives`), one search per cell (`_search_cells`) with the limits per F beside them
    (`cell_limits`: they need no search), the best search on held-out draws (`_choose`) polished
    (`_polish`) beside the pointwise method's tables (`pointwise_tables`), every candidate and
    hand-crafted strategy re-scored together and looked up by name (`_rescore`), the method
    picked (`_pick`), the aihwkit export (`_export`) and the error split (`_error_splits`).

    Parameters
    ----------
    sample
        The search's weight sample (normalised weights, columns of rows).
    values
        All normalised weights: the re-score draws fresh samples from them, and the expected
        objective, the bound and the pointwise strategy use their density.
    device
        A device model, or its name or YAML/JSON file (resolved once, here).
    settings
        What to search and how (validated when made).
    checkpoint_dir
        Folder of the searches' checkpoints: a rerun with the same settings resumes there.
    progress
        Receives each search's `search` events (`Event`, named by the search's label: `f=1,2`),
        then one `phase` event as the last search ends (the polish, the rest of the bounds and the
        re-score follow).
    workers
        Threads for the independent parts: the searches with the limits per F, and the polish
        with the two pointwise tables (both only with the eager expected objective and no time
        budget; else the tables alone). The results are the same for any number; the events come
        as from one thread (`concurrency.in_order`).
    importance
        With `settings.weighting` `fisher`: one importance per value (`nn.fisher.network_fisher`),
        which the sample must carry too (`sample_from_values(values, importance=…)`); every
        objective, limit and re-score weights each weight's error by it. None for `density`.

    Returns
    -------
    OptimizeResult
        The optimised strategy, every strategy's re-scored TNMSE (`scores`), the bounds and the runs.
    """
    start = time.perf_counter()
    validate.compute_device(settings.compute)  # here, not in the settings: a sweep's driver may have no GPU
    _check_weighting(settings, sample, importance)
    device = get_device(device)
    cells = candidate_cells(settings)
    spaces = _spaces(sample, device, settings, cells)
    objective, held_out = _objectives(sample, values, device, settings, spaces, importance)
    parallel = workers if isinstance(objective, ExpectedTNMSE) and not objective.compiled \
        and settings.budget_s is None else 1  # a compiled kernel, a shared budget: one part at a time
    needs_model = settings.bound or settings.method != "de"  # the limits and the pointwise method
    model = _model(values, device, settings, importance) if needs_model else None
    # the limits need no search: they fill the threads beside the searches, and after them
    limits = [quiet(cell_limits, model, cell, settings) for cell in limit_cells(settings, cells)] if model else []
    runs, found = _search_cells(objective, settings, spaces, start, checkpoint_dir, progress, parallel, limits)
    chosen = _choose(runs, held_out)
    bounds = {b.f: b for b, _, _ in found} if settings.bound else {}
    polish_part = quiet(_polish, runs[chosen], spaces[chosen], objective, held_out, settings)
    candidates = _candidates(runs[chosen], polish_part, pointwise_tables(model, settings, found), settings,
                             parallel, workers)
    baselines = hand_crafted(settings.pairs, device, settings.f_max)
    rescored = _rescore(candidates, baselines, values, device, sample, settings, importance)
    pick = _pick(candidates, rescored.scores, settings)
    final, scores = rescored.ranked(pick)
    optimised = replace(candidates[pick], names=["optimised"])
    return OptimizeResult(optimised, runs, chosen, scores, baselines, final,
                          time.perf_counter() - start, settings, device, search_weights=sample.size, method=pick,
                          bounds=bounds, candidates=candidates,
                          export=_export(candidates, pick, optimised, rescored.scores),
                          error_split=_error_splits(model or _model(values, device, settings, importance),
                                                    optimised, baselines, scores))


# --- the phases of `optimize` ------------------------------------------------------------------------

def _check_weighting(settings: OptimizeSettings, sample: WeightSample, importance: torch.Tensor | None) -> None:
    """An importance exactly when the weighting asks for one, and in the search's sample too."""
    if settings.weighting == "density" and (importance is not None or sample.importance is not None):
        raise validate.SettingError("weighting", "density, but an importance was given: use weighting 'fisher'")
    if settings.weighting == "fisher" and (importance is None or sample.importance is None):
        raise validate.SettingError("weighting", "fisher needs each weight's importance, in `importance` and in the "
                                                 "sample (nn.fisher.network_fisher; sample_from_values(importance=…))")


def _model(values: torch.Tensor, device: DeviceModel, settings: OptimizeSettings,
           importance: torch.Tensor | None) -> ExpectedTNMSE:
    """The expected error at the model's default resolution (limits, pointwise method, error split)."""
    return ExpectedTNMSE(values, device, settings.times_s, compensation=settings.compensation, compile=False,
                         importance=importance)


def _spaces(sample: WeightSample, device: DeviceModel, settings: OptimizeSettings,
            cells: Sequence[Cell | None]) -> dict[str, StrategySpace]:
    """The space of each search, by its cell's label (e.g. 'f=1,2')."""
    base_grid = make_grid(settings.grid_points, settings.grid_placement, sample.u)
    spaces: dict[str, StrategySpace] = {}
    for cell in cells:
        grid = base_grid
        if cell is not None and settings.grid_placement == "quantile":
            grid = snap_to_kinks(base_grid, cell)
        space = StrategySpace(grid, settings.pairs, device.g_min, device.g_max, settings.mode, cell,
                              f_max=settings.f_max, f_integer=settings.f_integer)
        if settings.popsize * space.dims < 5:  # scipy's smallest population; checked before any search
            raise validate.SettingError("popsize", f"population popsize × {space.dims} dimensions must be at "
                                        f"least 5, got {settings.popsize * space.dims}")
        spaces[cell_label(cell) if cell is not None else "f=continuous"] = space
    return spaces


def compile_search(settings: OptimizeSettings, spaces: dict[str, StrategySpace]) -> bool:
    """Whether the expected objective's kernel is compiled: `compile` true or false as set; with
    `auto`, only for searches that may call it more than `COMPILE_ABOVE_CALLS` times (where
    torch.compile is available)."""
    if settings.compile != "auto":
        return bool(settings.compile)
    chunks = sum(-(-settings.popsize * space.dims // CHUNK) for space in spaces.values())
    return chunks * settings.max_generations > COMPILE_ABOVE_CALLS and compile_available()


def _objectives(sample: WeightSample, values: torch.Tensor, device: DeviceModel, settings: OptimizeSettings,
                spaces: dict[str, StrategySpace],
                importance: torch.Tensor | None) -> tuple[ExpectedTNMSE | TNMSE, ExpectedTNMSE | TNMSE]:
    """What the search minimises, and what the searches' results are compared on (held-out draws)."""
    times = settings.times_s
    if settings.objective == "expected":  # deterministic: nothing to overfit, its own referee
        model = ExpectedTNMSE(values, device, times, compensation=settings.compensation,
                              compile=compile_search(settings, spaces), bins_per_segment=SEARCH_BINS,
                              importance=importance)
        return model, model
    return (TNMSE(sample, device, times, seed=settings.seed, compensation=settings.compensation,
                  compute=settings.compute, compile=settings.compile),
            TNMSE(sample, device, times, seed=settings.seed + 1, compensation=settings.compensation,
                  compute=settings.compute, compile=False))


def _search_cells(objective: ExpectedTNMSE | TNMSE, settings: OptimizeSettings, spaces: dict[str, StrategySpace],
                  start: float, checkpoint_dir: str | Path | None, progress: ProgressCallback | None,
                  workers: int, after: Sequence[Part[T]] = ()) -> tuple[dict[str, EvolutionResult], list[T]]:
    """One differential-evolution search per space, by label, on `workers` threads; with a time
    budget (then one at a time), what is left of it shared among the searches still to run; the
    `phase` event as the last one ends. The `after` parts (quiet, independent of the searches)
    share the threads, queued behind the searches; their results come second."""
    def search(i: int, label: str, space: StrategySpace) -> Part[EvolutionResult]:
        def run(events: ProgressCallback | None) -> EvolutionResult:
            budget = None
            if settings.budget_s is not None:  # share what is left among the searches still to run
                budget = max(0.0, (settings.budget_s - (time.perf_counter() - start)) / (len(spaces) - i))
            ckpt = Path(checkpoint_dir) / f"checkpoint_{label.replace(',', '_').replace('=', '')}.json" \
                if checkpoint_dir else None
            return evolve(objective, space, seed=settings.seed, popsize=settings.popsize,
                          max_generations=settings.max_generations, tol=settings.tol, budget_s=budget,
                          checkpoint=ckpt, progress=within(events, label))
        return run

    def phase(events: ProgressCallback | None) -> None:  # passed on as the last search ends (`in_order`)
        if events is not None:  # the rest is a phase of its own, not the last search's 100 %
            events(Event("phase", ("polish, bounds and re-score",)))

    parts: list[Part] = [search(i, label, space) for i, (label, space) in enumerate(spaces.items())]
    results = in_order([*parts, phase, *after], workers, progress)
    return dict(zip(spaces, results[:len(spaces)])), results[len(spaces) + 1:]


def _candidates(chosen: EvolutionResult, polish_part: Part[None], tables: dict[str, Callable[[], Strategy]],
                settings: OptimizeSettings, parallel: int, workers: int) -> dict[str, Strategy]:
    """What each method found, by name (`de`, then the pointwise tables): the chosen search once
    `polish_part` has polished it, beside the tables on `parallel` threads (1: the polish alone,
    then the tables on `workers`)."""
    table_parts = [quiet(table) for table in tables.values()]
    if parallel > 1:
        made = in_order([polish_part, *table_parts], parallel)[1:]
    else:  # a compiled kernel or a Monte-Carlo objective: the polish alone, as its searches ran
        polish_part(None)
        made = in_order(table_parts, workers)
    candidates = {"de": replace(chosen.strategy, names=["de"])} if settings.method in ("de", "auto") else {}
    candidates.update(zip(tables, cast(list[Strategy], made)))
    return candidates


def _choose(runs: dict[str, EvolutionResult], held_out: ExpectedTNMSE | TNMSE) -> str:
    """The label of the best search on held-out draws (not the draws the search saw)."""
    labels = list(runs)
    held = held_out(Strategy.stack([runs[k].strategy for k in labels]))
    return labels[int(torch.argmin(held))]


def _polish(run: EvolutionResult, space: StrategySpace, objective: ExpectedTNMSE | TNMSE,
            held_out: ExpectedTNMSE | TNMSE, settings: OptimizeSettings) -> None:
    """The chosen search polished (only it: polishing every F costs more than the search)."""
    if settings.polish:
        polish(run, objective, held_out, space, settings.polish_steps)


Key = str | tuple[str, float]
"""A re-scored strategy: a method's name (`de`, …) or a hand-crafted one's (name, F)."""


@dataclass(frozen=True)
class _Rescored:
    """Every candidate and hand-crafted strategy re-scored together, each looked up by its key."""

    result: TNMSEResult
    keys: tuple[Key, ...]
    """The key of each row of `result`."""

    @property
    def scores(self) -> dict[Key, Score]:
        return {key: Score.of(self.result, i) for i, key in enumerate(self.keys)}

    def ranked(self, pick: str) -> tuple[TNMSEResult, Scoreboard]:
        """The re-score with `pick` first, then the other methods, then the hand-crafted; and its scoreboard."""
        row = {key: i for i, key in enumerate(self.keys)}
        others = [k for k in self.keys if isinstance(k, str) and k != pick]
        hand = [k for k in self.keys if isinstance(k, tuple)]
        ranked: list[Key] = [pick, *others, *hand]
        order = [row[k] for k in ranked]
        r = self.result
        scores = self.scores
        board = Scoreboard(scores[pick], tuple(Scored(name, f, scores[(name, f)]) for name, f in hand),
                           {n: scores[n] for n in others})
        return TNMSEResult([r.names[i] for i in order], r.times_s, r.per_column[order]), board


def _rescore(candidates: dict[str, Strategy], baselines: dict[tuple[str, float], Strategy], values: torch.Tensor,
             device: DeviceModel, sample: WeightSample, settings: OptimizeSettings,
             importance: torch.Tensor | None) -> _Rescored:
    """Monte Carlo on fresh samples (`rescore_blocks` of the search's size) and fresh draws."""
    everything = Strategy.stack(list(candidates.values()) + list(baselines.values()))
    final = rescore(everything, values, device, settings.times_s, blocks=settings.rescore_blocks,
                    size=sample.size, rows=sample.u.shape[1], seed=settings.seed + 1000,
                    compensation=settings.compensation, compute=settings.compute, compile=False,
                    importance=importance)
    return _Rescored(final, (*candidates, *baselines))


def _pick(candidates: dict[str, Strategy], scores: dict[Key, Score], settings: OptimizeSettings) -> str:
    """The method whose strategy is the optimised one: the lowest re-score among those allowed."""
    names = list(candidates)
    allowed = [n for n in names if n in ("de", "pointwise") and (settings.method == "auto" or n == settings.method)]
    if not settings.clip:  # the pointwise optimum with β tied to the largest weight competes in its place
        allowed = [n for n in allowed + ["pointwise_expressible"] if n in names and is_expressible(candidates[n])]
    return min(allowed, key=lambda n: scores[n].mean)


def _export(candidates: dict[str, Strategy], pick: str, optimised: Strategy,
            scores: dict[Key, Score]) -> Strategy | None:
    """The best strategy aihwkit's converter can express (None when none can)."""
    expressible = [n for n in candidates if is_expressible(candidates[n])]
    if not expressible:
        return None
    best = min(expressible, key=lambda n: scores[n].mean)
    return optimised if best == pick else candidates[best]


def _error_splits(model: ExpectedTNMSE, optimised: Strategy, baselines: dict[tuple[str, float], Strategy],
                  scores: Scoreboard) -> list[ErrorSplit]:
    """The expected error split of the optimised, the best hand-crafted and the naive strategy."""
    top = scores.best_hand_crafted
    shown = [optimised, replace(baselines[(top.name, top.f)], names=[top.label]),
             replace(baselines[(scores.naive.name, 1.0)], names=[scores.naive.label])]
    return [error_split(model, s)[0] for s in shown]


def limit_cells(settings: OptimizeSettings, cells: Sequence[Cell | None]) -> list[Cell]:
    """The cells whose limits are computed: every searched one (with F continuous, the integer F
    up to f_max); none where neither the bound nor the pointwise method is wanted."""
    if not settings.bound and settings.method == "de":
        return []
    fixed = [c for c in cells if c is not None]
    if len(fixed) < len(cells):  # continuous F: limits at the integer F up to f_max
        fixed = [Cell.with_pairs(settings.pairs, f) for f in range(1, int(settings.f_max) + 1)]
    return fixed


CellLimits = tuple[FBound, Pointwise, PointwiseResult]
"""A cell's limits, its pointwise solver and its compensated solution (`cell_limits`)."""


def cell_limits(model: ExpectedTNMSE, cell: Cell, settings: OptimizeSettings) -> CellLimits:
    """The bound of a cell (with `bound`) and its optimum under the deployed compensation."""
    t = time.perf_counter()
    pw = Pointwise(model, cell.significance)
    f = cell.significance[1] if cell.pairs > 1 else 1.0
    absolute = pw.solve(compensated=False) if settings.bound else None
    comp = pw.solve(compensated=True)
    return FBound(f, absolute.mean if absolute else float("nan"), comp.mean, comp.beta, time.perf_counter() - t), \
        pw, comp


def pointwise_tables(model: ExpectedTNMSE | None, settings: OptimizeSettings,
                     limits: Sequence[CellLimits]) -> dict[str, Callable[[], Strategy]]:
    """The pointwise strategies to make (free β and, for the aihwkit export, β tied to the largest
    weight), by name, at the F whose compensated optimum is lowest (`cell_limits` of
    `limit_cells`); none without the pointwise method. Each is a part, for the caller's threads."""
    if model is None or not limits or settings.method not in ("pointwise", "auto"):
        return {}
    _, pw, comp = min(limits, key=lambda limit: limit[2].mean)
    return pointwise_parts(model, pw.sig, comp)
