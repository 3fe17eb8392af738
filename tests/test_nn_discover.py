"""Layer discovery and the mapping report."""

import pytest
import torch
from torch import nn

from nn_helpers import CASES
from weightprog import Mapping, WeightprogError
from weightprog.nn import find_analog_weights, mapping_report

pytestmark = pytest.mark.usefixtures("one_thread")


def names(model, **kw):
    return [w.name for w in find_analog_weights(model, **kw)]


def test_cnn_finds_every_conv_including_grouped_and_depthwise():
    model, _, _ = CASES["cnn"]()
    found = {w.name: w for w in find_analog_weights(model)}
    assert list(found) == ["conv1.weight", "grouped.weight", "depthwise.weight", "conv1d.weight",
                           "conv3d.weight", "fc.weight"]
    assert found["grouped.weight"].matrix_shape == (8, 4 * 9)  # in/groups · k
    assert found["depthwise.weight"].matrix_shape == (8, 9)
    assert found["conv3d.weight"].matrix_shape == (2, 8)


def test_bidirectional_lstm_and_gru_weights():
    model, _, _ = CASES["lstm"]()
    got = names(model)
    for layer in ("l0", "l1"):
        for suffix in ("", "_reverse"):
            assert f"lstm.weight_ih_{layer}{suffix}" in got and f"lstm.weight_hh_{layer}{suffix}" in got
    assert "gru.weight_ih_l0" in got and "head.weight" in got
    assert not any("embed" in n or "bias" in n for n in got)
    assert len(got) == 8 + 2 + 1


def test_attention_fused_and_separate_projections():
    model, _, _ = CASES["transformer"]()
    got = names(model)
    assert "encoder.layers.0.self_attn.in_proj_weight" in got
    assert "encoder.layers.1.self_attn.out_proj.weight" in got
    assert [n for n in got if n.startswith("cross.") and "proj_weight" in n] == \
        ["cross.q_proj_weight", "cross.k_proj_weight", "cross.v_proj_weight"]
    assert not any("norm" in n for n in got)


def test_gpt2_conv1d_is_transposed_and_tied_head_stays_digital():
    model, _, _ = CASES["gpt2"]()
    found = find_analog_weights(model)
    assert [w.name for w in found] == ["c_attn.weight", "c_proj.weight", "mlp.weight"]
    c_attn = found[0]
    assert c_attn.kind == "conv1d-t" and c_attn.param.shape == (16, 48)
    assert c_attn.matrix_shape == (48, 16)  # out × in on the crossbar
    before = c_attn.param.detach().clone()
    c_attn.write(c_attn.matrix() * 2)
    assert torch.equal(c_attn.param.detach(), before * 2)


def test_include_exclude_globs():
    model, _, _ = CASES["lstm"]()
    assert names(model, include="lstm") == [n for n in names(model) if n.startswith("lstm.")]
    assert names(model, exclude=["lstm.weight_hh_*", "gru"]) == \
        ["lstm.weight_ih_l0", "lstm.weight_ih_l0_reverse", "lstm.weight_ih_l1", "lstm.weight_ih_l1_reverse",
         "head.weight"]


def test_no_analog_layers_is_a_clear_error():
    with pytest.raises(WeightprogError, match="no analog layers found"):
        find_analog_weights(nn.Sequential(nn.Embedding(5, 3), nn.LayerNorm(3)))
    model, _, _ = CASES["cnn"]()
    with pytest.raises(WeightprogError, match="include/exclude"):
        find_analog_weights(model, include="nothing*")
    with pytest.raises(WeightprogError, match="torch.nn.Module"):
        find_analog_weights("model")


def test_mapping_report_tiles_and_counts():
    model = nn.Sequential(nn.Linear(600, 1100), nn.ReLU(), nn.Linear(1100, 10))
    weights = find_analog_weights(model)
    report = mapping_report(model, weights, Mapping(512, 512))
    assert [layer.tiles for layer in report.layers] == [(3, 2), (1, 3)]
    assert report.analog_weights == 600 * 1100 + 1100 * 10
    assert report.digital_params == 1100 + 10
    assert report.tiles == 9
    text = report.format()
    assert "0.weight" in text and "9 tiles" in text
    assert report.to_dict()["layers"][0]["matrix"] == [1100, 600]
