"""The expected TNMSE of populations of strategies (`ExpectedTNMSE`), from the device tables
(moments.py) and the density's nodes (density.py).

A weight's hardware value W_k = Σ_d s_d r_d (devices independent) has mean Σ s_d E r_d and
variance Σ s_d² Var r_d. Drift compensation α_k = E|W_0| / E|W_k| is the large-column limit of the
per-column ratio the hardware computes (E|W| from the normal approximation of W; the finite
column of R rows adds a relative O(1/R) — measured in tests/test_expected.py), and

    TNMSE = mean_k Σ_nodes p_b·(α_k²·Var W_k + (α_k·E W_k − u_b)²)

with p_b the node's share of the weights, or of their importance (`importance`, e.g. the diagonal
Fisher information: then the sum approximates the loss increase); α always averages the density.

Everything is a torch expression: differentiable in the conductance table and β.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..devices import DeviceModel, get_device
from ..interpolation import take
from ..metric import chunks, compile_available
from ..sample import WeightSample, check_importance
from ..strategy import Strategy
from ..timeunits import DEFAULT_TIMES_S, check_times
from ..validate import SAMPLE_COMPENSATION_SCOPES, compensation_scope
from .batched import batched_errors
from .density import MAX_BIN_WIDTH, WeightBins, weight_bins
from .moments import device_moments, interpolate
from .nodes import drift_alpha, node_error, read_stats


@dataclass
class ExpectedResult:
    """Expected errors of B strategies (`ExpectedTNMSE.evaluate`).

    Parameters
    ----------
    names
        The strategies' names.
    times_s
        The T times, seconds after programming.
    per_time
        (B, T) expected NMSE at each time.
    alpha
        (B, T) drift-compensation factor at each time.
    """

    names: list[str]
    times_s: tuple[float, ...]
    per_time: torch.Tensor
    """(B, T) expected NMSE at each time."""
    alpha: torch.Tensor
    """(B, T) drift-compensation factor at each time (large-column limit)."""

    @property
    def mean(self) -> torch.Tensor:
        """(B,) expected TNMSE: the mean over times."""
        return self.per_time.mean(-1)


def signed_factors(significance: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """(B, 2P) per-device factors ±f_p/β."""
    signed = torch.repeat_interleave(significance, 2, dim=-1)
    sign = torch.tensor([1.0, -1.0], dtype=signed.dtype).repeat(signed.shape[-1] // 2)
    return signed * sign / beta.reshape(-1, 1)


def node_moments(table, signed, index, frac, prob, lookup, *, g0: float, step: float, compensation: str):
    """Mean and variance (B, N, K) of the unscaled read-out ŵ at each density node and time (K =
    reference + T), and α (B, T), for tables (B, D, 2P) and signed factors ±f_p/β (B, 2P)."""
    lo, hi = take(table, index, 1), take(table, index + 1, 1)  # (B, N, 2P)
    g = lo + (hi - lo) * frac[None, :, None]
    mean, var = read_stats(interpolate(lookup, g0, step, g), signed[:, None, :, None])  # (B, N, K)
    return mean, var, drift_alpha(mean, var, prob, compensation)


def expected_errors(table, signed, index, frac, u, prob, importance, lookup, *, g0: float, step: float,
                    compensation: str):
    """(B, T) expected errors and α (B, T) for tables (B, D, 2P) and signed factors ±f_p/β (B, 2P)
    on density nodes (index, frac, u, prob, importance: `WeightBins`) — plain torch,
    differentiable, fusable by torch.compile."""
    mean, var, alpha = node_moments(table, signed, index, frac, prob, lookup, g0=g0, step=step,
                                    compensation=compensation)
    err = node_error(mean[..., 1:], var[..., 1:], alpha[:, None, :], u[None, :, None])
    return (importance[None, :, None] * err).sum(1), alpha


CHUNK = 64
"""Strategies per call of the compiled kernel, by default."""

EAGER_CHUNK = 144
"""Strategies per call of the eager kernel, by default: its rows are the candidates (batched.py),
so larger chunks run faster, up to about half a population of the default search (285)."""


class ExpectedTNMSE:
    """Expected TNMSE of populations of strategies for a weight density and device.

    >>> model = ExpectedTNMSE(load_distribution(), "pcm")
    >>> model(baseline("lsp-first", Cell((1, 2))))          # (1,) expected TNMSE

    Parameters
    ----------
    values
        Normalised weights in [−1, 1] (or a `WeightSample`, whose values and importance are used):
        the density.
    device
        A `DeviceModel` or a name/file for `get_device`.
    times_s
        Seconds after programming at which the error is averaged.
    compensation
        Drift-compensation scope: `column`, `layer` or `none` (`validate.SAMPLE_COMPENSATION_SCOPES`;
        `all` is read as `layer`). `column` and `layer` give the same α here: both are the
        large-column limit.
    bins_per_segment
        Quantile bins of |u| per segment of a strategy's grid.
    table_points
        Conductances at which the device's read moments are tabulated.
    dtype
        Torch dtype of the evaluation (float32; float64 for checks).
    compile
        Fuse the kernel with `torch.compile`: True, False or `auto`.
    chunk
        Strategies per kernel call (None: `CHUNK` compiled, `EAGER_CHUNK` eager).
    importance
        One non-negative number per value: each weight's error counts by it (e.g. its diagonal
        Fisher information, `nn.fisher`); None: every weight alike (the density).

    Raises
    ------
    WeightprogError
        For an unknown device or compensation scope, bad times, or an importance not one
        non-negative number per value.
    """

    def __init__(self, values: torch.Tensor | WeightSample, device: DeviceModel | str = "pcm",
                 times_s: Sequence[float] = DEFAULT_TIMES_S, compensation: str = "column",
                 bins_per_segment: int = 8, table_points: int = 2049, dtype=torch.float32,
                 compile: bool | str = False, chunk: int | None = None, importance: torch.Tensor | None = None):
        compensation = compensation_scope(compensation, allowed=SAMPLE_COMPENSATION_SCOPES)
        if isinstance(values, WeightSample):
            importance = values.flat_importance()
            values = values.values()
        self.values = values.reshape(-1).detach().to(torch.float32)
        self.importance = None if importance is None else check_importance(importance, self.values, "importance")
        self.device = get_device(device)
        self.times_s = check_times(times_s)
        self.compensation = compensation
        self.bins_per_segment = int(bins_per_segment)
        self.dtype = dtype
        self.moments = device_moments(self.device, self.times_s, table_points)
        self.lookup = self.moments.lookup_table(dtype)
        self.columns = self.moments.lookup_columns(dtype)  # the eager kernel's (batched.py)
        self.g0, self.step = float(self.moments.g[0]), self.moments.step
        self._bins: dict[tuple, WeightBins] = {}
        self._nodes: dict[tuple, WeightBins] = {}
        self.compiled = compile is True or (compile == "auto" and compile_available())
        self.chunk = int(chunk) if chunk is not None else CHUNK if self.compiled else EAGER_CHUNK

        def kernel(table, signed, index, frac, u, prob, importance, lookup):
            return expected_errors(table, signed, index, frac, u, prob, importance, lookup, g0=self.g0,
                                   step=self.step, compensation=compensation)

        def eager(table, signed, index, frac, u, prob, importance, _lookup):  # the same bits, faster
            return batched_errors(table, signed, index, frac, u, prob, importance, self.columns, g0=self.g0,
                                  step=self.step, compensation=compensation)
        self._kernel = torch.compile(kernel, dynamic=False) if self.compiled else eager

    def nodes(self, grid: torch.Tensor, per_segment: int) -> WeightBins:
        """`weight_bins` of the density for a grid, computed once per grid and bin count (the
        pointwise solver of every F asks for the same)."""
        key = (tuple(grid.tolist()), int(per_segment))
        if key not in self._nodes:  # two threads may both compute it: the same nodes either way
            self._nodes[key] = weight_bins(self.values, grid.double(), per_segment, importance=self.importance)
        return self._nodes[key]

    def bins(self, grid: torch.Tensor) -> WeightBins:
        """The density's nodes for a grid, padded with empty nodes to a size fixed by the grid's
        length (so every grid of a search shares one compiled kernel)."""
        key = tuple(grid.tolist())
        if key not in self._bins:
            bins = self.nodes(grid, self.bins_per_segment)
            segments = grid.numel() - 1
            size = 2 * (self.bins_per_segment * segments + math.ceil(1 / MAX_BIN_WIDTH) + segments)
            pad = max(0, size - bins.u.numel())
            zeros = torch.zeros(pad, dtype=torch.float64)
            self._bins[key] = WeightBins(torch.cat([bins.u, zeros]), torch.cat([bins.prob, zeros]),
                                         torch.cat([bins.importance, zeros]),
                                         torch.cat([bins.index, torch.zeros(pad, dtype=torch.long)]),
                                         torch.cat([bins.frac, zeros]))
        return self._bins[key]

    def per_time(self, grid: torch.Tensor, conductances: torch.Tensor, significance: torch.Tensor,
                 beta: torch.Tensor, with_alpha: bool = False, grad: bool = False):
        """Expected errors per time of a population given as tensors (what the search calls).

        It runs on the caller's torch threads; its chunks are small, so one thread is fastest, and
        the float32 sums round differently with another thread count (benchmarks/RESULTS.md).

        Parameters
        ----------
        grid, conductances, significance, beta
            The population, as for `TNMSE.per_column`: grid (D,), tables (B, D, 2P) µS,
            factors (B, P), β (B,).
        with_alpha
            Also return the drift-compensation factors.
        grad
            Eager and differentiable in conductances and beta instead of chunked under no_grad.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            (B, T) expected errors; with `with_alpha`, (errors, α (B, T)).
        """
        dt = self.dtype
        bins = self.bins(grid)
        nodes = (bins.index, bins.frac.to(dt), bins.u.to(dt), bins.prob.to(dt), bins.importance.to(dt),
                 self.lookup)
        table = conductances.to(dt)
        signed = signed_factors(significance.to(dt), beta.to(dt))
        if grad:
            err, alpha = expected_errors(table, signed, *nodes, g0=self.g0, step=self.step,
                                         compensation=self.compensation)
            return (err, alpha) if with_alpha else err
        errs, alphas = [], []
        with torch.no_grad():
            for t, sg, n in chunks(table, signed, self.chunk, pad=self.compiled):
                err, alpha = self._kernel(t, sg, *nodes)
                errs.append(err[:n])
                alphas.append(alpha[:n])
        err, alpha = torch.cat(errs), torch.cat(alphas)
        return (err, alpha) if with_alpha else err

    def evaluate(self, strategy: Strategy) -> ExpectedResult:
        """Expected error per time and α of each strategy of a batch.

        Parameters
        ----------
        strategy
            One strategy or a population, within the device's range.

        Returns
        -------
        ExpectedResult

        Raises
        ------
        WeightprogError
            When a target conductance lies outside the device range.
        """
        strategy.check_range(self.device.g_min, self.device.g_max)
        with torch.no_grad():
            err, alpha = self.per_time(strategy.grid, strategy.conductances, strategy.significance,
                                       strategy.beta, with_alpha=True)
        return ExpectedResult(list(strategy.names), self.times_s, err.double(), alpha.double())

    def __call__(self, strategy: Strategy) -> torch.Tensor:
        """(B,) expected TNMSE of each strategy in the batch: `evaluate(strategy).mean`."""
        return self.evaluate(strategy).mean
