"""Streaming weight samples of large models (weightprog.largescale)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from weightprog import WeightprogError, sample_from_values
from weightprog.largescale import iter_file_tensors, sample_file, sample_large, stream_values
from weightprog.sample import analog_tensors, pooled_values

NAMES = ["body.0.weight", "body.2.weight", "body.3.weight"]


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)  # digital: skipped
        self.body = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 60), nn.Conv1d(60, 8, 3))
        self.norm = nn.LayerNorm(8)  # digital: skipped


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Small()


def test_small_model_equals_pooled_values_and_sample():
    model = small_model()
    tensors = list(analog_tensors(dict(model.named_parameters())))
    assert [n for n, _ in tensors] == NAMES  # no embedding, no norm
    pooled = pooled_values(tensors, "column")
    streamed = sample_large(model, size=1024, rows=512, seed=3, values_size=10_000)
    assert streamed.total_weights == pooled.numel() == 16 * 40 + 40 * 60 + 60 * 8 * 3
    assert streamed.tensors == NAMES
    assert torch.equal(streamed.values, pooled)  # everything fits: same values, same order
    expected = sample_from_values(pooled, 1024, 512, seed=3)
    sample, values = streamed
    assert torch.equal(sample.u, expected.u) and values is streamed.values
    # a state dict and a plain iterable of pairs give the same
    assert torch.equal(sample_large(model.state_dict(), size=1024, seed=3, values_size=10_000).values, pooled)
    assert torch.equal(sample_large(iter(tensors), size=1024, seed=3, values_size=10_000).values, pooled)
    tensor_norm = sample_large(model, size=1024, seed=3, values_size=10_000, normalise="tensor").values
    assert torch.equal(tensor_norm, pooled_values(tensors, "tensor"))


def test_reservoir_is_a_uniform_sample_without_replacement(one_thread):
    """Every weight equally likely (per layer and within layers), no weight twice, values exact."""
    gen = torch.Generator().manual_seed(0)
    sizes = [(10, 100), (30, 100), (60, 100)]  # 1,000 / 3,000 / 6,000 weights
    tensors = [(f"l{i}.weight", torch.randn(*s, generator=gen)) for i, s in enumerate(sizes)]
    pooled = pooled_values(tensors, "column").numpy()
    # continuous values identify their weight, except each row's ±1 (its own maximum): those are left out
    order = np.argsort(pooled, kind="stable")
    sorted_values = pooled[order]
    distinct, copies = np.unique(pooled, return_counts=True)
    unique = copies[np.searchsorted(distinct, pooled)] == 1
    assert 9000 < unique.sum() < 10_000
    n_total, k, runs = len(pooled), 500, 300
    # eight bins: each layer's first and second half, and the last layer's quarters
    edges = [0, 500, 1000, 2500, 4000, 5500, 7000, 8500, 10_000]
    counts = np.zeros((runs, len(edges) - 1))
    for r in range(runs):
        values, total, _ = stream_values(iter(tensors), values_size=k, seed=r)
        assert total == n_total and values.numel() == k
        v = values.numpy()
        pos = np.searchsorted(sorted_values, v)
        assert np.array_equal(sorted_values[np.minimum(pos, n_total - 1)], v)  # every value is a weight's
        idx = order[pos]
        idx = idx[unique[idx]]
        assert len(np.unique(idx)) == len(idx)  # without replacement
        counts[r] = np.histogram(idx, edges)[0]
    for b in range(len(edges) - 1):
        n = int(unique[edges[b]:edges[b + 1]].sum())
        p = n / n_total
        var = k * p * (1 - p) * (n_total - k) / (n_total - 1)  # hypergeometric
        tol = 4 * math.sqrt(var / runs)
        assert abs(counts[:, b].mean() - k * p) < tol, (b, counts[:, b].mean(), k * p, tol)


def test_seeded_and_bounded():
    model = small_model(1)
    a = sample_large(model, size=512, rows=256, seed=5, values_size=700)
    b = sample_large(model, size=512, rows=256, seed=5, values_size=700)
    c = sample_large(model, size=512, rows=256, seed=6, values_size=700)
    assert a.values.numel() == 700 and a.total_weights > 700
    assert torch.equal(a.values, b.values) and torch.equal(a.sample.u, b.sample.u)
    assert not torch.equal(a.values, c.values)
    assert a.values.abs().max() <= 1 and a.sample.u.shape == (2, 256)


def test_errors_name_the_tensor():
    model = small_model()
    with torch.no_grad():
        model.body[2].weight[0, 0] = float("nan")
    with pytest.raises(WeightprogError, match=r"body\.2\.weight: 1 weights are NaN"):
        sample_large(model, size=512, values_size=100)
    with pytest.raises(WeightprogError, match="no analog weights"):
        sample_large(nn.Sequential(nn.LayerNorm(4)), size=512)
    with pytest.raises(WeightprogError, match="normalise"):
        sample_large(small_model(), normalise="row")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_files_stream_tensor_by_tensor(tmp_path, suffix):
    model = small_model(2)
    path = tmp_path / f"model{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    names = [n for n, _ in iter_file_tensors(path)]
    assert names == NAMES
    from_file = sample_file(path, size=512, rows=256, seed=1, values_size=900)
    in_memory = sample_large(model, size=512, rows=256, seed=1, values_size=900)
    assert torch.equal(from_file.values, in_memory.values)
    assert torch.equal(from_file.sample.u, in_memory.sample.u)
    with pytest.raises(WeightprogError, match="not found"):
        sample_file(tmp_path / "missing.pt")
