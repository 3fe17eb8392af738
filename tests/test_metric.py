"""The TNMSE metric: zero when ideal, deterministic, the fused path equals the plain one."""

import math

import pytest
import torch

from weightprog.baselines import BASELINES, baseline
from weightprog.cell import Cell
from weightprog.errors import WeightprogError
from weightprog.expected import ExpectedTNMSE
from weightprog.hardware import Mapping, ProgrammedTensor
from weightprog.metric import TNMSE, rescore
from weightprog.sample import default_sample, load_distribution, sample_from_array, sample_from_module
from weightprog.strategy import Strategy

SAMPLE = default_sample()


@pytest.mark.parametrize("name", BASELINES)
def test_ideal_device_gives_zero(name):
    result = TNMSE(SAMPLE, "ideal", compile=False).evaluate(baseline(name, Cell((1.0, 2.0))))
    assert float(result.mean[0]) < 1e-12


def test_deterministic_for_seed_and_batched():
    strategies = Strategy.stack([baseline(n, Cell((1.0, 2.0))) for n in BASELINES])
    a = TNMSE(SAMPLE, "pcm", seed=3, compile=False).evaluate(strategies)
    b = TNMSE(SAMPLE, "pcm", seed=3, compile=False, chunk=1).evaluate(strategies)
    torch.testing.assert_close(a.per_column, b.per_column)
    alone = TNMSE(SAMPLE, "pcm", seed=3, compile=False).evaluate(baseline("msp-first", Cell((1.0, 2.0))))
    torch.testing.assert_close(a.per_column[2], alone.per_column[0])
    c = TNMSE(SAMPLE, "pcm", seed=4, compile=False).evaluate(strategies)
    assert not torch.equal(a.per_column, c.per_column)


def test_metric_matches_programming_simulation():
    """Same quantity as programming the sample as a crossbar (columns of 512) and reading it."""
    strategy = baseline("lsp-first", Cell((1.0, 2.0)))
    times = (60.0, 3.15e7)
    metric = TNMSE(SAMPLE, "pcm", times, seed=0, compile=False).evaluate(strategy)
    reps, errs = 30, torch.zeros(2)
    gen = torch.Generator().manual_seed(9)
    for _ in range(reps):
        p = ProgrammedTensor(SAMPLE.u, strategy, "pcm", Mapping(normalise="tensor"), gen)
        errs += torch.tensor([((p.read(t, gen) - SAMPLE.u) ** 2).mean().item() for t in times])
    errs /= reps
    # metric: one realisation → tolerance from its per-column spread
    for k in range(2):
        tol = 5 * float(metric.per_time_stderr[0, k]) + 5 * float(metric.per_time_stderr[0, k]) / math.sqrt(reps)
        assert abs(float(metric.per_time[0, k]) - float(errs[k])) < tol


def test_gradient_flows_to_conductances():
    s = baseline("lsp-first", Cell((1.0, 2.0))).regrid(torch.linspace(0, 1, 6, dtype=torch.float64))
    objective = TNMSE(SAMPLE, "pcm", compile=False)
    g = s.conductances.clone().float().requires_grad_(True)
    loss = objective.per_column(s.grid, g, s.significance, s.beta, grad=True).mean()
    loss.backward()
    assert torch.isfinite(g.grad).all() and g.grad.abs().sum() > 0


def test_compiled_equals_eager():
    s = Strategy.stack([baseline(n, Cell((1.0, 2.0))) for n in BASELINES]).regrid(torch.linspace(0, 1, 7))
    eager = TNMSE(SAMPLE, "pcm", compile=False).evaluate(s)
    fused = TNMSE(SAMPLE, "pcm", compile=True, chunk=4).evaluate(s)
    torch.testing.assert_close(fused.per_column, eager.per_column, rtol=2e-4, atol=1e-8)


def test_rescore_uses_fresh_samples():
    s = baseline("lsp-first", Cell((1.0, 2.0)))
    r = rescore(s, load_distribution(), "pcm", blocks=3, compile=False)
    assert r.per_column.shape == (1, 6, 60)
    single = TNMSE(SAMPLE, "pcm", compile=False).evaluate(s)
    assert abs(float(r.mean[0]) - float(single.mean[0])) < 5 * (float(r.stderr[0]) + float(single.stderr[0]))


def test_sample_builders():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 600), torch.nn.LayerNorm(600),
                                torch.nn.Linear(600, 3))
    s = sample_from_module(model, size=1024, rows=512)
    assert s.u.shape == (2, 512) and s.u.abs().max() <= 1
    s = sample_from_array(torch.randn(100, 100).numpy(), size=2048)
    assert s.u.shape == (4, 512) and float(s.u.abs().max()) <= 1.0
    with pytest.raises(WeightprogError, match="NaN or inf"):
        sample_from_array([[1.0, float("inf")], [0.0, 1.0]], size=512)
    with pytest.raises(WeightprogError, match="no analog weights"):
        sample_from_module(torch.nn.Sequential(torch.nn.LayerNorm(4)))


@pytest.mark.parametrize("times", [(0.0, 1.0), (10.0, 5.0), (-1.0,)])
def test_bad_times(times):
    with pytest.raises(WeightprogError, match="times"):
        TNMSE(SAMPLE, "pcm", times, compile=False)


def test_layer_compensation_is_one_alpha_and_all_is_its_old_name():
    """`layer`: one α for the whole sample (the metric called it `all` before the scopes had one
    vocabulary; settings and checkpoints on disk may still say so). The number is the one `all`
    gave before the rename (lsp-first, f=1,2, PCM, seed 0)."""
    strategy = baseline("lsp-first", Cell((1.0, 2.0)))
    layer = TNMSE(SAMPLE, "pcm", compensation="layer", compile=False)
    old = TNMSE(SAMPLE, "pcm", compensation="all", compile=False)
    assert old.compensation == "layer"
    a, b = layer.evaluate(strategy), old.evaluate(strategy)
    torch.testing.assert_close(a.per_column, b.per_column, rtol=0, atol=0)
    assert float(a.mean[0]) == pytest.approx(8.2353042671e-04, rel=1e-5)
    column = TNMSE(SAMPLE, "pcm", compensation="column", compile=False).evaluate(strategy)
    assert not torch.equal(a.per_column, column.per_column)
    expected = ExpectedTNMSE(SAMPLE, "pcm", compensation="all")
    assert expected.compensation == "layer"
    assert float(expected(strategy)[0]) == pytest.approx(8.1982817695e-04, rel=1e-5)
    with pytest.raises(WeightprogError, match="compensation: use one of column, layer, none, got 'tile'"):
        TNMSE(SAMPLE, "pcm", compensation="tile", compile=False)
