"""Gradient–weight correlation (the paper's Fig. 3a–c): is |∂L/∂W| related to W?

If gradient magnitudes do not depend on the weight value, every weight matters equally per unit
of error and the weight density is the right importance for the programming objective (docs/MODEL.md §7.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import WeightprogError
from .discover import find_analog_weights

_PLOT_POINTS = 4000  # per layer, for the scatter figure


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float(x.norm() * y.norm())
    return float((x * y).sum()) / denom if denom > 0 else float("nan")


@dataclass
class LayerGradients:
    """Gradient–weight correlation of one analog weight.

    Parameters
    ----------
    name
        The parameter's name.
    weights
        Its number of weights.
    r, r_abs
        Pearson correlation of |∂L/∂W| with W and with |W|.
    w, grad
        Subsamples for plotting, each normalised to its layer maximum.
    """

    name: str
    weights: int
    r: float
    """Pearson correlation of |∂L/∂W| with W."""
    r_abs: float
    """Pearson correlation of |∂L/∂W| with |W|."""
    w: torch.Tensor
    """A subsample of the weights (for plotting), normalised to max |w| of the layer."""
    grad: torch.Tensor
    """|∂L/∂W| at the same positions, normalised to its layer maximum."""

    def to_dict(self) -> dict:
        return {"name": self.name, "weights": self.weights, "r": self.r, "r_abs": self.r_abs}


@dataclass
class GradientCorrelation:
    """Gradient–weight correlation of every analog weight and of all of them pooled.

    Parameters
    ----------
    layers
        One entry per analog weight, in module order.
    loss
        The loss the gradients are of.
    r, r_abs
        Pearson correlation of |∂L/∂W| with W and with |W| over all analog weights pooled.
    """

    layers: list[LayerGradients]
    loss: float
    r: float
    """Over all analog weights pooled (each layer normalised as in `layers`)."""
    r_abs: float

    def to_dict(self) -> dict:
        return {"loss": self.loss, "r": self.r, "r_abs": self.r_abs,
                "layers": [layer.to_dict() for layer in self.layers]}


@contextmanager
def differentiable(params: Sequence[torch.Tensor]) -> Iterator[None]:
    """Gradients on for the block, in `params` too; their requires_grad flags restored afterwards
    (`.grad` is never touched: the gradients come from `loss_gradients`)."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def loss_gradients(loss: object, params: Sequence[torch.Tensor], where: str) -> list[torch.Tensor]:
    """∂loss/∂p for each of `params` (zeros where the loss does not depend on it), detached.

    Raises
    ------
    WeightprogError
        When `loss` is not a scalar tensor computed from the model (named by `where`).
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        raise WeightprogError(f"{where}: must return a scalar loss tensor computed from the model")
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]


def gradient_weight_correlation(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor],
                                include: str | Sequence[str] | None = None,
                                exclude: str | Sequence[str] | None = None,
                                seed: int = 0) -> GradientCorrelation:
    """|∂L/∂W| vs W for every analog weight, for the loss `loss_fn(model)` on one data batch.

    Uses torch.autograd.grad, so `.grad` of the model is left untouched; requires_grad flags are
    restored afterwards.

    Parameters
    ----------
    model
        The model.
    loss_fn
        `loss_fn(model)` -> a scalar loss tensor computed from the model (one data batch).
    include, exclude
        Globs selecting the analog weights, as for `find_analog_weights`.
    seed
        Picks the points kept for plotting.

    Returns
    -------
    GradientCorrelation

    Raises
    ------
    WeightprogError
        When `loss_fn` does not return a scalar tensor that depends on the model, or no analog
        weight is found.
    """
    weights = find_analog_weights(model, include, exclude)
    params = [w.param for w in weights]
    with differentiable(params):
        loss = loss_fn(model)
        grads = loss_gradients(loss, params, "loss_fn")
    gen = torch.Generator().manual_seed(seed)
    layers, pooled_w, pooled_g = [], [], []
    for w, g in zip(weights, grads):
        wv = w.param.detach().reshape(-1).double().cpu()
        gv = g.abs().reshape(-1).double().cpu()
        wn = wv / wv.abs().max().clamp_min(1e-30)
        gn = gv / gv.max().clamp_min(1e-30)
        keep = torch.randperm(wn.numel(), generator=gen)[:_PLOT_POINTS]
        layers.append(LayerGradients(w.name, wv.numel(), _pearson(wv, gv), _pearson(wv.abs(), gv),
                                     wn[keep].float(), gn[keep].float()))
        pooled_w.append(wn)
        pooled_g.append(gn)
    w_all, g_all = torch.cat(pooled_w), torch.cat(pooled_g)
    return GradientCorrelation(layers, float(loss.detach()), _pearson(w_all, g_all), _pearson(w_all.abs(), g_all))
