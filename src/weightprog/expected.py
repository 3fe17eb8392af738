"""The expected TNMSE, computed deterministically from device moments (no sampling noise).

The Monte-Carlo metric (metric.py) draws devices; this module integrates over them. For one device
with target g, the read at time t_k (k = 0 is the calibration read right after programming) is

    r_k = G·exp(−ν·L_k)·max(0, 1 + Q(G)·c_k·z3),   G = max(0, g + σ_p(g)·z1) (or stuck),
    ν = |μ_ν(g) + σ_ν(g)·z2|,   L_k = ln((t_k + t0)/t0),

and G, ν, z3 are independent, so its first two moments factorise:

    E r_k  = E_G[G·h1(Q(G)·c_k)] · E[exp(−L_k·ν)]
    E r_k² = E_G[G²·h2(Q(G)·c_k)] · E[exp(−2L_k·ν)]

with h1(x) = E max(0, 1 + xz) = Φ(1/x) + x·φ(1/x), h2(x) = E max(0, 1 + xz)² =
(1 + x²)·Φ(1/x) + x·φ(1/x), the folded-normal Laplace transform
E exp(−λ|X|) = e^{λ²σ²/2}(e^{−λμ}Φ(μ/σ − λσ) + e^{λμ}Φ(−μ/σ − λσ)), and E_G a Gauss–Legendre
quadrature over the part of z1 above the clamp at 0 (plus the stuck probabilities). The curves
enter only as functions, so every device kind works (pcm, tabulated presets, fitted files). These
moments are tabulated once per device and times on a fine conductance grid (`DeviceMoments`) and
interpolated linearly, which makes a candidate strategy cost a few table look-ups per weight bin.

A weight's hardware value W_k = Σ_d s_d r_d (devices independent) then has mean Σ s_d E r_d and
variance Σ s_d² Var r_d. Drift compensation α_k = E|W_0| / E|W_k| is the large-column limit of the
per-column ratio the hardware computes (E|W| from the normal approximation of W; the finite
column of R rows adds a relative O(1/R) — measured in tests/test_expected.py), and

    TNMSE = mean_k Σ_nodes p_b·(α_k²·Var W_k + (α_k·E W_k − u_b)²)

with the weight density as quantile bins of |u| inside each strategy-grid segment, two nodes per
bin matching its mean and variance (negative weights mirror positive ones exactly). Everything is
a torch expression: differentiable in the conductance table and β.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .devices import DeviceModel, get_device
from .errors import WeightprogError
from .metric import chunks, compile_available
from .sample import WeightSample
from .strategy import Strategy
from .timeunits import DEFAULT_TIMES_S, check_times
from .validate import SAMPLE_COMPENSATION_SCOPES, compensation_scope

MAX_BIN_WIDTH = 1 / 32
"""No density bin wider than this in |u| (the sparse tail of large weights gets bins of its own)."""
_SQRT2 = math.sqrt(2.0)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / _SQRT2)


def clamped_read_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E max(0, 1 + x·z) and E max(0, 1 + x·z)² for z ~ N(0, 1), x ≥ 0."""
    x = x.clamp_min(1e-12)
    a = 1.0 / x
    cdf, pdf = _cdf(a), _phi(a)
    return cdf + x * pdf, (1.0 + x * x) * cdf + x * pdf


def folded_laplace(mu: torch.Tensor, sigma: torch.Tensor, lam: float) -> torch.Tensor:
    """E exp(−λ·|X|), X ~ N(μ, σ²) (σ = 0 allowed)."""
    sigma = sigma.clamp_min(1e-12)
    ls = lam * sigma
    up = torch.exp(0.5 * ls * ls - lam * mu) * _cdf(mu / sigma - ls)
    down = torch.exp(0.5 * ls * ls + lam * mu) * _cdf(-mu / sigma - ls)
    return up + down


@dataclass
class DeviceMoments:
    """E r_k and E r_k² of one device as functions of its target, on a uniform conductance grid."""

    g: torch.Tensor
    """(N,) target conductances, µS, uniform from g_min to g_max."""
    m1: torch.Tensor
    """(N, K) mean read at each of the K = T + 1 reads (calibration read first)."""
    m2: torch.Tensor
    """(N, K) second moment of the read."""

    @property
    def step(self) -> float:
        return float(self.g[1] - self.g[0])

    def lookup_table(self, dtype=torch.float32) -> torch.Tensor:
        """(N − 1, 4K) rows for `interpolate`: [m1, var] at each knot, then their slopes to the
        next knot (the variance tabulated directly: no cancellation of m2 − m1² after interpolating)."""
        both = torch.cat([self.m1, (self.m2 - self.m1 * self.m1).clamp_min(0.0)], dim=1)
        return torch.cat([both[:-1], both[1:] - both[:-1]], 1).to(dtype).contiguous()


def interpolate(lookup: torch.Tensor, g0: float, step: float, g: torch.Tensor) -> torch.Tensor:
    """[m1, var] (…, 2K) at targets g (any shape), linear between the knots of `lookup`."""
    n = lookup.shape[0]
    pos = ((g - g0) / step).clamp(0.0, float(n))
    index = pos.detach().floor().clamp_max(n - 1)
    frac = (pos - index).unsqueeze(-1)
    rows = lookup[index.long()]
    k2 = lookup.shape[1] // 2
    return rows[..., :k2] + rows[..., k2:] * frac


def device_moments(device: DeviceModel, times_s: Sequence[float], points: int = 2049,
                   nodes: int = 96) -> DeviceMoments:
    """Tabulate the read moments of `device` at the calibration read and at `times_s`."""
    dt = torch.float64
    g = torch.linspace(device.g_min, device.g_max, points, dtype=dt)
    with torch.no_grad():
        s = device.programming_std(g).to(dt).clamp_min(0.0)
        mu_nu, sd_nu = device.drift_mean(g).to(dt), device.drift_std(g).to(dt)
    scales = [device.read_scale(0.0)] + [device.read_scale(t) for t in times_s]
    drift_logs = [0.0] + [device.drift_log(t) for t in times_s]
    # programming: G = g + s·z over z ∈ [z0, 8] with z0 the clamp at G = 0 (below it G = 0,
    # which adds nothing to either moment); Gauss–Legendre in z on that interval
    xs_np, ws_np = np.polynomial.legendre.leggauss(nodes)
    xs, ws = torch.tensor(xs_np, dtype=dt), torch.tensor(ws_np, dtype=dt)
    noisy = s > 1e-12
    z0 = torch.where(noisy, (-g / torch.where(noisy, s, torch.ones_like(s))).clamp(-8.0, 8.0),
                     torch.full_like(g, -8.0))
    half = (8.0 - z0) / 2
    z = z0[:, None] + half[:, None] * (xs[None] + 1.0)  # (N, nodes)
    wz = half[:, None] * ws[None] * _phi(z)
    wz = wz / wz.sum(1, keepdim=True) * (1.0 - _cdf(z0))[:, None]  # exact mass above the clamp
    G = (g[:, None] + s[:, None] * z).clamp_min(0.0)
    G = torch.where(noisy[:, None], G, g[:, None].expand_as(G))
    wz = torch.where(noisy[:, None], wz, torch.full_like(wz, 1.0 / nodes))
    with torch.no_grad():
        q = device.read_q(G).to(dt)
        stuck = torch.tensor([device.g_min, device.g_max], dtype=dt)
        q_stuck = device.read_q(stuck).to(dt)
    p_ok = 1.0 - device.p_stuck_min - device.p_stuck_max
    m1, m2 = [], []
    for c, lam in zip(scales, drift_logs):
        h1, h2 = clamped_read_moments(q * c)
        e1 = p_ok * (wz * G * h1).sum(1)
        e2 = p_ok * (wz * G * G * h2).sum(1)
        s1, s2 = clamped_read_moments(q_stuck * c)
        for p, gs, a1, a2 in ((device.p_stuck_min, device.g_min, s1[0], s2[0]),
                              (device.p_stuck_max, device.g_max, s1[1], s2[1])):
            if p > 0:
                e1 = e1 + p * gs * a1
                e2 = e2 + p * gs * gs * a2
        m1.append(e1 * folded_laplace(mu_nu, sd_nu, lam))
        m2.append(e2 * folded_laplace(mu_nu, sd_nu, 2.0 * lam))
    return DeviceMoments(g, torch.stack(m1, 1), torch.stack(m2, 1))


@dataclass
class WeightBins:
    """|u| as quadrature nodes: quantile bins inside each segment of a strategy grid, each bin
    two nodes ū ± sd(u | bin) with half its weight, so every function quadratic in u inside a
    bin is integrated exactly (the strategy is linear inside every segment)."""

    u: torch.Tensor
    """(N,) node values of |u|."""
    prob: torch.Tensor
    """(N,) share of the weights at each node (sums to 1)."""
    index: torch.Tensor
    """(N,) grid segment of each node."""
    frac: torch.Tensor
    """(N,) position of the node along its segment."""


def weight_bins(values: torch.Tensor, grid: torch.Tensor, per_segment: int = 8,
                max_width: float = MAX_BIN_WIDTH) -> WeightBins:
    """Bins of |values| within each grid segment: `per_segment` quantile bins of equal count, each
    further split to at most `max_width` wide (the sparse tail of large weights, where errors
    change fastest, gets bins of its own); two nodes per bin."""
    a = np.sort(values.detach().reshape(-1).abs().clamp_max(1.0).double().numpy())
    if a.size == 0:
        raise WeightprogError("expected error: no weights")
    edges = grid.detach().double().numpy()
    nodes, probs, segments = [], [], []
    for j in range(len(edges) - 1):
        lo, hi = edges[j], edges[j + 1]
        last = j == len(edges) - 2
        part = a[np.searchsorted(a, lo, "left"):np.searchsorted(a, hi, "right" if last else "left")]
        if part.size == 0:
            continue
        cuts = np.quantile(part, np.linspace(0, 1, per_segment + 1)[1:-1])
        cuts = np.union1d(cuts, np.arange(lo, hi, max_width)[1:])
        for chunk in np.split(part, np.searchsorted(part, cuts, "left")):
            if chunk.size == 0:
                continue
            mean, sd = chunk.mean(), chunk.std()
            for node in (mean - sd, mean + sd):
                nodes.append(min(max(node, lo), hi))
                probs.append(0.5 * chunk.size / a.size)
                segments.append(j)
    u = torch.tensor(nodes, dtype=torch.float64)
    index = torch.tensor(segments, dtype=torch.long)
    frac = (u - grid[index]) / (grid[index + 1] - grid[index])
    return WeightBins(u, torch.tensor(probs, dtype=torch.float64), index, frac)


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


def normal_abs_mean(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """E|X| for X ~ N(mean, var)."""
    sd = var.clamp_min(1e-30).sqrt()
    r = mean / sd
    return mean * torch.erf(r / _SQRT2) + sd * _SQRT_2_PI * torch.exp(-0.5 * r * r)


def node_moments(table, signed, index, frac, prob, lookup, *, g0: float, step: float, compensation: str):
    """Mean and variance (B, N, K) of the unscaled read-out ŵ at each density node and time (K =
    reference + T), and α (B, T), for tables (B, D, 2P) and signed factors ±f_p/β (B, 2P)."""
    lo, hi = table[:, index], table[:, index + 1]  # (B, N, 2P)
    g = lo + (hi - lo) * frac[None, :, None]
    moments = interpolate(lookup, g0, step, g)  # (B, N, 2P, 2K)
    k = moments.shape[-1] // 2
    s = signed[:, None, :, None]
    mean = (s * moments[..., :k]).sum(2)  # (B, N, K)
    var = (s * s * moments[..., k:]).sum(2)
    if compensation == "none":
        alpha = torch.ones_like(mean[:, 0, 1:])
    else:
        abs_mean = (prob[None, :, None] * normal_abs_mean(mean, var)).sum(1)  # (B, K)
        alpha = abs_mean[:, :1] / abs_mean[:, 1:].clamp_min(1e-30)
    return mean, var, alpha


def expected_errors(table, signed, index, frac, u, prob, lookup, *, g0: float, step: float,
                    compensation: str):
    """(B, T) expected errors and α (B, T) for tables (B, D, 2P) and signed factors ±f_p/β (B, 2P)
    on density nodes (index, frac, u, prob) — plain torch, differentiable, fusable by torch.compile."""
    mean, var, alpha = node_moments(table, signed, index, frac, prob, lookup, g0=g0, step=step,
                                    compensation=compensation)
    a = alpha[:, None, :]
    err = (prob[None, :, None] * (a * a * var[..., 1:] + (a * mean[..., 1:] - u[None, :, None]) ** 2)).sum(1)
    return err, alpha


class ExpectedTNMSE:
    """Expected TNMSE of populations of strategies for a weight density and device.

    >>> model = ExpectedTNMSE(load_distribution(), "pcm")
    >>> model(baseline("lsp-first", Cell((1, 2))))          # (1,) expected TNMSE

    Parameters
    ----------
    values
        Normalised weights in [−1, 1] (or a `WeightSample`, whose values are used): the density.
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
        Strategies per kernel call.

    Raises
    ------
    WeightprogError
        For an unknown device or compensation scope, or bad times.
    """

    def __init__(self, values: torch.Tensor | WeightSample, device: DeviceModel | str = "pcm",
                 times_s: Sequence[float] = DEFAULT_TIMES_S, compensation: str = "column",
                 bins_per_segment: int = 8, table_points: int = 2049, dtype=torch.float32,
                 compile: bool | str = False, chunk: int = 64):
        compensation = compensation_scope(compensation, allowed=SAMPLE_COMPENSATION_SCOPES)
        if isinstance(values, WeightSample):
            values = values.values()
        self.values = values.reshape(-1).detach().to(torch.float32)
        self.device = get_device(device)
        self.times_s = check_times(times_s)
        self.compensation = compensation
        self.bins_per_segment = int(bins_per_segment)
        self.dtype = dtype
        self.moments = device_moments(self.device, self.times_s, table_points)
        self.lookup = self.moments.lookup_table(dtype)
        self.g0, self.step = float(self.moments.g[0]), self.moments.step
        self._bins: dict[tuple, WeightBins] = {}
        self.chunk = int(chunk)
        self.compiled = compile is True or (compile == "auto" and compile_available())

        def kernel(table, signed, index, frac, u, prob, lookup):
            return expected_errors(table, signed, index, frac, u, prob, lookup, g0=self.g0,
                                   step=self.step, compensation=compensation)
        self._kernel = torch.compile(kernel, dynamic=False) if self.compiled else kernel

    def bins(self, grid: torch.Tensor) -> WeightBins:
        """The density's nodes for a grid, padded with empty nodes to a size fixed by the grid's
        length (so every grid of a search shares one compiled kernel)."""
        key = tuple(grid.tolist())
        if key not in self._bins:
            bins = weight_bins(self.values, grid.double(), self.bins_per_segment)
            segments = grid.numel() - 1
            size = 2 * (self.bins_per_segment * segments + math.ceil(1 / MAX_BIN_WIDTH) + segments)
            pad = max(0, size - bins.u.numel())
            zeros = torch.zeros(pad, dtype=torch.float64)
            self._bins[key] = WeightBins(torch.cat([bins.u, zeros]), torch.cat([bins.prob, zeros]),
                                         torch.cat([bins.index, torch.zeros(pad, dtype=torch.long)]),
                                         torch.cat([bins.frac, zeros]))
        return self._bins[key]

    def per_time(self, grid: torch.Tensor, conductances: torch.Tensor, significance: torch.Tensor,
                 beta: torch.Tensor, with_alpha: bool = False, grad: bool = False):
        """Expected errors per time of a population given as tensors (what the search calls).

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
        nodes = (bins.index, bins.frac.to(dt), bins.u.to(dt), bins.prob.to(dt), self.lookup)
        table = conductances.to(dt)
        signed = signed_factors(significance.to(dt), beta.to(dt))
        if grad:
            with single_thread():
                err, alpha = expected_errors(table, signed, *nodes, g0=self.g0, step=self.step,
                                             compensation=self.compensation)
            return (err, alpha) if with_alpha else err
        errs, alphas = [], []
        with torch.no_grad(), single_thread():  # small chunks: a second thread only synchronises
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


# --- the bound and the pointwise optimum ----------------------------------------------------------

@contextlib.contextmanager
def single_thread():
    """The pointwise minimisation is many small tensor operations: a second intra-op thread only
    adds synchronisation (on a busy 2-core machine it made it 20× slower), so it runs on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class PointwiseResult:
    """Targets chosen for each weight value on its own (no table shape imposed), and its error."""

    u: torch.Tensor
    """(N,) |u| nodes (quantile bins of the density, two nodes per bin)."""
    prob: torch.Tensor
    """(N,) share of the weights at each node."""
    targets: torch.Tensor
    """(N, 2P) device targets at each node, µS."""
    significance: tuple[float, ...]
    scales: torch.Tensor
    """(T,) read-out scale per time, 1/µS: ŵ_k = scale_k · Σ f_p (g⁺_p − g⁻_p)."""
    per_time: torch.Tensor
    """(T,) expected NMSE at each time."""
    compensated: bool
    """False: one free scale per time (the bound); True: scale = α_k/β with α_k the deployed drift
    compensation of this mapping and β free (the best achievable under that compensation)."""
    beta: float | None = None
    """With `compensated`: the mapping's β, µS of W_hw per unit weight."""

    @property
    def mean(self) -> float:
        return float(self.per_time.mean())


class Pointwise:
    """Per-node minimisation of the expected error over every mapping u → targets in
    [g_min, g_max]^(2P), for a density, device and cell (all in float64)."""

    def __init__(self, model: ExpectedTNMSE, significance: Sequence[float], bins: int = 48,
                 levels: int = 13):
        self.model, self.sig = model, tuple(float(f) for f in significance)
        self.pairs = len(self.sig)
        lookup = model.moments.lookup_table(torch.float64)
        self._at = lambda g: interpolate(lookup, model.g0, model.step, g)
        one = torch.tensor([0.0, 1.0], dtype=torch.float64)
        nodes = weight_bins(model.values, one, bins)
        self.u, self.prob = nodes.u, nodes.prob
        dev = model.device
        self.levels = torch.linspace(dev.g_min, dev.g_max, levels, dtype=torch.float64)
        self.signed = torch.tensor([s * f for f in self.sig for s in (1.0, -1.0)], dtype=torch.float64)

    # mean and variance of V_k = Σ s_d r_d (µS) for targets (…, 2P) -> (…, K) each
    def stats(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mom = self._at(g)
        k = mom.shape[-1] // 2
        mean = (self.signed[:, None] * mom[..., :k]).sum(-2)
        var = (self.signed[:, None] ** 2 * mom[..., k:]).sum(-2)
        return mean, var

    def alpha(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """(T,) deployed drift compensation of a mapping (nodes' mean/var (N, K))."""
        if self.model.compensation == "none":
            return torch.ones(mean.shape[-1] - 1, dtype=mean.dtype)
        absm = (self.prob[:, None] * normal_abs_mean(mean, var)).sum(0)
        return absm[0] / absm[1:]

    def objective(self, u: torch.Tensor, g: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """Per-node error Σ_k (a_k² E V_k² − 2 a_k u E V_k + u²)/T for targets g (N, …, 2P)."""
        mean, var = self.stats(g)
        mean, var = mean[..., 1:], var[..., 1:]
        inner = u.reshape((-1,) + (1,) * (mean.dim() - 1))
        return (scales ** 2 * (var + mean ** 2) - 2 * scales * inner * mean + inner ** 2).mean(-1)

    def errors(self, g: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(T,) expected error per time of a mapping (N, 2P) at scales (T,)."""
        mean, var = self.stats(g)
        mean, var = mean[:, 1:], var[:, 1:]
        u = self.u[:, None]
        return (self.prob[:, None] * (scales ** 2 * var + (scales * mean - u) ** 2)).sum(0)

    def best_scales(self, g: torch.Tensor, compensated: bool) -> torch.Tensor:
        mean, var = self.stats(g)
        num = (self.prob[:, None] * self.u[:, None] * mean[:, 1:]).sum(0)
        den = (self.prob[:, None] * (var[:, 1:] + mean[:, 1:] ** 2)).sum(0)
        if not compensated:
            return num / den
        alpha = self.alpha(mean, var)
        y = (alpha * num).sum() / (alpha ** 2 * den).sum()
        return alpha * y

    # --- minimisation over targets for fixed scales -------------------------------------------
    def _pair_states(self) -> torch.Tensor:
        lv = self.levels
        return torch.cartesian_prod(lv, lv)  # (S, 2): g⁺, g⁻

    def coarse(self, u: torch.Tensor, scales: torch.Tensor, starts: int = 2) -> torch.Tensor:
        """(N, starts, 2P) best targets on the level grid (every combination for P ≤ 2; block
        coordinate descent over pairs from several starts for P ≥ 3)."""
        states = self._pair_states()
        S = states.shape[0]
        if self.pairs == 1:
            obj = self.objective(u, states[None].expand(u.numel(), -1, -1), scales)
            idx = obj.topk(min(starts, S), largest=False).indices
            return states[idx]
        if self.pairs == 2:
            # objective = Σ_k a_k²(var_a + var_b + (m_a + m_b)²)/T − 2 a_k u (m_a + m_b)/T + u²
            (ma, va), (mb, vb) = (self._pair_stats(states, p) for p in range(2))
            a2 = scales ** 2 / scales.numel()
            a1 = 2 * scales / scales.numel()
            const = ((va + ma ** 2) * a2).sum(-1)[:, None] + ((vb + mb ** 2) * a2).sum(-1)[None]
            const = const + 2 * (ma * a2) @ mb.T  # (S, S)
            lin = (ma * a1).sum(-1)[:, None] + (mb * a1).sum(-1)[None]
            out = []
            for chunk in torch.split(u, 16):
                obj = const[None] - chunk[:, None, None] * lin[None]
                idx = obj.reshape(chunk.numel(), -1).topk(starts, largest=False).indices
                out.append(torch.cat([states[idx // S], states[idx % S]], -1))
            return torch.cat(out)
        return self._coordinate_descent(u, scales, starts)

    def _pair_stats(self, states: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (S, T) of pair p's share f_p·(r⁺ − r⁻) for its states (S, 2)."""
        mom = self._at(states)  # (S, 2, 2K)
        k = mom.shape[-1] // 2
        f = self.sig[p]
        return (f * (mom[:, 0, 1:k] - mom[:, 1, 1:k]), f * f * (mom[:, 0, k + 1:] + mom[:, 1, k + 1:]))

    def _coordinate_descent(self, u, scales, starts):
        states = self._pair_states()
        n, S, P = u.numel(), states.shape[0], self.pairs
        rng = torch.Generator().manual_seed(0)
        g = self.levels[torch.randint(len(self.levels), (n, starts, 2 * P), generator=rng)]
        g[:, 0] = self.levels[0]
        for _ in range(4):
            for p in range(P):
                trial = g[:, :, None, :].expand(n, starts, S, 2 * P).clone()
                trial[..., 2 * p:2 * p + 2] = states
                obj = self.objective(u, trial, scales)  # (n, starts, S)
                best = obj.argmin(-1)
                g[..., 2 * p:2 * p + 2] = states[best]
        return g

    def refine(self, u: torch.Tensor, g: torch.Tensor, scales: torch.Tensor, rounds: int = 18,
               first_step: float | None = None) -> torch.Tensor:
        """Pattern search around each start (N, M, 2P), shrinking the step; best per node (N, 2P).
        Moves: each device alone, and every two together (a pair's common mode, a trade between
        pairs). Each device's moments are looked up once per round at its three candidate values."""
        dev = self.model.device
        n, m, d = g.shape
        step = float(self.levels[1] - self.levels[0]) if first_step is None else 2 * first_step
        moves = [[1] * d]
        for i in range(d):
            for a in (0, 2):
                moves.append([a if k == i else 1 for k in range(d)])
            for j in range(i + 1, d):
                for a, b in ((0, 0), (0, 2), (2, 0), (2, 2)):
                    moves.append([a if k == i else b if k == j else 1 for k in range(d)])
        idx = torch.tensor(moves)  # (M, d): 0 = down a step, 1 = stay, 2 = up
        onehot = torch.nn.functional.one_hot(idx, 3).transpose(1, 2).reshape(len(moves), 3 * d).double()
        delta = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
        best = g.clone()
        best_obj = self.objective(u, best, scales)
        inner = u.reshape(-1, 1, 1, 1)
        for r in range(rounds):
            if r % 2 == 0:  # two passes per step size
                step *= 0.5
            values = (best[:, :, None, :] + step * delta[:, None]).clamp(dev.g_min, dev.g_max)  # (n, m, 3, d)
            mom = self._at(values)  # (n, m, 3, d, 2K)
            k = mom.shape[-1] // 2
            cm = (self.signed[:, None] * mom[..., 1:k]).reshape(n, m, 3 * d, -1)
            cv = (self.signed[:, None] ** 2 * mom[..., k + 1:]).reshape(n, m, 3 * d, -1)
            mean, var = onehot @ cm, onehot @ cv  # (n, m, M, T)
            obj = (scales ** 2 * (var + mean ** 2) - 2 * scales * inner * mean + inner ** 2).mean(-1)
            move = obj.argmin(-1)  # (n, m)
            cobj = obj.gather(2, move[..., None]).squeeze(-1)
            cand = values.gather(2, idx[move][:, :, None, :]).squeeze(2)
            better = cobj < best_obj
            best = torch.where(better[..., None], cand, best)
            best_obj = torch.where(better, cobj, best_obj)
        pick = best_obj.argmin(-1)
        return best[torch.arange(n), pick]

    def minimise(self, u: torch.Tensor, scales: torch.Tensor, previous: torch.Tensor | None = None,
                 coarse: bool = True) -> torch.Tensor:
        """(N, 2P) best targets per node for fixed scales (coarse grid, then refined; the previous
        mapping is one more start, so an outer iteration never gets worse). Without `coarse`: a
        short refinement of the previous mapping only."""
        if not coarse:
            if previous is None:
                raise ValueError("Pointwise.minimise: coarse=False refines `previous`, which is missing")
            return self.refine(u, previous[:, None], scales, rounds=10, first_step=0.25)
        starts = self.coarse(u, scales)
        if previous is not None:
            starts = torch.cat([starts, previous[:, None]], 1)
        return self.refine(u, starts, scales)

    def solve(self, compensated: bool, iterations: int = 12) -> PointwiseResult:
        with single_thread():
            return self._solve(compensated, iterations)

    def _solve(self, compensated: bool, iterations: int) -> PointwiseResult:
        """Alternate: best targets per node for the scales, best scales for the targets (with
        `compensated`: α_k from the mapping as the hardware computes it, β free), starting from
        lsp-first. Mapping and scales trade off along a shallow valley (a larger mapping with
        smaller scales), so each step also tries the scale change extrapolated 2×, 4× and 8×."""
        from .baselines import baseline  # local: the start only
        from .cell import Cell
        dev = self.model.device

        def evaluate(g):
            scales = self.best_scales(g, compensated)
            err = self.errors(g, scales)
            return float(err.mean()), g, scales, err

        g = baseline("lsp-first", Cell(self.sig), dev.g_min, dev.g_max).targets(self.u)[0]
        state = evaluate(g)
        for _ in range(iterations):
            new = evaluate(self.minimise(self.u, state[2], state[1]))
            ratio = new[2] / state[2]
            for power in (2, 4, 8):
                trial = evaluate(self.minimise(self.u, new[2] * ratio ** (power - 1), new[1], coarse=False))
                if trial[0] >= new[0]:
                    break
                new = trial
            if new[0] >= state[0] * (1 - 1e-5):
                state = min(state, new, key=lambda x: x[0])
                break
            state = new
        _, g, scales, err = state
        beta = None
        if compensated:
            mean, var = self.stats(g)
            beta = float(self.alpha(mean, var)[0] / scales[0])
        return PointwiseResult(self.u, self.prob, g, self.sig, scales, err, compensated, beta)

    def targets_at(self, u: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(len(u), 2P) best targets at arbitrary |u| values for fixed scales."""
        return self.minimise(u.double(), scales)


def bound(model: ExpectedTNMSE, significance: Sequence[float], bins: int = 48) -> PointwiseResult:
    """The lowest expected TNMSE any mapping weight → targets in [g_min, g_max]^(2P) reaches with
    one free read-out scale per time (no drift compensation can do better), for this cell.

    Parameters
    ----------
    model
        The expected error (density, device, times).
    significance
        The cell's significance factors, one per pair.
    bins
        Quantile bins of |u| (two nodes each) at which the mapping is optimised.

    Returns
    -------
    PointwiseResult
        The bound (`mean`, `per_time`) and the mapping that reaches it, `compensated` False.
    """
    return Pointwise(model, significance, bins).solve(compensated=False)


def pointwise_strategy(model: ExpectedTNMSE, significance: Sequence[float], points: int = 41,
                       polish_steps: int = 150, solution: PointwiseResult | None = None,
                       name: str = "pointwise", expressible: bool = False) -> tuple[Strategy, PointwiseResult]:
    """The pointwise optimum under the deployed drift compensation as a dense strategy.

    The compensated pointwise solution (α from the mapping as the hardware computes it, β free)
    gives the read-out scales; the best targets for them are found at `points` grid weights
    (quantiles of |u| and a uniform set, 0 and 1 included), and the table and β are then
    polished by gradient on the expected error with the real compensation (kept if it helps).
    The table need not be mirrored-monotonic or smooth; it may clip the largest weights
    (W_hw(1) < β). With `expressible`, β is tied to the table's largest weight (β = W_hw(1)), the
    form aihwkit's CustomPairConductanceConverter can express.

    Parameters
    ----------
    model
        The expected error (density, device, times, compensation).
    significance
        The cell's significance factors, one per pair.
    points
        Grid weights the table starts from (more are inserted where the optimum bends).
    polish_steps
        Adam steps of the final polish (0: none).
    solution
        A compensated pointwise solution already computed (else it is solved here).
    name
        The strategy's name.
    expressible
        Tie β to the table's largest weight (β = W_hw(1)).

    Returns
    -------
    tuple of (Strategy, PointwiseResult)
        The dense strategy and the compensated pointwise solution it came from.
    """
    with single_thread():
        return _pointwise_strategy(model, significance, points, polish_steps, solution, name, expressible)


def limit_strategy(model: ExpectedTNMSE, significance: Sequence[float], points: int = 41,
                   name: str = "limit") -> tuple[Strategy, PointwiseResult]:
    """The bound's mapping as a dense table, for programming a network at the limit.

    The table holds, per weight value, the targets the bound chose (found at `points` grid weights
    and refined where the mapping bends, as for `pointwise_strategy`); β is 1, so a read gives
    V = Σ f_p (g⁺_p − g⁻_p) in µS, and the ideal read-out at time t_k is `solution.scales[k] · V`
    (one free scale per time: no drift compensation can do better).

    Parameters
    ----------
    model
        The expected error (density, device, times).
    significance
        The cell's significance factors, one per pair.
    points
        Grid weights the table starts from.
    name
        The strategy's name.

    Returns
    -------
    tuple of (Strategy, PointwiseResult)
        The table (β = 1) and the bound it came from (`scales`, `per_time`, `mean`).
    """
    with single_thread():
        pw = Pointwise(model, significance)
        sol = pw.solve(compensated=False)
        grid, table = _refine_grid(pw, _start_grid(model.values, points), sol.scales)
    dev = model.device
    sig = torch.tensor(pw.sig, dtype=torch.float64)
    return Strategy(grid, table[None], sig[None], torch.tensor([1.0]), dev.g_min, dev.g_max, [name]), sol


def _start_grid(values: torch.Tensor, points: int) -> torch.Tensor:
    """Grid weights for a dense table: quantiles of |u| and a uniform set, 0 and 1 included."""
    a = values.abs().double()
    quant = torch.quantile(a[torch.randperm(a.numel(), generator=torch.Generator().manual_seed(0))[:200_000]],
                           torch.linspace(0, 1, points - points // 3, dtype=torch.float64))
    grid = torch.unique(torch.cat([quant, torch.linspace(0, 1, points // 3 + 1, dtype=torch.float64),
                                   torch.tensor([0.0, 1.0], dtype=torch.float64)]).clamp(0, 1))
    keep = torch.cat([torch.tensor([True]), grid.diff() > 1e-4])
    grid = grid[keep]
    grid[-1] = 1.0
    return grid


def _pointwise_strategy(model, significance, points, polish_steps, solution, name, expressible):
    pw = Pointwise(model, significance)
    sol = solution or pw.solve(compensated=True)
    grid, table = _refine_grid(pw, _start_grid(model.values, points), sol.scales)
    dev = model.device
    sig = torch.tensor(pw.sig, dtype=torch.float64)
    strategy = Strategy(grid, table[None], sig[None], torch.tensor([sol.beta]), dev.g_min, dev.g_max, [name])
    if expressible:  # u = 1 represented exactly at β (capped at the cell's range), pairs filled lsp-first
        span = dev.g_max - dev.g_min
        beta = min(sol.beta, float(sig.sum()) * span)
        remaining = beta
        for p in sorted(range(len(pw.sig)), key=lambda q: pw.sig[q]):
            share = min(remaining, pw.sig[p] * span)
            table[-1, 2 * p], table[-1, 2 * p + 1] = dev.g_min + share / pw.sig[p], dev.g_min
            remaining -= share
        strategy = Strategy(grid, table[None], sig[None], torch.tensor([beta]), dev.g_min, dev.g_max, [name])
    if polish_steps > 0:
        strategy = _polish_table(model, strategy, polish_steps, expressible)
    return strategy, sol


def _refine_grid(pw: Pointwise, grid: torch.Tensor, scales: torch.Tensor, tol_us: float = 0.02,
                 rounds: int = 5, max_points: int = 161) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets at the grid, with midpoints inserted where the optimum bends or jumps between two
    points (its targets there differ from linear interpolation by more than `tol_us`), so the
    table follows the pointwise mapping's kinks and branch switches."""
    table = pw.targets_at(grid, scales)
    for _ in range(rounds):
        mid = (grid[1:] + grid[:-1]) / 2
        at_mid = pw.targets_at(mid, scales)
        off = (at_mid - (table[1:] + table[:-1]) / 2).abs().amax(-1)
        room = max_points - grid.numel()
        add = torch.nonzero((off > tol_us) & (grid.diff() > 1e-4)).flatten()
        if add.numel() == 0 or room <= 0:
            break
        add = add[off[add].argsort(descending=True)[:room]]
        grid, order = torch.sort(torch.cat([grid, mid[add]]))
        table = torch.cat([table, at_mid[add]])[order]
    return grid, table


def _polish_table(model: ExpectedTNMSE, strategy: Strategy, steps: int, tied: bool = False) -> Strategy:
    """Adam on a strategy's table (through a sigmoid into the device range) and log β (or, `tied`,
    β = W_hw at u = 1), on the expected error with the real drift compensation; the better of
    before and after."""
    dev = model.device
    span = dev.g_max - dev.g_min
    x0 = ((strategy.conductances - dev.g_min) / span).clamp(1e-4, 1 - 1e-4)
    raw = torch.log(x0 / (1 - x0)).requires_grad_(True)
    log_beta = torch.log(strategy.beta.clone()).requires_grad_(True)
    opt = torch.optim.Adam([raw, log_beta], lr=0.02)
    best = (float(model(strategy)[0]), strategy)
    def beta_of(table):
        return strategy.hardware_weight(table)[:, -1] if tied else torch.exp(log_beta)

    for _ in range(steps):
        opt.zero_grad()
        table = dev.g_min + span * torch.sigmoid(raw)
        loss = model.per_time(strategy.grid, table, strategy.significance, beta_of(table), grad=True).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        table = dev.g_min + span * torch.sigmoid(raw)
        after = Strategy(strategy.grid, table, strategy.significance, beta_of(table), dev.g_min, dev.g_max,
                         list(strategy.names))
    score = float(model(after)[0])
    return after if score < best[0] else best[1]
