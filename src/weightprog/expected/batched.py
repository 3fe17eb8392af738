"""The expected objective's population kernel without gradients (what the searches call): the
same arithmetic as `model.expected_errors`, bit for bit, laid out so that it runs ~1.8× faster on
CPU. `expected_errors` holds each node's moments as (B, N, 2P, 2K) tensors, whose element-wise
steps run over rows of 2K = 14 numbers; here the gathered moments are (2K, 2P, N, B), rows of N·B
numbers, which vectorise. The sums over nodes still run on (B, N, K) tensors, so they add in the
order they always did (tests/test_expected.py checks the bits); the gradient path keeps the (B, …)
layout, whose backward sums in its own order."""

from __future__ import annotations

from .nodes import drift_alpha, node_error


def device_sums(table, signed, index, frac, columns, g0: float, step: float):
    """Σ_d s_d E r_d and Σ_d s_d² Var r_d (B, N, K) for tables (B, D, 2P) and signed factors
    (B, 2P) at the nodes (index, frac), from the device moments' `lookup_columns` (4K, knots)."""
    by_device = table.permute(2, 1, 0)  # (2P, D, B)
    lo, hi = by_device.index_select(1, index), by_device.index_select(1, index + 1)  # (2P, N, B)
    g = lo + (hi - lo) * frac[None, :, None]
    knots = columns.shape[1]
    pos = ((g - g0) / step).clamp(0.0, float(knots))
    at = pos.floor().clamp_max(knots - 1)
    flat = at.long().reshape(1, -1).expand(columns.shape[0], -1)  # `gather`: ~2.5× faster than index_select here
    rows = columns.gather(1, flat).view(-1, *at.shape)  # (4K, 2P, N, B): [m1, var] at the knot, then slopes
    half = rows.shape[0] // 2
    moments = rows[half:].mul_(pos - at).add_(rows[:half])  # (2K, 2P, N, B), in place: a + b·frac
    k = half // 2
    s = signed.T[None, :, None, :]  # (1, 2P, 1, B)
    mean, var = moments[:k].mul_(s).sum(1), moments[k:].mul_(s * s).sum(1)  # (K, N, B)
    return mean.permute(2, 1, 0).contiguous(), var.permute(2, 1, 0).contiguous()


def batched_errors(table, signed, index, frac, u, prob, importance, columns, *, g0: float, step: float,
                   compensation: str):
    """(B, T) expected errors and α (B, T), as `model.expected_errors` returns them, under no_grad."""
    mean, var = device_sums(table, signed, index, frac, columns, g0, step)
    alpha = drift_alpha(mean, var, prob, compensation)
    err = node_error(mean[..., 1:], var[..., 1:], alpha[:, None, :], u[None, :, None])
    return (importance[None, :, None] * err).sum(1), alpha
