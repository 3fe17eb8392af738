"""Scaled devices: `NAME:KEY=FACTOR,...` multiplies a device's curves."""

import pytest
import torch

import weightprog as wp
from weightprog.devices import Scales, get_device
from weightprog.errors import WeightprogError

G = torch.linspace(0.0, 25.0, 11, dtype=torch.float64)


def test_curves_are_multiplied():
    base, scaled = get_device("pcm"), get_device("pcm:programming=4,read=0.5,drift_mean=2,drift_std=0")
    assert torch.allclose(scaled.programming_std(G), 4 * base.programming_std(G))
    assert torch.allclose(scaled.read_q(G), 0.5 * base.read_q(G))
    assert torch.allclose(scaled.drift_mean(G), 2 * base.drift_mean(G))
    assert torch.all(scaled.drift_std(G) == 0)
    assert scaled.name == "pcm:programming=4,drift_mean=2,drift_std=0,read=0.5"


def test_g_max_stretches_the_range_and_keeps_the_programming_error():
    base, wide = get_device("rram-hfox"), get_device("rram-hfox:g_max=2")
    assert wide.g_max == 2 * base.g_max
    assert torch.allclose(wide.programming_std(2 * G), base.programming_std(G))
    assert torch.allclose(wide.read_q(2 * G), base.read_q(G))


def test_scaled_noise_moves_the_metric_the_right_way():
    sample = wp.default_sample(2048)
    strategy = wp.baseline("lsp-first", wp.Cell((1, 2)))
    scores = [float(wp.TNMSE(sample, dev, seed=1, compile=False).evaluate(strategy).mean[0])
              for dev in ("pcm:programming=0.5,read=0.5", "pcm", "pcm:programming=4,read=4")]
    assert scores[0] < scores[1] < scores[2]
    # noise ×4 on both is far worse than ×1: most of the error is programming and read noise
    assert scores[2] > 4 * scores[1]


@pytest.mark.parametrize("spec, words", [
    ("pcm:foo=2", "KEY=FACTOR"), ("pcm:read=x", "not a number"), ("pcm:read=-1", "must be >= 0"),
    ("pcm:g_max=0", "must be > 0"), ("pcm:read=2,read=3", "given twice"), ("nope:read=2", "unknown device"),
])
def test_bad_scales_are_one_line_errors(spec, words):
    with pytest.raises(WeightprogError, match=words):
        get_device(spec)


def test_scales_parse_round_trip():
    s = Scales.parse("read=4,programming=4")
    assert s == Scales(programming=4.0, read=4.0) and s.label() == "programming=4,read=4"
