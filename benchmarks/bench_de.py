"""The differential evolution's own cost per generation: weightprog's vectorised best1bin
(search/de.py) against stepping scipy's solver the way the search did before (issue 26), on a
population the size of the main job's (popsize 15 × 19-20 dimensions) and a loss that costs nothing,
so what is timed is the evolution itself. Both in one process, interleaved; best of the rounds.

    python benchmarks/bench_de.py [--members 300] [--dims 20] [--generations 100] [--rounds 3]

scipy's solver class is private (scipy.optimize._differentialevolution): this benchmark is the only
place that still imports it.
"""

import argparse
import platform
import time

import numpy as np
from scipy.optimize._differentialevolution import DifferentialEvolutionSolver

from weightprog.search.de import Generations


def per_generation(step, generations: int) -> float:
    start = time.perf_counter()
    for _ in range(generations):
        step()
    return (time.perf_counter() - start) / generations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--dims", type=int, default=20)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    init = np.random.default_rng(0).uniform(0, 1, (args.members, args.dims))
    bounds = [(0.0, 1.0)] * args.dims
    own_s, scipy_s = [], []
    for _ in range(args.rounds):
        own = Generations(lambda x: (x * x).sum(1), bounds, tol=0.0, mutation=(0.5, 1.0), recombination=0.7,
                          seed=0, init=init, integrality=np.zeros(args.dims, bool))
        own.score_initial()
        theirs = DifferentialEvolutionSolver(lambda x: (x * x).sum(0), bounds, strategy="best1bin", maxiter=10 ** 6,
                                             popsize=15, tol=0.0, mutation=(0.5, 1.0), recombination=0.7,
                                             rng=np.random.default_rng(0), polish=False, init=init,
                                             vectorized=True, updating="deferred")
        next(theirs)  # scores the initial population, as `score_initial` does
        own_s.append(per_generation(own.step, args.generations))
        scipy_s.append(per_generation(theirs.__next__, args.generations))
    print(f"{platform.machine()} {platform.python_version()}, {args.members} members × {args.dims} dimensions, "
          f"{args.generations} generations, best of {args.rounds}")
    print(f"weightprog search/de.py: {min(own_s) * 1e3:.2f} ms a generation")
    print(f"scipy's solver, stepped: {min(scipy_s) * 1e3:.2f} ms a generation")


if __name__ == "__main__":
    main()
