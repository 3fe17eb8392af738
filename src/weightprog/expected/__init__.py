"""The expected TNMSE, computed deterministically from device moments (no sampling noise).

The Monte-Carlo metric (metric.py) draws devices; this package integrates over them:
moments.py tabulates each device's read moments from closed forms, density.py turns the weight
density into quadrature nodes, nodes.py holds the per-node formulas (read-out statistics, drift
compensation α, error) that model.py (the expected TNMSE of populations of strategies) and
pointwise.py (the pointwise optimum and the bound) share, and tables.py makes dense strategies of
pointwise solutions.
"""

from .density import MAX_BIN_WIDTH, WeightBins, weight_bins
from .model import ExpectedResult, ExpectedTNMSE, expected_errors, node_moments, signed_factors
from .moments import (
    DeviceMoments,
    clamped_read_moments,
    device_moments,
    folded_laplace,
    interpolate,
    normal_abs_mean,
)
from .nodes import drift_alpha, node_error, read_stats
from .pointwise import Iterate, Pointwise, PointwiseResult, bound
from .tables import limit_strategy, pointwise_strategies, pointwise_strategy

__all__ = [
    "MAX_BIN_WIDTH", "DeviceMoments", "ExpectedResult", "ExpectedTNMSE", "Iterate", "Pointwise",
    "PointwiseResult", "WeightBins", "bound", "clamped_read_moments", "device_moments", "drift_alpha",
    "expected_errors", "folded_laplace", "interpolate", "limit_strategy", "node_error", "node_moments",
    "normal_abs_mean", "pointwise_strategies", "pointwise_strategy", "read_stats", "signed_factors", "weight_bins",
]
