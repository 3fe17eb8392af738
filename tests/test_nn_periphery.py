"""Periphery: DAC/ADC quantisation with calibrated ranges, output noise, hooks removed afterwards."""

import pytest
import torch
from torch import nn

from nn_helpers import CASES, metrics_for
from weightprog import WeightprogError
from weightprog.nn import (
    Periphery,
    attached,
    calibrate,
    evaluate_over_time,
    find_analog_weights,
    get_periphery,
    quantise,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quantise_levels_and_clipping():
    x = torch.tensor([-3.0, -1.0, -0.004, 0.0, 0.26, 1.0, 2.0])
    q = quantise(x, 1.0, 3)  # 3 levels each side: step 1/3
    assert torch.allclose(q, torch.tensor([-1.0, -1.0, 0.0, 0.0, 1 / 3, 1.0, 1.0]))
    assert (quantise(torch.linspace(-1, 1, 1001), 1.0, 8) * 127).round().unique().numel() == 255


def test_presets_and_validation():
    assert get_periphery("ideal").is_ideal and get_periphery(None).is_ideal
    std = get_periphery("standard")
    assert (std.dac_bits, std.adc_bits) == (8, 8) and std.output_noise == pytest.approx(1 / 127)
    with pytest.raises(WeightprogError, match="unknown preset"):
        get_periphery("fancy")
    with pytest.raises(WeightprogError, match="dac_bits"):
        Periphery(dac_bits=1)
    with pytest.raises(WeightprogError, match="output_noise"):
        Periphery(output_noise=-1.0)


def test_calibration_percentile_and_quantised_linear_outputs():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    x = torch.randn(2000, 4)
    weights = find_analog_weights(layer)
    peri = Periphery(dac_bits=4, adc_bits=4, input_percentile=100.0, output_percentile=100.0)
    out, ranges = calibrate(weights, peri, lambda: layer(x).detach())
    assert ranges.inputs[id(layer)] == pytest.approx(float(x.abs().max()))
    assert ranges.outputs[id(layer)] == pytest.approx(float((out - layer.bias).detach().abs().max()), rel=1e-6)
    with attached(weights, peri, ranges), torch.no_grad():
        y = layer(x)
    step_out = ranges.outputs[id(layer)] / 7
    levels = (y - layer.bias) / step_out
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # ADC before the digital bias
    assert not layer._forward_hooks and not layer._forward_pre_hooks  # detached afterwards


def test_output_noise_is_seeded_and_scaled():
    torch.manual_seed(0)
    layer = nn.Linear(8, 8, bias=False)
    x = torch.randn(500, 8)
    weights = find_analog_weights(layer)
    peri = Periphery(output_noise=0.1, output_percentile=100.0)
    _, ranges = calibrate(weights, peri, lambda: layer(x))

    def noisy(seed):
        with attached(weights, peri, ranges, torch.Generator().manual_seed(seed)), torch.no_grad():
            return layer(x) - x @ layer.weight.T
    a, b = noisy(1), noisy(1)
    assert torch.equal(a, b) and not torch.equal(a, noisy(2))
    assert float(a.std()) == pytest.approx(0.1 * ranges.outputs[id(layer)], rel=0.05)  # 4000 draws


@pytest.mark.parametrize("case", sorted(CASES))
def test_standard_periphery_on_every_model(case):
    model, inputs, target = CASES[case]()
    fired = []
    def hook(*args):
        fired.append(1)

    handles = [w.module.register_forward_pre_hook(hook) for w in find_analog_weights(model)]
    evaluate_fn = metrics_for(inputs, target)
    ideal = evaluate_over_time(model, evaluate_fn, "lsp-first", "ideal", (1.0,), repeats=2, seed=0,
                               periphery="standard")
    for h in handles:
        h.remove()
    assert fired  # hooks reach every analog module kind (the transformer fast path is off)
    # quantisation and output noise move the metric, but only a little, with an ideal device
    assert (ideal.metrics != ideal.digital).any()
    assert ((ideal.metrics - ideal.digital).abs() < 0.05 * abs(ideal.digital) + 0.05).all()
    assert torch.backends.mha.get_fastpath_enabled()
