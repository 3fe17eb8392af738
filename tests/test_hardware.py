"""Programming weight tensors: exactness without noise, compensation, mapping units, bad input."""

import math

import pytest
import torch

from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.devices import PCMDevice
from weightprog.errors import WeightprogError
from weightprog.hardware import Mapping, ProgrammedTensor, program_weights

LSP2 = baseline("lsp-first", Cell((1.0, 2.0)))


class DriftOnly(PCMDevice):
    """PCM drift, no programming or read noise."""

    def programming_std(self, g):
        return torch.zeros_like(g)

    def read_q(self, g):
        return torch.zeros_like(g)

    def drift_std(self, g):
        return torch.zeros_like(g)


@pytest.mark.parametrize("shape", [(7,), (40, 30), (16, 3, 3, 3), (600, 700)])
@pytest.mark.parametrize("mapping", [Mapping(), Mapping(normalise="tile", compensation="tile"),
                                     Mapping(normalise="tensor", compensation="layer", tile_rows=64)])
def test_ideal_device_reproduces_weights(shape, mapping):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for name in ("single-pair", "lsp-first", "msp-first"):
        outs = program_weights(w, baseline(name, Cell((1.0, 3.0))), "ideal", [1.0, 3.15e7], mapping)
        for out in outs:
            assert out.shape == w.shape
            torch.testing.assert_close(out, w, rtol=1e-5, atol=1e-6)


def test_per_column_compensation_undoes_pure_drift():
    """Same drift exponent for every device of a column: α restores the weights exactly."""
    class UniformDrift(DriftOnly):
        def drift_mean(self, g):
            return torch.full_like(g, 0.06)

    w = torch.randn(64, 300, generator=torch.Generator().manual_seed(1))
    p = ProgrammedTensor(w, LSP2, UniformDrift(), Mapping(tile_rows=128))
    for t in (1.0, 3600.0, 3.15e7):
        torch.testing.assert_close(p.read(t), w, rtol=1e-5, atol=1e-6)
    raw = ProgrammedTensor(w, LSP2, UniformDrift(), Mapping(compensation="none")).read(3.15e7)
    assert (raw.abs().sum() / w.abs().sum()).item() == pytest.approx(((3.15e7 + 20) / 20) ** -0.06, rel=1e-5)


def test_compensation_helps_under_real_drift():
    w = torch.randn(256, 512, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(0)
    errs = {}
    for comp in ("column", "none"):
        p = ProgrammedTensor(w, LSP2, "pcm", Mapping(compensation=comp), torch.Generator().manual_seed(0))
        errs[comp] = ((p.read(3.15e7, gen) - w) ** 2).mean().item()
    assert errs["column"] < 0.2 * errs["none"]


def test_normalisation_units():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    p = ProgrammedTensor(w, LSP2, "ideal", Mapping(normalise="column"))
    assert p.w_max.flatten()[:2].tolist() == [2.0, 0.5]
    p = ProgrammedTensor(w, LSP2, "ideal", Mapping(normalise="tensor"))
    assert p.w_max.flatten()[:1].tolist() == [2.0]


def test_noise_reproducible_for_seed_and_fresh_per_read():
    w = torch.randn(32, 32, generator=torch.Generator().manual_seed(3))
    a = program_weights(w, LSP2, "pcm", [1.0, 1.0], seed=5)
    b = program_weights(w, LSP2, "pcm", [1.0, 1.0], seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1])  # read noise is fresh on every read


def test_bad_input():
    with pytest.raises(WeightprogError, match="NaN or inf"):
        program_weights(torch.tensor([[1.0, math.nan]]), LSP2, "pcm")
    with pytest.raises(WeightprogError, match="device range"):
        program_weights(torch.ones(2, 2), baseline("lsp-first", Cell((1.0, 2.0)), 0, 30), "pcm")
    with pytest.raises(WeightprogError, match="compensation: use one of column, tile, layer, none, got 'row'"):
        Mapping(compensation="row")


def test_compensation_all_is_read_as_layer():
    """`all` (the metric's old name for one α over everything) is the `layer` scope."""
    assert Mapping(compensation="all") == Mapping(compensation="layer")
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(1))
    reads = [program_weights(w, LSP2, "pcm", (60.0, 3.15e7), Mapping(compensation=c), seed=2) for c in ("all", "layer")]
    for x, y in zip(*reads):
        assert torch.equal(x, y)
