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
bin matching its mean and variance (negative weights mirror positive ones exactly). Everything is a torch expression: differentiable in the
conductance table and β.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .devices import DeviceModel, get_device
from .errors import WeightprogError
from .metric import COMPENSATION, compile_available
from .sample import WeightSample
from .strategy import Strategy
from .timeunits import DEFAULT_TIMES_S, check_times

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
    xs, ws = np.polynomial.legendre.leggauss(nodes)
    xs, ws = torch.tensor(xs, dtype=dt), torch.tensor(ws, dtype=dt)
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


def weight_bins(values: torch.Tensor, grid: torch.Tensor, per_segment: int = 8) -> WeightBins:
    """Quantile bins of |values| within each grid segment (each segment's weights split into
    `per_segment` bins of equal count), two nodes per bin."""
    a = np.sort(values.detach().reshape(-1).abs().clamp_max(1.0).double().numpy())
    if a.size == 0:
        raise WeightprogError("expected error: no weights")
    edges = grid.detach().double().numpy()
    cut = np.searchsorted(a, edges[1:-1], side="left")
    nodes, probs, segments = [], [], []
    for j, part in enumerate(np.split(a, cut)):
        if part.size == 0:
            continue
        for chunk in np.array_split(part, min(per_segment, part.size)):
            mean, sd = chunk.mean(), chunk.std()
            for node in (mean - sd, mean + sd):
                nodes.append(min(max(node, edges[j]), edges[j + 1]))
                probs.append(0.5 * chunk.size / a.size)
                segments.append(j)
    u = torch.tensor(nodes, dtype=torch.float64)
    index = torch.tensor(segments, dtype=torch.long)
    frac = (u - grid[index]) / (grid[index + 1] - grid[index])
    return WeightBins(u, torch.tensor(probs, dtype=torch.float64), index, frac)


@dataclass
class ExpectedResult:
    names: list[str]
    times_s: tuple[float, ...]
    per_time: torch.Tensor
    """(B, T) expected NMSE at each time."""
    alpha: torch.Tensor
    """(B, T) drift-compensation factor at each time (large-column limit)."""

    @property
    def mean(self) -> torch.Tensor:
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


def expected_errors(table, signed, index, frac, u, prob, lookup, *, g0: float, step: float,
                    compensation: str):
    """(B, T) expected errors and α (B, T) for tables (B, D, 2P) and signed factors ±f_p/β (B, 2P)
    on density nodes (index, frac, u, prob) — plain torch, differentiable, fusable by torch.compile."""
    lo, hi = table[:, index], table[:, index + 1]  # (B, N, 2P)
    g = lo + (hi - lo) * frac[None, :, None]
    moments = interpolate(lookup, g0, step, g)  # (B, N, 2P, 2K)
    k = moments.shape[-1] // 2
    s = signed[:, None, :, None]
    mean = (s * moments[..., :k]).sum(2)  # (B, N, K)
    var = (s * s * moments[..., k:]).sum(2)
    p = prob[None, :, None]
    if compensation == "none":
        alpha = torch.ones_like(mean[:, 0, 1:])
    else:
        abs_mean = (p * normal_abs_mean(mean, var)).sum(1)  # (B, K)
        alpha = abs_mean[:, :1] / abs_mean[:, 1:].clamp_min(1e-30)
    a = alpha[:, None, :]
    err = (p * (a * a * var[..., 1:] + (a * mean[..., 1:] - u[None, :, None]) ** 2)).sum(1)
    return err, alpha


class ExpectedTNMSE:
    """Expected TNMSE of populations of strategies for a weight density and device.

    >>> model = ExpectedTNMSE(load_distribution(), "pcm")
    >>> model(baseline("lsp-first", Cell((1, 2))))          # (1,) expected TNMSE
    """

    def __init__(self, values: torch.Tensor | WeightSample, device: DeviceModel | str = "pcm",
                 times_s: Sequence[float] = DEFAULT_TIMES_S, compensation: str = "column",
                 bins_per_segment: int = 8, table_points: int = 2049, dtype=torch.float32,
                 compile: bool | str = False, chunk: int = 64):
        if compensation not in COMPENSATION:
            raise WeightprogError(f"compensation: use one of {', '.join(COMPENSATION)}, got {compensation!r}")
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
        key = tuple(grid.tolist())
        if key not in self._bins:
            self._bins[key] = weight_bins(self.values, grid.double(), self.bins_per_segment)
        return self._bins[key]

    def per_time(self, grid: torch.Tensor, conductances: torch.Tensor, significance: torch.Tensor,
                 beta: torch.Tensor, with_alpha: bool = False, grad: bool = False):
        """(B, T) expected errors for tables (B, D, 2P) µS, significance (B, P), beta (B,); with_alpha
        also returns α (B, T). With grad: eager and differentiable in conductances and beta."""
        dt = self.dtype
        bins = self.bins(grid)
        nodes = (bins.index, bins.frac.to(dt), bins.u.to(dt), bins.prob.to(dt), self.lookup)
        table = conductances.to(dt)
        signed = signed_factors(significance.to(dt), beta.to(dt))
        if grad:
            err, alpha = expected_errors(table, signed, *nodes, g0=self.g0, step=self.step,
                                         compensation=self.compensation)
            return (err, alpha) if with_alpha else err
        errs, alphas = [], []
        with torch.no_grad():
            for start in range(0, table.shape[0], self.chunk):
                t, sg = table[start:start + self.chunk], signed[start:start + self.chunk]
                n = t.shape[0]
                if self.compiled and n < self.chunk:  # pad: one compiled shape for every chunk
                    t = torch.cat([t, t[-1:].expand(self.chunk - n, -1, -1)])
                    sg = torch.cat([sg, sg[-1:].expand(self.chunk - n, -1)])
                err, alpha = self._kernel(t.contiguous(), sg.contiguous(), *nodes)
                errs.append(err[:n])
                alphas.append(alpha[:n])
        err, alpha = torch.cat(errs), torch.cat(alphas)
        return (err, alpha) if with_alpha else err

    def evaluate(self, strategy: Strategy) -> ExpectedResult:
        strategy.check_range(self.device.g_min, self.device.g_max)
        with torch.no_grad():
            err, alpha = self.per_time(strategy.grid, strategy.conductances, strategy.significance,
                                       strategy.beta, with_alpha=True)
        return ExpectedResult(list(strategy.names), self.times_s, err.double(), alpha.double())

    def __call__(self, strategy: Strategy) -> torch.Tensor:
        """(B,) expected TNMSE of each strategy in the batch."""
        return self.evaluate(strategy).mean
