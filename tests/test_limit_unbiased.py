"""The unbiased limit mapping (issue 22): per weight value the least noise with the mean read-out
held at the weight, against the least-squares bound it departs from."""

import torch

from weightprog import load_distribution
from weightprog.error_split import error_split
from weightprog.expected import ExpectedTNMSE, Pointwise, limit_strategy
from weightprog.strategy import Strategy

VALUES = load_distribution()
TIMES = (1.0, 3.1536e7)


def _at_scale(strategy: Strategy, scale: float) -> Strategy:
    """The limit's table read as ŵ = scale·V: β = 1/scale, no compensation."""
    return Strategy(strategy.grid, strategy.conductances, strategy.significance, torch.tensor([1.0 / scale]),
                    strategy.g_min, strategy.g_max, list(strategy.names))


def test_unbiased_mapping_holds_the_mean_and_pays_little_noise():
    """Per time, the unbiased mapping reads every weight at its value on average, its error is at
    least the bound's (the bound is the minimum without the constraint) and not far above it."""
    for t in TIMES:
        model = ExpectedTNMSE(VALUES, "pcm-lowdrift", (t,))
        free = Pointwise(model, (1.0, 2.0)).solve(compensated=False)
        pw = Pointwise(model, (1.0, 2.0), unbiased=True)
        held = pw.solve(compensated=False)
        assert held.unbiased and not free.unbiased
        mean, _ = pw.stats(held.targets)
        ratio = held.scales * mean[:, 1:] / pw.u[:, None]
        big = pw.u > 0.05
        assert (ratio[big] - 1).abs().max() < 2e-3, ratio[big].flatten()
        assert free.mean <= held.mean < 1.3 * free.mean, (free.mean, held.mean)


def test_unbiased_table_has_no_systematic_error_where_the_bound_shrinks():
    """As a table (what programs a network), the unbiased mapping keeps the systematic part of its
    error near zero and its largest weight read in full; the least-squares one shrinks it."""
    model = ExpectedTNMSE(VALUES, "pcm-lowdrift", TIMES[1:])
    none = ExpectedTNMSE(VALUES, "pcm-lowdrift", TIMES[1:], compensation="none", dtype=torch.float64)
    splits = {}
    for unbiased in (False, True):
        table, sol = limit_strategy(model, (1.0, 2.0), unbiased=unbiased)
        splits[unbiased] = error_split(none, _at_scale(table, float(sol.scales[0])))[0]
        total = float(splits[unbiased].systematic[0] + splits[unbiased].random[0])
        assert abs(total - sol.mean) < 0.02 * sol.mean  # the table keeps the pointwise mapping's error
    held, free = splits[True], splits[False]
    assert float(held.systematic[0]) < 0.01 * float(held.random[0])
    assert float(free.systematic[0]) > 10 * float(held.systematic[0])
    assert abs(float(held.ratio[-1, 0]) - 1) < 5e-3 and float(free.ratio[-1, 0]) < 0.97
