"""`--weighting fisher` (issue 22 item 5): each weight's error weighted by its diagonal empirical
Fisher information, in the expected objective, the Monte-Carlo re-score and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import weightprog as wp
from weightprog.cli.main import main as cli
from weightprog.errors import WeightprogError
from weightprog.expected import ExpectedTNMSE, weight_bins
from weightprog.metric import rescore
from weightprog.nn.discover import find_analog_weights
from weightprog.nn.fisher import deployed_fisher
from weightprog.nn.limit import deployed_values
from weightprog.nn.spec import ModelSpec
from weightprog.sample import sample_from_values

TIMES = (1.0, 3.1536e7)


class TwoBranches(nn.Module):
    """y = 30·loud(x) + quiet(x): the loss's gradients are 30× larger on `loud`'s weights. `loud`
    has evenly spread weights (|u| up to 1), `quiet` a few large ones and many near zero."""

    def __init__(self):
        super().__init__()
        self.loud, self.quiet = nn.Linear(32, 4, bias=False), nn.Linear(32, 4, bias=False)
        with torch.no_grad():
            self.loud.weight.uniform_(-1, 1)
            self.quiet.weight.normal_(0, 0.02)
            self.quiet.weight[:, 0] = 1.0

    def forward(self, x):
        return 30 * self.loud(x) + self.quiet(x)


def _spec(loss: bool = True) -> ModelSpec:
    torch.manual_seed(0)
    model = TwoBranches()
    x, target = torch.randn(64, 32), torch.randn(64, 4)
    batches = [(x[i:i + 16], target[i:i + 16]) for i in range(0, 64, 16)]

    def losses(m):
        return (((m(a) - b) ** 2).mean() for a, b in batches)
    return ModelSpec(model, lambda m: torch.ones(3), validate=lambda m: torch.ones(3),
                     loss=losses if loss else None)


def test_fisher_moves_the_bins_mass_toward_the_layer_whose_gradients_dominate():
    spec = _spec()
    values, importance = deployed_fisher(spec)
    assert torch.equal(values, deployed_values(find_analog_weights(spec.model)))  # aligned with the density
    loud = importance[:128].sum() / importance.sum()  # `loud` comes first in module order
    assert loud > 0.99
    grid = torch.linspace(0, 1, 6, dtype=torch.float64)
    plain, weighted = weight_bins(values, grid), weight_bins(values, grid, importance=importance)
    assert torch.equal(plain.prob, weighted.prob) and torch.equal(plain.u, weighted.u)  # α keeps the density
    assert torch.equal(plain.importance, plain.prob)
    assert abs(float(weighted.importance.sum()) - 1) < 1e-12
    # `loud`'s weights spread over |u| up to 1, `quiet`'s sit near 0: the mass moves outwards
    mean_u = lambda share: float((share * plain.u).sum())  # noqa: E731
    assert mean_u(weighted.importance) > mean_u(plain.prob) + 0.2
    exact = float((importance * values.abs()).sum() / importance.sum())  # nodes at the density's moments
    assert abs(mean_u(weighted.importance) - exact) < 0.02


def test_the_expected_objective_and_the_rescore_agree_under_fisher_weighting():
    spec = _spec()
    values, importance = deployed_fisher(spec)
    strategy = wp.baseline("lsp-first", wp.Cell((1.0, 2.0)))
    expected = ExpectedTNMSE(values, "pcm", TIMES, importance=importance)(strategy)
    plain = ExpectedTNMSE(values, "pcm", TIMES)(strategy)
    mc = rescore(strategy, values, "pcm", TIMES, blocks=4, size=2048, rows=128, compile=False, importance=importance)
    assert abs(float(mc.mean[0]) - float(expected[0])) < 3 * float(mc.stderr[0])
    assert abs(float(expected[0]) / float(plain[0]) - 1) > 0.05  # the weighting does change the objective
    # an importance that is the same for every weight is the density weighting
    ones = torch.ones_like(values)
    assert torch.allclose(ExpectedTNMSE(values, "pcm", TIMES, importance=ones)(strategy), plain, rtol=1e-5)
    same = rescore(strategy, values, "pcm", TIMES, blocks=1, size=1024, rows=128, compile=False, importance=ones)
    base = rescore(strategy, values, "pcm", TIMES, blocks=1, size=1024, rows=128, compile=False)
    assert torch.allclose(same.per_column, base.per_column, rtol=1e-5)


def test_importance_is_checked_and_must_match_the_weighting():
    values = wp.load_distribution()[:4096]
    with pytest.raises(WeightprogError, match="importances for"):
        sample_from_values(values, 1024, 512, importance=torch.ones(10))
    with pytest.raises(WeightprogError, match="non-negative"):
        sample_from_values(values, 1024, 512, importance=-torch.ones_like(values))
    with pytest.raises(WeightprogError, match="zero importance"):
        ExpectedTNMSE(values, "pcm", TIMES, importance=torch.zeros_like(values))
    sample = sample_from_values(values, 1024, 512)
    with pytest.raises(WeightprogError, match="weighting.*needs each weight's importance"):
        wp.optimize(sample, values, "pcm", wp.OptimizeSettings(weighting="fisher"))
    with pytest.raises(WeightprogError, match="weighting.*an importance was given"):
        wp.optimize(sample, values, "pcm", wp.OptimizeSettings(), importance=torch.ones_like(values))
    with pytest.raises(WeightprogError, match="no 'loss'"):
        deployed_fisher(_spec(loss=False))


SPEC_FILE = '''
import torch
from torch import nn

def build(loss=True):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(600, 16)
    y = model(x).argmax(1)
    correct = lambda a, b: (lambda m: (m(a).argmax(1) == b).double())
    spec = {"model": model, "evaluate": correct(x[:200], y[:200]), "validate": correct(x[200:400], y[200:400]),
            "calibrate": lambda m: m(x[400:])}
    if loss:
        spec["loss"] = lambda m: (nn.functional.cross_entropy(m(x[i:i + 50]), y[i:i + 50]) for i in range(400, 600, 50))
    return spec

def no_loss():
    return build(loss=False)
'''


def test_cli_weighting_fisher_runs_is_recorded_and_is_refused_without_a_loss(tmp_path):
    (tmp_path / "fspec.py").write_text(SPEC_FILE)
    runner = CliRunner()
    out = tmp_path / "opt"
    res = runner.invoke(cli, ["optimize", "--model", f"{tmp_path / 'fspec.py'}:build", "--weighting", "fisher",
                              "--significance", "1,2", "--times", "1d", "--max-generations", "3", "--method", "de",
                              "--rescore-blocks", "1", "--no-polish", "--network-repeats", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "weighting fisher" in res.output and "Fisher-weighted TNMSE" in res.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["weighting"] == "fisher"
    assert "weighting fisher" in (out / "report.html").read_text()

    res = runner.invoke(cli, ["optimize", "--model", f"{tmp_path / 'fspec.py'}:no_loss", "--weighting", "fisher",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no 'loss'" in res.output and len(res.output.strip().splitlines()) <= 2
    res = runner.invoke(cli, ["optimize", "--weighting", "fisher", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "needs --model" in res.output
