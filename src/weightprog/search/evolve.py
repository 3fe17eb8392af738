"""Differential Weight Evolution: differential evolution (search/de.py) over the strategy space, run to
convergence, checkpointed every few seconds and at the end; `polish` refines a result by gradient.

The objective is the deterministic expected TNMSE (expected/), or the batched common-random-
number Monte-Carlo TNMSE (metric.py): either way a whole generation is one call. Hand-crafted
strategies (lsp-first / msp-first at every F) are seeded into the initial population, so the
search starts no worse than the best of them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..adam import Adam
from ..errors import WeightprogError
from ..expected import ExpectedTNMSE
from ..fileio import atomic_write_text
from ..metric import TNMSE
from ..progress import Event, ProgressCallback
from ..strategy import Strategy
from .de import Generations
from .lhs import latin_hypercube
from .space import StrategySpace


@dataclass
class Progress:
    """A search's state after a generation: the `detail` of its `search` progress events."""

    generation: int
    best: float
    convergence: float
    evaluations: int
    elapsed_s: float
    resumed: bool = False
    """The state a search resumes from (its checkpoint), reported once before its next generation."""


@dataclass
class EvolutionResult:
    strategy: Strategy
    x: np.ndarray
    loss: float
    """Search-sample TNMSE of the returned strategy (after polish if kept)."""
    history: list[float]
    """Best loss after each generation (generation 0 = initial population)."""
    generations: int
    evaluations: int
    wall_time_s: float
    converged: bool
    message: str
    polish: dict = field(default_factory=dict)


Objective = TNMSE | ExpectedTNMSE

CHECKPOINT_EVERY_S = 2.0
"""Seconds between a search's checkpoints (and one after its last generation): a write per
generation cost more than the generation on short runs. Resuming from an older checkpoint repeats
the generations since, which the saved random state makes identical, so results do not change."""


def population_loss(objective: Objective, grid: torch.Tensor, g: torch.Tensor, sig: torch.Tensor,
                    beta: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """(B,) time-averaged error of decoded candidates under either objective."""
    if isinstance(objective, ExpectedTNMSE):
        return objective.per_time(grid, g, sig, beta, grad=grad).mean(-1)
    return objective.per_column(grid, g, sig, beta, grad=grad).mean((1, 2))


def _objective_id(objective: Objective) -> dict:
    importance = objective.importance  # only an importance-weighted objective says so: older keys stay
    weighted = {} if importance is None else {"importance": float(importance.double().square().sum())}
    if isinstance(objective, ExpectedTNMSE):
        return {"objective": "expected", "bins": objective.bins_per_segment,
                "weights": float(objective.values.double().abs().sum()), "n": objective.values.numel(), **weighted}
    return {"seed": objective.seed, "sample": float(objective.u.double().sum()), **weighted}


def _config_key(space: StrategySpace, objective: Objective, settings: dict) -> str:
    data = {"grid": space.grid.tolist(), "pairs": space.pairs, "mode": space.mode, "dims": space.dims,
            "bounds": space.bounds(), "device": objective.device.describe(), "times": objective.times_s,
            "compensation": objective.compensation, **_objective_id(objective), **settings}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _initial_population(space: StrategySpace, size: int, seed: int) -> np.ndarray:
    """The hand-crafted corners, then points around them (the good region), then a Latin
    hypercube over the whole space (exploration)."""
    lo, hi = np.array(space.bounds()).T
    rng = np.random.default_rng(seed)
    pop = lo + latin_hypercube(space.dims, size, seed) * (hi - lo)
    f_values = range(1, int(space.f_max) + 1) if space.searches_f else [1.0]
    corners = np.array([space.encode_baseline(n, f) for f in f_values for n in ("lsp-first", "msp-first")])
    pop[: len(corners)] = corners[:size]
    near = np.arange(len(corners), size // 2)
    if near.size:
        base = corners[rng.integers(len(corners), size=near.size)]
        moved = rng.random(base.shape) < 0.3
        step = rng.normal(0.0, 0.15, base.shape) * (hi - lo)
        pop[near] = np.clip(np.where(moved, base + step, base), lo, hi)
    ints = space.integrality()
    pop[:, ints] = np.round(pop[:, ints])
    return pop


def evolve(objective: Objective, space: StrategySpace, *, seed: int = 0, popsize: int = 15,
           max_generations: int = 300, tol: float = 1e-3, budget_s: float | None = None,
           mutation=(0.5, 1.0), recombination: float = 0.7, checkpoint: str | Path | None = None,
           progress: ProgressCallback | None = None) -> EvolutionResult:
    """Minimise the objective's TNMSE over the space.

    Stops when the population's loss spread falls below `tol` × its mean (converged), after
    `max_generations`, or when `budget_s` seconds have passed. With `checkpoint`, the population,
    its losses, the random state and the history are written atomically once the initial
    population is scored, then every `CHECKPOINT_EVERY_S` seconds and after the last generation,
    and a later call with the same settings resumes from there (repeating, identically, the
    generations since the last write). `progress` receives a `search` event after each generation
    (and once where it resumes), its `detail` the search's `Progress`.
    """
    start = time.perf_counter()
    size = popsize * space.dims
    evaluations = 0

    def loss(x: np.ndarray) -> np.ndarray:  # (S, dims) -> (S,)
        nonlocal evaluations
        evaluations += x.shape[0]
        g, sig, beta = space.decode(torch.from_numpy(np.ascontiguousarray(x)))
        return population_loss(objective, space.grid, g, sig, beta).double().numpy()

    settings = {"popsize": popsize, "tol": tol, "mutation": mutation, "recombination": recombination,
                "search_seed": seed}
    key = _config_key(space, objective, settings)
    solver = Generations(loss, space.bounds(), tol=tol, mutation=mutation, recombination=recombination,
                         seed=seed, init=_initial_population(space, size, seed), integrality=space.integrality())
    history: list[float] = []
    generation = 0
    earlier_s, earlier_evaluations = 0.0, 0  # a resumed run reports the whole run's time and work
    path = Path(checkpoint) if checkpoint else None
    if path and path.is_file():
        generation, history, earlier_s, earlier_evaluations = _restore(solver, path, key)
        if progress is not None:
            progress(Event("search", (), generation, max_generations,
                           Progress(generation, history[-1], solver.convergence, earlier_evaluations, earlier_s,
                                    True)))

    saved_at, saved_generation = -float("inf"), generation if history else None

    def save(final: bool = False):
        nonlocal saved_at, saved_generation
        due = time.perf_counter() - saved_at >= CHECKPOINT_EVERY_S
        if path and generation != saved_generation and (final or due):
            saved_at, saved_generation = time.perf_counter(), generation
            state = {"key": key, "generation": generation, "history": history,
                     "wall_time_s": earlier_s + time.perf_counter() - start,
                     "evaluations": earlier_evaluations + evaluations, **solver.state()}
            # compact: json's C encoder, ~10x faster than indented output, which every generation paid
            atomic_write_text(path, json.dumps(state, allow_nan=False))

    if not history:  # generation 0: score the initial population, checkpointed and counted like
        # every other generation
        history.append(solver.score_initial())
        save()
    message = "reached the generation limit"
    while generation < max_generations:
        if solver.converged():
            message = f"converged (loss spread ≤ {tol:g} × mean)"
            break
        if budget_s is not None and time.perf_counter() - start > budget_s:
            message = f"stopped at the time budget ({budget_s:g} s)"
            break
        best = solver.step()
        generation += 1
        history.append(best)
        save()
        if progress is not None:
            progress(Event("search", (), generation, max_generations,
                           Progress(generation, best, solver.convergence, earlier_evaluations + evaluations,
                                    earlier_s + time.perf_counter() - start)))
    save(final=True)  # the last generation: a rerun into the folder finds the search done
    x = solver.x
    result = EvolutionResult(space.strategy(x, ["optimised"]), x, solver.best_loss, history, generation,
                             earlier_evaluations + evaluations, 0.0, solver.converged(), message)
    result.wall_time_s = earlier_s + time.perf_counter() - start
    return result


def _restore(solver: Generations, path: Path, key: str) -> tuple[int, list[float], float, int]:
    """(generation, history, wall time and evaluations so far) from a checkpoint."""
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightprogError(f"{path}: checkpoint unreadable ({exc}); delete it (optimize, compare-devices: "
                              f"--force) to start afresh") from None
    if state.get("key") != key:
        raise WeightprogError(f"{path}: checkpoint is from a run with other settings; use another --out, or "
                              f"delete it (optimize, compare-devices: --force) to start afresh")
    solver.restore(state)
    return (int(state["generation"]), list(state["history"]), float(state.get("wall_time_s", 0.0)),
            int(state.get("evaluations", 0)))


def polish(result: EvolutionResult, objective: Objective, held_out: Objective, space: StrategySpace,
           steps: int) -> None:
    """Adam on the continuous coordinates through the differentiable objective; kept only if the
    strategy also improves on `held_out` (for the Monte-Carlo objective: other draws, so it cannot
    overfit the search's; the deterministic expected objective may be its own referee)."""
    start = time.perf_counter()
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in zip(*space.bounds()))
    free = ~torch.from_numpy(space.integrality())
    x0 = torch.from_numpy(result.x).to(torch.float64)
    x = x0.clone().requires_grad_(True)
    opt = Adam([x], lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        g, sig, beta = space.decode(x[None])
        population_loss(objective, space.grid, g, sig, beta, grad=True).mean().backward()
        assert x.grad is not None  # set by backward(): x requires grad
        x.grad[~free] = 0.0
        opt.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    candidates = Strategy.stack([space.strategy(x0.numpy()), space.strategy(x.detach().numpy())])
    before, after = (float(v) for v in held_out(candidates))
    kept = after < before
    result.polish = {"steps": steps, "held_out_before": before, "held_out_after": after, "kept": kept,
                     "wall_time_s": time.perf_counter() - start}
    if kept:
        result.x = x.detach().numpy()
        result.strategy = space.strategy(result.x, ["optimised"])
        g, sig, beta = space.decode(torch.from_numpy(result.x)[None])
        result.loss = float(population_loss(objective, space.grid, g, sig, beta)[0])
