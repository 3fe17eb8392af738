"""The one place that touches scipy's differential-evolution internals.

The search steps scipy's `DifferentialEvolutionSolver` one generation at a time (to checkpoint,
report progress and stop on a time budget) and saves and restores its population and random
state. scipy has no public API for that, so the private names it needs live here, behind one
small class; tests/test_scipy_de.py fails loudly if a scipy release changes any of them. Needs
scipy >= 1.15 (the `rng=` keyword).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize._differentialevolution import DifferentialEvolutionSolver

PRIVATE_NAMES = ("_calculate_population_energies", "_promote_lowest_energy", "population",
                 "population_energies", "random_number_generator", "_random_population_index",
                 "convergence", "converged", "x")
"""What this module uses of the solver beyond its constructor and `next()`."""


class Generations:
    """scipy's best1bin DE (deferred updating, vectorised loss), stepped one generation at a time."""

    def __init__(self, loss: Callable[[np.ndarray], np.ndarray], bounds, *, popsize: int, tol: float,
                 mutation, recombination: float, seed: int, init: np.ndarray, integrality: np.ndarray,
                 max_generations: int):
        self._solver = DifferentialEvolutionSolver(
            loss, bounds, strategy="best1bin", maxiter=max_generations, popsize=popsize, tol=tol,
            mutation=mutation, recombination=recombination, rng=np.random.default_rng(seed), polish=False,
            init=init, integrality=integrality, vectorized=True, updating="deferred")

    def score_initial(self) -> float:
        """Score the initial population (scipy's own first step) and return the best loss."""
        s = self._solver
        s.population_energies[:] = s._calculate_population_energies(s.population)  # noqa: SLF001
        s._promote_lowest_energy()  # noqa: SLF001
        return float(s.population_energies[0])

    def step(self) -> float:
        """One generation; the best loss after it."""
        _, best = next(self._solver)
        return float(best)

    def converged(self) -> bool:
        return bool(self._solver.converged())

    @property
    def convergence(self) -> float:
        return float(self._solver.convergence)

    @property
    def x(self) -> np.ndarray:
        return self._solver.x.copy()

    @property
    def best_loss(self) -> float:
        return float(self._solver.population_energies[0])

    def state(self) -> dict:
        """JSON-able population, losses and random state (a checkpoint). The random state includes
        the index permutation scipy shuffles in place to pick mutation partners: without it a
        resumed search would not continue the interrupted one."""
        s = self._solver
        return {"population": s.population.tolist(), "energies": s.population_energies.tolist(),
                "rng": s.random_number_generator.bit_generator.state,
                "partner_index": s._random_population_index.tolist()}  # noqa: SLF001

    def restore(self, state: dict) -> None:
        s = self._solver
        s.population = np.array(state["population"])
        s.population_energies = np.array(state["energies"])
        s.random_number_generator.bit_generator.state = state["rng"]
        if "partner_index" in state:  # checkpoints written before it was kept resume close to, not exactly, the run
            s._random_population_index = np.array(state["partner_index"])  # noqa: SLF001
