"""A Latin hypercube sample, the same draws as scipy's `qmc.LatinHypercube(d, seed=seed).random(n)`
(scrambled, strength 1, no optimisation) without importing scipy.stats (0.5–0.7 s of every
`weightprog optimize`, benchmarks/RESULTS.md, issue 26); tests/test_search.py checks the bits."""

from __future__ import annotations

import numpy as np


def latin_hypercube(d: int, n: int, seed: int) -> np.ndarray:
    """(n, d) points in [0, 1)^d, one in each of the n strata of every coordinate.

    Parameters
    ----------
    d
        Dimensions.
    n
        Points.
    seed
        Seed of the `numpy.random.default_rng` that draws them.

    Returns
    -------
    numpy.ndarray
    """
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(size=(n, d))
    strata = np.tile(np.arange(1, n + 1), (d, 1))
    for row in strata:  # scipy's order of draws: the jitter, then each coordinate's shuffle
        rng.shuffle(row)
    return (strata.T - jitter) / n
