"""The periphery's fused CPU kernels give the eager path's values, and fall back to it."""

import pytest
import torch
from torch import nn

from weightprog.nn import Clipping, attached, calibrate, find_analog_weights, fused, get_periphery

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(model, x, peri, ranges, weights):
    clipping = Clipping()
    with attached(weights, peri, ranges, torch.Generator().manual_seed(3), clipping), torch.no_grad():
        y = model(x)
    return y, [(c.layer, c.outputs, c.clipped) for c in clipping.layers(weights)]


@pytest.mark.parametrize("preset", ["chip", "chip-8bit"])
def test_fused_equals_eager(monkeypatch, preset):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False),
                          nn.Flatten(), nn.Linear(8 * 8 * 8, 10)).eval()
    x = torch.randn(16, 3, 8, 8)
    weights, peri = find_analog_weights(model), get_periphery(preset)
    _, ranges = calibrate(weights, peri, lambda: model(x), tile_rows=32)  # the middle conv: 3 input tiles
    monkeypatch.setattr(fused, "MIN_NUMEL", 1)
    y, clipped = _run(model, x, peri, ranges, weights)
    monkeypatch.setattr(fused, "usable", lambda t, any_size=False: False)
    y_eager, clipped_eager = _run(model, x, peri, ranges, weights)
    assert torch.equal(y, y_eager) and clipped == clipped_eager


def test_fallback_when_compiling_fails(monkeypatch):
    torch.manual_seed(0)
    layer = nn.Linear(16, 4)
    x = torch.randn(64, 16)
    weights, peri = find_analog_weights(layer), get_periphery("chip")
    _, ranges = calibrate(weights, peri, lambda: layer(x))
    y_eager, _ = _run(layer, x, peri, ranges, weights)

    def broken(fn, dynamic):
        raise RuntimeError("no compiler")
    monkeypatch.setattr(fused, "_compiled", broken)
    monkeypatch.setattr(fused, "_broken", [])
    monkeypatch.setattr(fused, "MIN_NUMEL", 1)
    with pytest.warns(UserWarning, match="fused kernels unavailable"):
        y, _ = _run(layer, x, peri, ranges, weights)
    assert torch.equal(y, y_eager) and fused._broken


@pytest.mark.parametrize("layer", ["conv", "linear"])
def test_tile_products_equal_the_module_product_and_partials(monkeypatch, layer):
    # digitised input tiles from their own products (crossbar.tile_products) against the module's
    # own product with the tiles' partial sums taken apart (the path for what it does not cover)
    torch.manual_seed(0)
    model = (nn.Sequential(nn.Conv2d(10, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1))
             if layer == "conv" else nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 5))).eval()
    x = torch.randn(32, 10, 6, 6) if layer == "conv" else torch.randn(64, 40)
    weights = find_analog_weights(model)
    peri = get_periphery("chip-8bit")
    _, ranges = calibrate(weights, peri, lambda: model(x), tile_rows=30)  # 3 and 2 (conv), 2 (linear) tiles
    assert ranges.splits
    quiet = type(peri)(**{**peri.to_dict(), "output_noise": 0.0})
    grouped, clipped = _run(model, x, quiet, ranges, weights)
    monkeypatch.setattr("weightprog.nn.crossbar.tile_products", lambda *a: None)
    apart, clipped_apart = _run(model, x, quiet, ranges, weights)
    step = float(max(v.max() for v in ranges.columns.values())) / 127
    assert (grouped - apart).abs().max() <= 3 * step and clipped == clipped_apart
    assert (grouped != apart).float().mean() < 0.05  # round-off flips an ADC level now and then
    noisy, _ = _run(model, x, peri, ranges, weights)
    assert not torch.equal(noisy, grouped)


def test_recurrent_products_in_one_kernel_equal_eager(monkeypatch):
    # each step's product (DAC, matmul, noise, ADC) is one compiled call; the eager chain gives the same values
    torch.manual_seed(0)
    lstm = nn.LSTM(16, 24, num_layers=2)
    x = torch.randn(7, 5, 16)
    weights, peri = find_analog_weights(lstm), get_periphery("chip-8bit")
    _, ranges = calibrate(weights, peri, lambda: lstm(x))
    calls = []
    product = fused.product
    monkeypatch.setattr(fused, "product", lambda *a: calls.append(1) or product(*a))
    y, clipped = _run(lambda t: lstm(t)[0], x, peri, ranges, weights)
    assert len(calls) == 2 * (1 + 7)  # per layer: the input product over the sequence, one per step
    monkeypatch.setattr(fused, "usable", lambda t, any_size=False: False)
    y_eager, clipped_eager = _run(lambda t: lstm(t)[0], x, peri, ranges, weights)
    assert torch.equal(y, y_eager) and clipped == clipped_eager


def _blocks_against_steps(monkeypatch, rnn: nn.Module, x: torch.Tensor):
    """(outputs, clip counts) of `rnn` with its steps in blocks of 2 (the last one padded) and step by step."""
    weights, peri = find_analog_weights(rnn), get_periphery("chip-8bit")
    _, ranges = calibrate(weights, peri, lambda: rnn(x))
    monkeypatch.setattr(fused, "STEP_BLOCK", 2)  # a short graph: seconds to compile, not a minute
    monkeypatch.setattr(fused, "MIN_BLOCK_OUTPUTS", 1)
    calls = []
    block = fused.recurrent_block
    monkeypatch.setattr(fused, "recurrent_block", lambda *a: calls.append(a[1].shape[0]) or block(*a))
    y, clipped = _run(lambda t: rnn(t)[0], x, peri, ranges, weights)
    assert calls and set(calls) == {2, 1}  # 7 steps: three blocks of 2 and a padded one of 1, per direction
    monkeypatch.setattr(fused, "blocks_pay", lambda gi: False)
    y_steps, clipped_steps = _run(lambda t: rnn(t)[0], x, peri, ranges, weights)
    return (y, clipped), (y_steps, clipped_steps)


def test_recurrent_steps_in_blocks_equal_step_by_step(monkeypatch):
    # a bidirectional LSTM's steps a block per kernel call: the same products, noise seeds (drawn in
    # step order) and clip counts as step by step; the fused gates may round differently (~1e-7)
    torch.manual_seed(0)
    lstm = nn.LSTM(16, 24, num_layers=2, bidirectional=True).eval()
    (y, clipped), (y_steps, clipped_steps) = _blocks_against_steps(monkeypatch, lstm, torch.randn(7, 5, 16))
    assert torch.allclose(y, y_steps, atol=1e-6) and clipped == clipped_steps
    assert sum(c for _, _, c in clipped) > 0  # the ADC clips, so the counts are compared on something


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: nn.GRU(16, 24), lambda: nn.RNN(16, 24, nonlinearity="relu", bias=False)])
def test_gru_and_rnn_steps_in_blocks_equal_step_by_step(monkeypatch, make):
    torch.manual_seed(0)
    (y, clipped), (y_steps, clipped_steps) = _blocks_against_steps(monkeypatch, make().eval(), torch.randn(7, 5, 16))
    assert torch.allclose(y, y_steps, atol=1e-6) and clipped == clipped_steps


def test_trailing_dimensions_collapse_only_where_broadcast_and_layout_allow():
    y = torch.zeros(4, 3, 5, 6)
    assert fused._flat_tail(y, torch.ones(3, 1, 1), torch.ones(4, 1, 1, 1)) == 2  # a conv's H, W
    assert fused._flat_tail(y, torch.ones(3, 1, 6)) == 0  # the bound varies along W
    assert fused._flat_tail(y, torch.ones(())) == 3 and fused._flat_tail(torch.zeros(4, 5)) == 0
    tiles = torch.zeros(4, 2, 3, 5, 6).movedim(1, 0)  # tiles stacked first from one product: H, W one block
    assert fused._flat_tail(tiles, torch.ones(2, 1, 3, 1, 1)) == 2
    assert fused._flat_tail(y.transpose(2, 3), torch.ones(3, 1, 1)) == 0


@pytest.mark.parametrize("layers, compiled", [(3, True), (1, False)])
def test_small_tensors_are_read_compiled_where_the_network_repays_it(monkeypatch, layers, compiled):
    # each 20 x 20 weight (1,600 devices) is below MIN_NUMEL; three of them together are above it
    from weightprog.baselines import baseline
    from weightprog.cell import Cell
    from weightprog.nn import ProgrammedModel

    monkeypatch.setattr(fused, "MIN_NUMEL", 3000)
    calls = []
    real = fused._call
    monkeypatch.setattr(fused, "_call", lambda fn, *a, **k: calls.append(fn.__name__) or real(fn, *a, **k))
    model = nn.Sequential(*[nn.Linear(20, 20) for _ in range(layers)])
    programmed = ProgrammedModel(find_analog_weights(model), baseline("lsp-first", Cell((1.0, 2.0))), "pcm",
                                 generator=torch.Generator().manual_seed(0))
    programmed.write(3600.0, torch.Generator().manual_seed(1))
    assert calls == (["_device_read"] * layers if compiled else [])


def test_gaussian_noise_is_standard_normal_and_counter_based():
    from weightprog.nn import noise

    like = torch.zeros(1 << 20)
    z = noise.gaussian(like, torch.tensor(7, dtype=torch.int32))
    assert abs(float(z.mean())) < 0.005 and abs(float(z.std()) - 1) < 0.005
    assert abs(float((z ** 4).mean()) - 3) < 0.05 and float(z.abs().max()) < 5.8
    assert abs(float(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1])) < 0.005  # neighbours independent
    assert torch.equal(z, noise.gaussian(like, torch.tensor(7, dtype=torch.int32)))
    assert not torch.equal(z, noise.gaussian(like, torch.tensor(8, dtype=torch.int32)))


@pytest.mark.parametrize("compiled", [True, False])
def test_fused_device_read_is_the_device_law(monkeypatch, compiled):
    # the network path's read (one seed per weight tensor, one pass) against DeviceModel.read with
    # the same standard normals, combined and compensated as ProgrammedTensor.read does it
    from weightprog.baselines import baseline
    from weightprog.cell import Cell
    from weightprog.devices import get_device
    from weightprog.hardware import ProgrammedTensor
    from weightprog.nn import noise
    from weightprog.nn.program import _read

    monkeypatch.setattr(fused, "MIN_NUMEL", 1 if compiled else 1 << 40)
    device = get_device("pcm")
    programmed = ProgrammedTensor(torch.randn(24, 40) * 0.1, baseline("lsp-first", Cell((1.0, 2.0))), device,
                                  generator=torch.Generator().manual_seed(0))
    for t in (1.0, 3600.0, 3.15e7):
        got = _read(programmed, t, torch.Generator().manual_seed(5))
        seed = noise.seed(torch.Generator().manual_seed(5), torch.device("cpu"))
        z = noise.gaussian(programmed.state.g_prog, seed)
        expected = programmed.finish(programmed._normalised(device.read(programmed.state, t, z_read=z)))
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not fused._broken  # the compiled case compiled (a failure would fall back to eager unseen)
