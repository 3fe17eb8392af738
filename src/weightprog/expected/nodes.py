"""What one density node contributes, in the formulas the model and the pointwise solver share:
the read-out's mean and variance from the devices' read moments, the drift compensation α, and
the node's expected squared error."""

from __future__ import annotations

import torch

from .moments import normal_abs_mean


def read_stats(moments: torch.Tensor, signed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (…, K) of V_k = Σ_d s_d r_d from the devices' [m1, var] (…, 2P, 2K)
    (devices independent) and their signed factors s_d, shaped to broadcast as (…, 2P, 1)."""
    k = moments.shape[-1] // 2
    mean = (signed * moments[..., :k]).sum(-2)
    var = (signed * signed * moments[..., k:]).sum(-2)
    return mean, var


def drift_alpha(mean: torch.Tensor, var: torch.Tensor, prob: torch.Tensor, compensation: str) -> torch.Tensor:
    """(…, T) drift compensation α_k = E|W_0| / E|W_k| of a mapping whose nodes (share `prob`, N)
    read with mean and variance (…, N, K), the calibration read first: the large-column limit of
    the per-column ratio the hardware computes (E|W| from the normal approximation of W)."""
    if compensation == "none":
        return torch.ones_like(mean[..., 0, 1:])
    abs_mean = (prob[:, None] * normal_abs_mean(mean, var)).sum(-2)  # (…, K)
    return abs_mean[..., :1] / abs_mean[..., 1:].clamp_min(1e-30)


def node_error(mean: torch.Tensor, var: torch.Tensor, scale: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Expected squared error E(scale·V − u)² = scale²·Var V + (scale·E V − u)² of a node of weight
    u whose read V has this mean and variance (any broadcastable shapes; written as a square so
    float32 keeps its precision when the error is small)."""
    return scale * scale * var + (scale * mean - u) ** 2
