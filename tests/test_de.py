"""The differential evolution the searches step (search/de.py)."""

import json

import numpy as np
import pytest

from weightprog.search.de import Generations

TARGET = np.array([0.3, -0.2, 0.5])


def _sphere(x):
    return ((x - TARGET) ** 2).sum(1)  # vectorised: (S, dims) -> (S,)


def _solver(loss=_sphere, seed=0, dims=3, size=30, integrality=None, tol=1e-8, bounds=(-1, 1)):
    init = np.random.default_rng(seed).uniform(*bounds, (size, dims))
    ints = np.zeros(dims, bool) if integrality is None else integrality
    return Generations(loss, [bounds] * dims, tol=tol, mutation=(0.5, 1.0), recombination=0.7, seed=seed,
                       init=init, integrality=ints)


def test_it_minimises_and_a_restored_state_continues_identically():
    de = _solver()
    first = de.score_initial()
    for _ in range(20):
        de.step()
    saved = json.loads(json.dumps(de.state()))  # through JSON, as a checkpoint is
    after = [de.step() for _ in range(40)]
    assert after[-1] < 1e-4 * first and np.allclose(de.x, TARGET, atol=0.01)
    again = _solver()
    again.restore(saved)
    assert [again.step() for _ in range(40)] == after  # same population and random state: same run


def test_the_best_loss_never_rises_and_convergence_is_reported():
    de = _solver(lambda x: _sphere(x) + 1.0, tol=1e-3)  # relative spread: a minimum away from 0
    history = [de.score_initial()] + [de.step() for _ in range(60)]
    assert all(b <= a for a, b in zip(history, history[1:]))
    assert de.converged() and de.convergence <= 1e-3


def test_rosenbrock_reaches_its_minimum():
    def rosenbrock(x):
        return 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2

    de = _solver(rosenbrock, dims=2, size=40, bounds=(-2, 2))
    de.score_initial()
    for _ in range(300):
        de.step()
    assert np.allclose(de.x, [1.0, 1.0], atol=0.02)


def test_partners_differ_from_each_other_and_the_member():
    de = _solver(size=5)
    for _ in range(200):
        r0, r1 = de._partners(5)
        own = np.arange(5)
        assert (r0 != own).all() and (r1 != own).all() and (r0 != r1).all()


def test_integers_are_scored_and_returned_rounded_with_every_value_reachable():
    seen = set()

    def loss(x):
        seen.update(x[:, 0].tolist())
        return (x[:, 0] - 2) ** 2 + (x[:, 1] - 0.25) ** 2

    de = _solver(loss, dims=2, size=20, integrality=np.array([True, False]), bounds=(0, 3), tol=0)
    de.score_initial()
    for _ in range(60):
        de.step()
    assert seen <= {0.0, 1.0, 2.0, 3.0} and {0.0, 3.0} <= seen  # the ends as reachable as the middle
    assert de.x[0] == 2.0 and abs(de.x[1] - 0.25) < 0.01


def test_nan_losses_count_as_infinite():
    def loss(x):
        out = _sphere(x)
        out[x[:, 0] > 0.8] = np.nan
        return out

    de = _solver(loss)
    de.score_initial()
    for _ in range(30):
        de.step()
    assert np.isfinite(de.best_loss) and de.x[0] <= 0.8


def test_a_checkpoint_of_scipys_solver_resumes():
    """Checkpoints written while the search stepped scipy's solver hold its unit-cube population,
    losses and generator state (plus the partner index it shuffled, ignored): restored here, the
    search goes on from that population and keeps improving."""
    from scipy.optimize._differentialevolution import DifferentialEvolutionSolver

    init = np.random.default_rng(0).uniform(-1, 1, (30, 3))
    theirs = DifferentialEvolutionSolver(lambda x: ((x - TARGET[:, None]) ** 2).sum(0), [(-1, 1)] * 3,
                                         strategy="best1bin", popsize=10, mutation=(0.5, 1.0), recombination=0.7,
                                         rng=np.random.default_rng(0), polish=False, init=init, vectorized=True,
                                         updating="deferred")
    for _ in range(5):
        next(theirs)
    state = {"population": theirs.population.tolist(), "energies": theirs.population_energies.tolist(),
             "rng": theirs.random_number_generator.bit_generator.state,
             "partner_index": theirs._random_population_index.tolist()}  # as the old checkpoints hold it
    ours = _solver(seed=5)
    ours.restore(json.loads(json.dumps(state)))
    assert np.allclose(ours._parameters(ours.population), theirs._scale_parameters(theirs.population))
    assert ours.best_loss == pytest.approx(float(theirs.population_energies.min()))
    after = [ours.step() for _ in range(40)]
    assert after[-1] <= ours.best_loss <= float(theirs.population_energies.min()) and after[-1] < 1e-3


def test_a_population_too_small_is_refused():
    with pytest.raises(ValueError, match="S ≥ 3"):
        Generations(_sphere, [(-1, 1)] * 3, tol=0, mutation=0.5, recombination=0.7, seed=0,
                    init=np.zeros((2, 3)), integrality=np.zeros(3, bool))
