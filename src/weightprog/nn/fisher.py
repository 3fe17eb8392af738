"""Each analog weight's diagonal empirical Fisher information, for `--weighting fisher`.

To second order, a small change δw of the weights raises the expected loss by about ½ Σ_k F_k δw_k²
(F the Fisher information; its empirical diagonal is the mean squared gradient). Weighting each
weight's squared programming error by F_k therefore makes the search's objective approximate the
loss increase instead of the weight error (docs/NN.md, "Sensitivity weighting"). The search works in
normalised units u = w / w_max, so the importance of a normalised weight is F_k · w_max,k².

The gradients are of the spec's `loss` (mini-batch losses on calibrate or validate data, never the
test data), averaged over its mini-batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import WeightprogError
from ..hardware import normalisation
from ..settings import Mapping
from .discover import AnalogWeight, find_analog_weights
from .gradients import differentiable, loss_gradients
from .limit import LIMIT_VALUES, deployed_values, subsample
from .spec import ModelSpec


def fisher_information(spec: ModelSpec, weights: Sequence[AnalogWeight]) -> list[torch.Tensor]:
    """Mean over the spec's mini-batch losses of each analog weight's squared gradient.

    Parameters
    ----------
    spec
        The model spec; its `loss(model)` yields scalar mini-batch losses on non-test data.
    weights
        The analog weights (`find_analog_weights`).

    Returns
    -------
    list of torch.Tensor
        One tensor per weight, of its parameter's shape, on the cpu (float64).

    Raises
    ------
    WeightprogError
        A spec without `loss`, a loss that is not a scalar computed from the model, or no mini-batch.
    """
    if spec.loss is None:
        raise WeightprogError("weighting fisher: the model spec has no 'loss' (mini-batch losses on calibrate or "
                              "validate data, docs/NN.md); use --weighting density")
    params = [w.param for w in weights]
    sums = [torch.zeros(p.shape, dtype=torch.float64) for p in params]
    batches = 0
    with differentiable(params):
        for loss in spec.loss(spec.model):
            for total, g in zip(sums, loss_gradients(loss, params, "model spec 'loss'")):
                total += g.cpu().double() ** 2
            batches += 1
    if batches == 0:
        raise WeightprogError("model spec 'loss': gave no mini-batch losses")
    return [total / batches for total in sums]


def deployed_fisher(spec: ModelSpec, mapping: Mapping = Mapping(), max_values: int = LIMIT_VALUES,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's deployed weights (`limit.deployed_values`) and each one's importance F · w_max²,
    aligned with them (the same order and subsample).

    Parameters
    ----------
    spec
        The model spec, with `loss`.
    mapping
        Tiling and normalisation of the deployment.
    max_values, seed
        As for `deployed_values`.

    Returns
    -------
    tuple of torch.Tensor
        (N,) normalised weights in [−1, 1] and (N,) their importance (float32, ≥ 0).

    Raises
    ------
    WeightprogError
        As for `fisher_information`, or every weight with zero importance.
    """
    weights = find_analog_weights(spec.model)
    values = deployed_values(weights, mapping, max_values, seed)
    parts = []
    for w, f in zip(weights, fisher_information(spec, weights)):
        scale = normalisation(w.matrix(), mapping)[1].cpu().double()
        parts.append((f.t() if w.transposed else f).reshape(-1) * scale ** 2)
    importance = torch.cat(parts)
    keep = subsample(importance.numel(), max_values, seed)
    importance = (importance if keep is None else importance[keep]).to(torch.float32)
    if not bool((importance > 0).any()):
        raise WeightprogError("model spec 'loss': every analog weight has zero gradient")
    return values, importance
