"""Gradient–weight correlation and the network figures."""

import numpy as np
import pytest
import torch
from torch import nn

from nn_helpers import CASES, loss_fn_for, metrics_for
from weightprog.nn import evaluate_over_time, gradient_weight_correlation
from weightprog.report.nn_plots import plot_gradient_weight, plot_metric_vs_time

pytestmark = pytest.mark.usefixtures("one_thread")


def test_correlation_matches_a_planted_relation():
    # a loss whose gradient is exactly 2·W: |dL/dW| = 2|W|, perfectly correlated with |W|
    torch.manual_seed(0)
    layer = nn.Linear(30, 20, bias=False)
    layer.weight.requires_grad_(False)
    result = gradient_weight_correlation(layer, lambda m: (m.weight ** 2).sum())
    assert result.layers[0].r_abs == pytest.approx(1.0)
    assert abs(result.layers[0].r) < 0.2  # |g| is symmetric in W: no signed correlation (600 weights)
    assert layer.weight.grad is None and not layer.weight.requires_grad


@pytest.mark.parametrize("case", ["cnn", "lstm"])
def test_real_models_give_a_correlation_per_layer(case):
    model, inputs, target = CASES[case]()
    result = gradient_weight_correlation(model, loss_fn_for(inputs, target))
    assert len(result.layers) >= 6 and result.loss > 0
    reference = _normalised_gradients(model, loss_fn_for(inputs, target))
    checked = 0
    for layer in result.layers:
        assert layer.w.numel() == min(layer.weights, 4000)
        assert float(layer.grad.min()) >= 0 and float(layer.grad.max()) <= 1 and float(layer.w.abs().max()) <= 1
        if layer.weights <= 4000:  # every weight kept: the points are |dL/dW| / max and W / max|W|, recomputed
            w_ref, g_ref = reference[layer.name]
            assert torch.sort(layer.w.double()).values == pytest.approx(torch.sort(w_ref).values, abs=1e-6)
            assert torch.sort(layer.grad.double()).values == pytest.approx(torch.sort(g_ref).values, abs=1e-6)
        # the correlations, recomputed from the stored points: exact where every weight was kept,
        # within sampling error (3/sqrt(4000)) of the 4,000 kept points otherwise
        w, g = layer.w.double().numpy(), layer.grad.double().numpy()
        tol = 1e-4 if layer.weights <= 4000 else 0.05
        assert np.corrcoef(w, g)[0, 1] == pytest.approx(layer.r, abs=tol), layer.name
        assert np.corrcoef(np.abs(w), g)[0, 1] == pytest.approx(layer.r_abs, abs=tol), layer.name
        checked += layer.weights <= 4000
    assert checked >= 1
    assert all(p.grad is None for p in model.parameters())


def _normalised_gradients(model, loss_fn) -> dict:
    """{parameter name (and its module's name): (W / max|W|, |dL/dW| / max|dL/dW|)}, by plain autograd."""
    named = [(n, p) for n, p in model.named_parameters() if p.dim() >= 2]
    flags = [p.requires_grad for _, p in named]
    for _, p in named:
        p.requires_grad_(True)
    grads = torch.autograd.grad(loss_fn(model), [p for _, p in named], allow_unused=True)
    for (_, p), flag in zip(named, flags):
        p.requires_grad_(flag)
    out = {}
    for (name, p), g in zip(named, grads):
        w = p.detach().reshape(-1).double()
        gv = (torch.zeros_like(p) if g is None else g).detach().abs().reshape(-1).double()
        pair = (w / w.abs().max(), gv / gv.max().clamp_min(1e-30))
        out[name] = out[name.removesuffix(".weight")] = pair
    return out


def test_figures_are_written(tmp_path):
    model, inputs, target = CASES["gpt2"]()
    result = evaluate_over_time(model, metrics_for(inputs, target), ["lsp-first", "msp-first"], "pcm",
                                (1.0, 3600.0, 86400.0), repeats=2, seed=0)
    plot_metric_vs_time(result, tmp_path / "acc.png", "loss")
    grads = gradient_weight_correlation(model, loss_fn_for(inputs, target))
    plot_gradient_weight(grads, tmp_path / "grad.png")
    for name in ("acc.png", "grad.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.png", "grad.png"]  # no temp files left
