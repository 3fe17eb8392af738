"""Differential evolution (best1bin, deferred updating), stepped one generation at a time.

The search needs to checkpoint, report progress and stop on a time budget between generations, so
it steps the evolution itself. This is the classic scheme scipy's `differential_evolution` runs
with `strategy="best1bin", updating="deferred", vectorized=True` (Storn & Price 1997), with every
generation's mutation, crossover and selection done as whole-population array operations: scipy
draws each member's partners in a Python loop, which cost ~14 ms a generation on the README's main
job (3.9 s of its CPU, issue 26) and needed its private names to checkpoint.

The population lives in the unit cube (each parameter mapped linearly onto its bounds), as scipy's
does, so the checkpoints written while weightprog used scipy's solver resume here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Loss = Callable[[np.ndarray], np.ndarray]
"""(S, dims) parameter vectors -> (S,) losses."""


class Generations:
    """best1bin DE: each member's trial is the best member plus a random factor times the difference
    of two other random members, crossed over binomially with the member (at least one parameter
    from the mutant), parameters that leave the bounds redrawn uniformly; after the whole
    generation is scored, each trial replaces its member when it is no worse.

    Parameters
    ----------
    loss
        Vectorised: (S, dims) parameters -> (S,) losses (NaN counts as +inf).
    bounds
        (low, high) per parameter.
    tol
        `converged` once the losses' standard deviation is at most `tol` × |their mean|.
    mutation
        The difference's factor: a number, or (low, high) to draw one per generation (dithering).
    recombination
        Probability that a parameter comes from the mutant.
    seed
        Seed of the `numpy.random.default_rng` behind every draw.
    init
        (S, dims) initial population in parameter units (S ≥ 3).
    integrality
        (dims,) True where a parameter is an integer: it is searched on [low − ½, high + ½] and
        rounded wherever it is scored or returned, so every integer gets an equal share.
    """

    def __init__(self, loss: Loss, bounds: Sequence[tuple[float, float]], *, tol: float,
                 mutation: float | tuple[float, float], recombination: float, seed: int, init: np.ndarray,
                 integrality: np.ndarray):
        lo, hi = np.asarray(bounds, dtype=float).T
        self._ints = np.asarray(integrality, dtype=bool)
        lo = np.where(self._ints, np.nextafter(lo - 0.5, np.inf), lo)
        hi = np.where(self._ints, np.nextafter(hi + 0.5, -np.inf), hi)
        self._lo, self._span = lo, hi - lo
        self._loss = loss
        self._tol = tol
        self._mutation = mutation
        self._recombination = recombination
        self._rng = np.random.default_rng(seed)
        population = np.atleast_2d(np.asarray(init, dtype=float))
        if population.shape[0] < 3 or population.shape[1] != lo.size:
            raise ValueError(f"differential evolution: init must be (S ≥ 3, {lo.size}), got {population.shape}")
        self.population = np.clip((population - lo) / np.where(self._span > 0, self._span, 1.0), 0.0, 1.0)
        self.energies = np.full(population.shape[0], np.inf)

    def _parameters(self, unit: np.ndarray) -> np.ndarray:
        """Unit-cube members -> parameters (integers rounded)."""
        p = self._lo + unit * self._span
        if self._ints.any():
            p[..., self._ints] = np.round(p[..., self._ints])
        return p

    def _score(self, unit: np.ndarray) -> np.ndarray:
        e = np.asarray(self._loss(self._parameters(unit)), dtype=float).reshape(-1)
        return np.where(np.isnan(e), np.inf, e)

    def score_initial(self) -> float:
        """Score the initial population; the best loss."""
        self.energies = self._score(self.population)
        return self.best_loss

    def _partners(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Two members per member, distinct from each other and from it."""
        rng, own = self._rng, np.arange(size)
        r0 = (own + rng.integers(1, size, size)) % size
        r1 = (own + rng.integers(1, size, size)) % size
        clash = r1 == r0
        while clash.any():  # redraw the second among the others until it differs from the first
            r1[clash] = (own[clash] + rng.integers(1, size, int(clash.sum()))) % size
            clash = r1 == r0
        return r0, r1

    def step(self) -> float:
        """One generation; the best loss after it."""
        rng, pop = self._rng, self.population
        size, dims = pop.shape
        m = self._mutation
        factor = rng.uniform(m[0], m[1]) if isinstance(m, tuple) else float(m)
        r0, r1 = self._partners(size)
        mutant = pop[int(np.argmin(self.energies))] + factor * (pop[r0] - pop[r1])
        cross = rng.random((size, dims)) < self._recombination
        cross[np.arange(size), rng.integers(0, dims, size)] = True
        trial = np.where(cross, mutant, pop)
        outside = (trial < 0.0) | (trial > 1.0)
        trial[outside] = rng.random(int(outside.sum()))
        energies = self._score(trial)
        keep = energies <= self.energies
        self.population = np.where(keep[:, None], trial, pop)
        self.energies = np.where(keep, energies, self.energies)
        return self.best_loss

    @property
    def convergence(self) -> float:
        """The losses' standard deviation over |their mean| (inf before every member is scored)."""
        e = self.energies
        if not np.isfinite(e).all():
            return float("inf")
        return float(np.std(e) / (abs(np.mean(e)) + np.finfo(float).eps))

    def converged(self) -> bool:
        e = self.energies
        return bool(np.isfinite(e).all() and np.std(e) <= self._tol * abs(np.mean(e)))

    @property
    def x(self) -> np.ndarray:
        """The best member's parameters."""
        return self._parameters(self.population[int(np.argmin(self.energies))].copy())

    @property
    def best_loss(self) -> float:
        return float(np.min(self.energies))

    def state(self) -> dict:
        """JSON-able population (unit cube), losses and random state: a checkpoint."""
        return {"population": self.population.tolist(), "energies": self.energies.tolist(),
                "rng": self._rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        """Continue from `state` (also one written by scipy's solver, whose extra keys are ignored)."""
        self.population = np.array(state["population"], dtype=float)
        self.energies = np.array(state["energies"], dtype=float)
        self._rng.bit_generator.state = state["rng"]
