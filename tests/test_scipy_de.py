"""scipy's differential-evolution internals that the search steps (search/scipy_de.py): this fails
loudly, naming what changed, when a scipy release moves them."""

import json

import numpy as np
import scipy
from scipy.optimize._differentialevolution import DifferentialEvolutionSolver

from weightprog.search.scipy_de import PRIVATE_NAMES, Generations


def test_the_private_names_exist():
    solver = DifferentialEvolutionSolver(lambda x: (x ** 2).sum(0), [(-1, 1)] * 2, vectorized=True,
                                         updating="deferred", rng=np.random.default_rng(0), polish=False)
    missing = [n for n in PRIVATE_NAMES if not hasattr(solver, n)]
    assert not missing, f"scipy {scipy.__version__} lacks {missing}: update weightprog/search/scipy_de.py"


def _quadratic(seed=0, generations=60):
    target = np.array([0.3, -0.2, 0.5])

    def loss(x):
        return ((x - target[:, None]) ** 2).sum(0)  # vectorised: (dims, S) -> (S,)

    init = np.random.default_rng(seed).uniform(-1, 1, (30, 3))
    return target, Generations(loss, [(-1, 1)] * 3, popsize=10, tol=1e-8, mutation=(0.5, 1.0),
                               recombination=0.7, seed=seed, init=init, integrality=np.zeros(3, bool),
                               max_generations=generations)


def test_generations_minimise_and_a_restored_state_continues_identically():
    target, de = _quadratic()
    first = de.score_initial()
    for _ in range(20):
        de.step()
    saved = json.loads(json.dumps(de.state()))  # through JSON, as a checkpoint is
    after = [de.step() for _ in range(20)]
    assert after[-1] < first and np.allclose(de.x, target, atol=0.05)
    _, again = _quadratic()
    again.restore(saved)
    assert [again.step() for _ in range(20)] == after  # same population and random state: same run
    assert again.convergence >= 0 and isinstance(again.converged(), bool)
