"""Searching the space of programming strategies: the space, the evolution, the whole run."""

from .evolve import EvolutionResult, Progress, evolve
from .space import GRID_PLACEMENTS, MODES, StrategySpace, make_grid

__all__ = ["EvolutionResult", "Progress", "evolve", "StrategySpace", "make_grid", "MODES",
           "GRID_PLACEMENTS"]
