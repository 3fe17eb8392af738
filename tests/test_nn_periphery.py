"""Periphery: DAC/ADC quantisation with calibrated ranges, output noise, hooks removed afterwards."""

import pytest
import torch
from torch import nn

from nn_helpers import CASES, metrics_for
from weightprog import WeightprogError
from weightprog.nn import (
    PERIPHERY_PRESETS,
    Clipping,
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


@pytest.mark.parametrize("preset", ["standard", "chip"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_periphery_on_every_model(case, preset):
    model, inputs, target = CASES[case]()
    fired = []
    def hook(*args):
        fired.append(1)

    handles = [w.module.register_forward_pre_hook(hook) for w in find_analog_weights(model)]
    evaluate_fn = metrics_for(inputs, target)
    ideal = evaluate_over_time(model, evaluate_fn, "lsp-first", "ideal", (1.0,), repeats=2, seed=0,
                               periphery=preset)
    for h in handles:
        h.remove()
    assert fired  # hooks reach every analog module kind (the transformer fast path is off)
    # quantisation and output noise move the metric, but only a little, with an ideal device
    assert (ideal.metrics != ideal.digital).any()
    assert ((ideal.metrics - ideal.digital).abs() < 0.05 * abs(ideal.digital) + 0.05).all()
    assert torch.backends.mha.get_fastpath_enabled()


def _one_linear(scales=None, bias=False, inputs=16, outputs=8, rows=3000):
    torch.manual_seed(0)
    layer = nn.Linear(inputs, outputs, bias=bias)
    if scales is not None:
        with torch.no_grad():
            layer.weight.mul_(torch.tensor(scales).unsqueeze(1))
    return layer, torch.randn(rows, inputs), find_analog_weights(layer)


def test_old_presets_give_the_same_outputs_as_before():
    # numbers of the `standard` and `io8` presets before dynamic scaling and per-column ranges existed
    # (`standard` re-pinned when its output noise became counter-based, nn/noise.py: other draws)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    x = torch.randn(16, 2, 6, 6)
    weights = find_analog_weights(model)
    expected = {"standard": (-2.198030088096857, 11.482025323279041),
                "io8": (-2.2562534734606743, 11.507032188993705)}
    for name, (total, energy) in expected.items():
        with torch.no_grad():
            _, ranges = calibrate(weights, get_periphery(name), lambda: model(x))
            with attached(weights, get_periphery(name), ranges, torch.Generator().manual_seed(3)):
                y = model(x).double()
        assert float(y.sum()) == pytest.approx(total, abs=1e-9)
        assert float(y.square().sum()) == pytest.approx(energy, abs=1e-9)


def test_new_fields_are_validated_and_presets_named():
    with pytest.raises(WeightprogError, match="input_scaling must be one of static, dynamic"):
        Periphery(input_scaling="adaptive")
    with pytest.raises(WeightprogError, match="output_range must be one of layer, tile, column"):
        Periphery(output_range="row")
    chip = get_periphery("chip")
    assert (chip.dac_bits, chip.adc_bits, chip.input_scaling, chip.output_range) == (7, 9, "dynamic", "column")
    assert chip.output_noise == pytest.approx(0.005)  # aihwkit: out_noise 0.06 over out_bound 12
    assert get_periphery("chip-tile").output_range == "tile"
    for name in ("ideal", "standard", "io8"):  # today's presets keep their meaning
        p = PERIPHERY_PRESETS[name]
        assert (p.input_scaling, p.output_range) == ("static", "layer")


def test_dynamic_scaling_makes_outputs_invariant_to_input_scale():
    layer, x, weights = _one_linear(bias=True)
    x[:, 0] *= 5  # outlier inputs: a static range would be set by them
    peri = Periphery(dac_bits=7, adc_bits=9, input_scaling="dynamic", output_range="column")
    _, ranges = calibrate(weights, peri, lambda: layer(x))
    static = Periphery(dac_bits=7, adc_bits=9)
    _, static_ranges = calibrate(weights, static, lambda: layer(x))
    with torch.no_grad():
        exact = layer(x)
        with attached(weights, peri, ranges):
            y1, y10 = layer(x), layer(10 * x)
        with attached(weights, static, static_ranges):
            s1, s10 = layer(x), layer(10 * x)
    b = layer.bias.detach()
    # the scale of the input drops out, up to a rounding tie (x·10 / (s·10) ≠ x / s in float) on ~1e-4 of them
    assert float(((y10 - b) - 10 * (y1 - b)).abs().gt(1e-4).float().mean()) < 1e-3
    assert not torch.allclose(s10 - b, 10 * (s1 - b), rtol=0.1, atol=0.1)  # a static range clips 10x inputs
    # and the converters still act: quantisation error, small against the output
    err = float((y1 - exact).square().mean() / (exact - b).square().mean())
    assert 1e-7 < err < 1e-3


def test_dynamic_scaling_per_sample_for_convolutions():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, bias=False)
    x = torch.randn(6, 2, 8, 8)
    weights = find_analog_weights(conv)
    peri = Periphery(dac_bits=8, adc_bits=8, input_scaling="dynamic")
    _, ranges = calibrate(weights, peri, lambda: conv(x))
    scaled = x.clone()
    scaled[0] *= 100.0  # one sample 100x larger: only its own scale changes
    with torch.no_grad(), attached(weights, peri, ranges):
        y, ys = conv(x), conv(scaled)
    assert torch.allclose(ys[0], 100 * y[0], rtol=1e-4, atol=1e-3)
    assert torch.equal(ys[1:], y[1:])


def test_per_column_ranges_follow_each_column_and_tiles_group_them():
    layer, x, weights = _one_linear(scales=[100.0] + [1.0] * 7)
    exact = layer(x).detach()
    errors = {}
    for unit in ("layer", "column"):
        peri = Periphery(adc_bits=6, output_percentile=100.0, output_range=unit)
        _, ranges = calibrate(weights, peri, lambda: layer(x))
        with torch.no_grad(), attached(weights, peri, ranges):
            errors[unit] = (layer(x) - exact)[:, 1:].square().mean()
        if unit == "column":
            assert torch.allclose(ranges.columns[id(layer)], exact.abs().amax(0))
    # the large column sets the layer's range: the small columns lose their resolution
    assert errors["layer"] > 100 * errors["column"]
    peri = Periphery(adc_bits=6, output_percentile=100.0, output_range="tile")
    _, ranges = calibrate(weights, peri, lambda: layer(x), tile_cols=3)  # 8 outputs: tiles of 3, 3, 2
    bounds = ranges.columns[id(layer)]
    assert torch.equal(bounds[:3], bounds[0].expand(3)) and bounds[0] == pytest.approx(float(exact[:, :3].abs().max()))
    assert bounds[3] == pytest.approx(float(exact[:, 3:6].abs().max())) and bounds[3] < bounds[0] / 10
    assert bounds[6] == pytest.approx(float(exact[:, 6:].abs().max()))
    layer_ranges = calibrate(weights, Periphery(adc_bits=6), lambda: layer(x))[1]
    with pytest.raises(WeightprogError, match="per-column ranges are missing"), \
            attached(weights, Periphery(adc_bits=6, output_range="column"), layer_ranges):
        pass


def test_output_noise_scales_with_the_column_range():
    layer, x, weights = _one_linear(scales=[10.0, 1.0], inputs=8, outputs=2)
    peri = Periphery(output_noise=0.05, output_percentile=100.0, output_range="column")
    _, ranges = calibrate(weights, peri, lambda: layer(x))
    with torch.no_grad(), attached(weights, peri, ranges, torch.Generator().manual_seed(0)):
        noise = layer(x) - x @ layer.weight.T
    bounds = ranges.columns[id(layer)]
    assert float(bounds[0] / bounds[1]) == pytest.approx(10, rel=0.3)
    for j in range(2):  # 3000 draws per column
        assert float(noise[:, j].std()) == pytest.approx(0.05 * float(bounds[j]), rel=0.05)


def test_clipping_is_counted_and_reported():
    layer, x, weights = _one_linear(bias=True)
    peri = Periphery(adc_bits=8, output_percentile=99.0)
    _, ranges = calibrate(weights, peri, lambda: layer(x))
    counter = Clipping()
    with torch.no_grad(), attached(weights, peri, ranges, clipping=counter):
        layer(x)
    (clip,) = counter.layers(weights)
    assert clip.outputs == x.shape[0] * 8 and clip.fraction == pytest.approx(0.01, abs=0.001)
    def metric(m):
        return float(m(x).detach().square().mean())

    result = evaluate_over_time(layer, metric, "lsp-first", "ideal", (1.0, 10.0), repeats=2, seed=0, periphery=peri)
    (clip,) = result.clipping
    assert clip.layer == "(model)" and clip.outputs == 2 * 2 * x.shape[0] * 8   # R × T evaluations
    assert clip.fraction == pytest.approx(0.01, abs=0.002)   # ideal devices: the calibration's 1 % beyond
    assert result.to_dict()["adc_clipping"][0]["fraction"] == clip.fraction
    assert "ADC clipping: 1.0" in result.format()
    assert evaluate_over_time(layer, metric, "lsp-first", "ideal", (1.0,), repeats=1, seed=0).clipping == []


@pytest.mark.parametrize("make", [
    lambda: nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True),
    lambda: nn.GRU(5, 7, num_layers=2),
    lambda: nn.RNN(5, 7, nonlinearity="relu", bidirectional=True),
    lambda: nn.LSTM(5, 7, bias=False),
])
def test_recurrent_step_by_step_matches_the_module(make):
    from weightprog.nn.crossbar import recurrent_forward
    torch.manual_seed(0)
    rnn = make().eval()
    x = torch.randn(3, 6, 5)
    exact = lambda w, v: torch.nn.functional.linear(v, w)  # noqa: E731
    with torch.no_grad():
        for args in ((x,), (x[0],)):  # batched and unbatched
            want, got = rnn(*args), recurrent_forward(rnn, args, {}, exact)
            assert torch.allclose(got[0], want[0], atol=1e-5)
            for a, b in zip(torch.utils._pytree.tree_leaves(got[1]), torch.utils._pytree.tree_leaves(want[1])):
                assert torch.allclose(a, b, atol=1e-5)
        hx = torch.utils._pytree.tree_map(lambda t: t + 0.5, rnn(x)[1])  # a given initial state
        want = rnn(x, hx)
        assert torch.allclose(recurrent_forward(rnn, (x, hx), {}, exact)[0], want[0], atol=1e-5)


def test_recurrent_products_go_through_the_periphery():
    torch.manual_seed(0)
    model = nn.LSTM(6, 8, num_layers=2).eval()
    x = torch.randn(10, 4, 6)
    weights = find_analog_weights(model)
    counter = Clipping()
    outs = {}
    for mode in ("inputs", "products"):
        peri = Periphery(dac_bits=8, adc_bits=8, output_percentile=99.0, recurrent=mode, input_scaling="dynamic",
                         output_range="column")
        with torch.no_grad():
            digital, ranges = calibrate(weights, peri, lambda: model(x)[0])
            assert torch.equal(digital, model(x)[0])  # calibration leaves the digital run as it is
            with attached(weights, peri, ranges, clipping=counter if mode == "products" else None):
                outs[mode] = model(x)[0]
        if mode == "products":
            assert set(ranges.columns) == {id(w.param) for w in weights}
            assert ranges.columns[id(model.weight_ih_l0)].shape == (32,)  # one range per gate output
    err = {m: float((y - digital).square().mean() / digital.square().mean()) for m, y in outs.items()}
    # the products now carry ADC error and clipping (inputs only: ~8e-7, products: ~2.5e-5)
    assert err["inputs"] < 3e-6 and 10 * err["inputs"] < err["products"] < 1e-3
    clip = {c.layer: c for c in counter.layers(weights)}
    assert set(clip) == {w.name for w in weights}  # every weight's product counted, by its name
    assert clip["weight_ih_l0"].outputs == 10 * 4 * 32 and 0.002 < clip["weight_hh_l1"].fraction < 0.03
    with pytest.raises(WeightprogError, match="packed sequences"), torch.no_grad(), \
            attached(weights, peri, ranges):
        model(nn.utils.rnn.pack_padded_sequence(x, [10, 9, 8, 7]))


def test_column_and_tile_percentiles_are_exact_on_wide_layers():
    # 300 columns × 5000 vectors: a strided sample of rows would miss most of each column's tail
    torch.manual_seed(0)
    layer = nn.Linear(4, 300, bias=False)
    x = torch.randn(5000, 4) * torch.rand(5000, 1) * 3
    weights = find_analog_weights(layer)
    y = layer(x).detach().abs()
    _, ranges = calibrate(weights, Periphery(adc_bits=8, output_range="column"), lambda: layer(x))
    # (to 1e-4: torch.quantile places the rank with q in float32)
    assert torch.allclose(ranges.columns[id(layer)], torch.quantile(y, 0.9999, dim=0), rtol=1e-4)
    _, ranges = calibrate(weights, Periphery(adc_bits=8, output_range="tile"), lambda: layer(x), tile_cols=128)
    tiles = [torch.quantile(y[:, a:a + 100].reshape(-1), 0.9999) for a in (0, 100, 200)]  # 300 → 3 × 100
    assert torch.allclose(ranges.columns[id(layer)], torch.stack(tiles).repeat_interleave(100), rtol=1e-4)


def test_input_tiles_digitised_apart_and_summed_digitally():
    from weightprog.nn.periphery import quantise as q
    layer, x, weights = _one_linear(bias=True, inputs=10, outputs=3, rows=500)
    w, b = layer.weight.detach(), layer.bias.detach()
    fine = Periphery(adc_bits=24, output_range="column", input_tiles="digitised", output_percentile=100.0)
    _, ranges = calibrate(weights, fine, lambda: layer(x), tile_rows=4)
    assert ranges.splits[id(layer)] == [(0, 4), (4, 8), (8, 10)] and ranges.columns[id(layer)].shape == (3, 3)
    with torch.no_grad(), attached(weights, fine, ranges):
        assert torch.allclose(layer(x), x @ w.T + b, atol=1e-5)   # the partial sums add up to the product
    coarse = Periphery(adc_bits=4, output_range="column", input_tiles="digitised", output_percentile=100.0)
    _, ranges = calibrate(weights, coarse, lambda: layer(x), tile_rows=4)
    bounds = ranges.columns[id(layer)]
    want = sum(q(x[:, a:c] @ w[:, a:c].T, bounds[j], 4) for j, (a, c) in enumerate([(0, 4), (4, 8), (8, 10)]))
    assert torch.allclose(bounds[2], (x[:, 8:] @ w[:, 8:].T).abs().amax(0))  # each tile's own range
    with torch.no_grad(), attached(weights, coarse, ranges):
        assert torch.allclose(layer(x), want + b, atol=1e-5)   # each partial sum quantised on its own
    with pytest.raises(WeightprogError, match="input_tiles='digitised' needs output_range"):
        Periphery(input_tiles="digitised")


def test_input_tiles_of_convolutions_and_recurrent_products():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect")
    x = torch.randn(5, 8, 6, 6)
    weights = find_analog_weights(conv)
    fine = Periphery(adc_bits=24, output_range="tile", input_tiles="digitised", output_percentile=100.0)
    _, ranges = calibrate(weights, fine, lambda: conv(x), tile_rows=40)  # 72 rows: 2 tiles of 4 channels
    assert ranges.splits[id(conv)] == [(0, 4), (4, 8)]
    with torch.no_grad():
        exact = conv(x)
        with attached(weights, fine, ranges):
            assert torch.allclose(conv(x), exact, atol=1e-5)
    lstm = nn.LSTM(6, 8).eval()
    seq = torch.randn(7, 3, 6)
    weights = find_analog_weights(lstm)
    fine = Periphery(adc_bits=24, output_range="column", input_tiles="digitised", recurrent="products",
                     input_scaling="dynamic", output_percentile=100.0)
    with torch.no_grad():
        exact, ranges = calibrate(weights, fine, lambda: lstm(seq)[0], tile_rows=4)
        assert ranges.splits[id(lstm.weight_ih_l0)] == [(0, 3), (3, 6)]
        assert ranges.splits[id(lstm.weight_hh_l0)] == [(0, 4), (4, 8)]
        with attached(weights, fine, ranges):
            assert torch.allclose(lstm(seq)[0], exact, atol=1e-5)


def test_quantise_gradient_is_straight_through():
    x = torch.linspace(-2, 2, 1001, requires_grad=True)
    q = quantise(x, 1.0, 8)
    assert len(torch.unique(q)) == 255 and q.abs().max() == 1.0
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # also where it clips, as HWA training takes it


def test_tracked_ranges_move_while_training_and_stay_put_otherwise():
    """`attached(..., tracking=…)`: bounds start at the first batch's max |x| and move by 1 − momentum
    toward each later batch's while training; outside training they stay and no noise is added."""
    from weightprog.nn.attach import Tracking
    from weightprog.nn.calibration import Ranges
    torch.manual_seed(0)
    layer = nn.Linear(4, 3, bias=False)
    weights = find_analog_weights(layer)
    training = [True]
    ranges = Ranges({}, {})
    tracking = Tracking(lambda: training[0], momentum=0.9)
    x1, x2 = torch.randn(8, 4), 3 * torch.randn(8, 4)
    peak = [float(x1.abs().max()), float(x2.abs().max())]
    with attached(weights, get_periphery("standard"), ranges, tracking=tracking), torch.no_grad():
        layer(x1)
        assert ranges.inputs[id(layer)] == pytest.approx(peak[0])
        layer(x2)
        assert ranges.inputs[id(layer)] == pytest.approx(0.9 * peak[0] + 0.1 * peak[1])
        training[0] = False
        frozen = dict(ranges.inputs), dict(ranges.outputs)
        y = layer(3 * x2)
        assert (ranges.inputs, ranges.outputs) == frozen and torch.equal(layer(3 * x2), y)  # no noise
    with attached(weights, get_periphery("io8"), ranges), torch.no_grad():
        assert torch.equal(layer(3 * x2), y)  # what evaluation applies with those ranges


def test_tracked_recurrent_ranges_come_from_the_whole_sequence():
    """Training through recurrent products: each weight's ranges move once per forward, to the peaks
    of its products over the whole sequence (not per step, where h₀ = 0 would start them at 0)."""
    from weightprog.nn.attach import Tracking
    from weightprog.nn.calibration import Ranges
    from weightprog.nn.crossbar import recurrent_forward
    torch.manual_seed(0)
    rnn = nn.LSTM(6, 5, batch_first=True)
    x = torch.randn(3, 7, 6)
    expected: dict[int, torch.Tensor] = {}

    def digital(weight, inputs):  # the products of the digital run, scaled by each input vector's max
        scale = inputs.abs().amax(-1, keepdim=True).clamp_min(1e-30)
        y = nn.functional.linear(inputs / scale, weight)
        peak = y.abs().reshape(-1, y.shape[-1]).amax(0)
        expected[id(weight)] = torch.maximum(expected.get(id(weight), peak), peak)
        return y * scale

    with torch.no_grad():
        recurrent_forward(rnn, (x,), {}, digital)
        ranges = Ranges({}, {})
        peri = Periphery(dac_bits=8, adc_bits=8, input_scaling="dynamic", output_range="column",
                         recurrent="products")
        with attached(find_analog_weights(rnn), peri, ranges, tracking=Tracking()):
            rnn(x)
    for weight in (rnn.weight_ih_l0, rnn.weight_hh_l0):
        assert torch.allclose(ranges.columns[id(weight)], expected[id(weight)], rtol=1e-5)
        assert (expected[id(weight)] > 0).all()
