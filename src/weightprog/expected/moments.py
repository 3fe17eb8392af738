"""Closed forms of the read statistics and the device tables built from them.

For one device with target g, the read at time t_k (k = 0 is the calibration read right after
programming) is

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import DeviceModel
from ..interpolation import take

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


def normal_abs_mean(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """E|X| for X ~ N(mean, var)."""
    sd = var.clamp_min(1e-30).sqrt()
    r = mean / sd
    return mean * torch.erf(r / _SQRT2) + sd * _SQRT_2_PI * torch.exp(-0.5 * r * r)


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

    def lookup_columns(self, dtype=torch.float32) -> torch.Tensor:
        """`lookup_table` transposed (4K, N − 1), contiguous: the expected objective gathers along
        its rows, one long row per moment (`batched.device_sums`)."""
        return self.lookup_table(dtype).T.contiguous()


def interpolate(lookup: torch.Tensor, g0: float, step: float, g: torch.Tensor) -> torch.Tensor:
    """[m1, var] (…, 2K) at targets g (any shape), linear between the knots of `lookup`."""
    n = lookup.shape[0]
    pos = ((g - g0) / step).clamp(0.0, float(n))
    index = pos.detach().floor().clamp_max(n - 1)
    frac = (pos - index).unsqueeze(-1)
    rows = take(lookup, index.long(), 0)
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
