"""Model specs with splits, per-example intervals and paired verdicts, the limit, and strategies
chosen on the network (issue 22)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import weightprog as wp
from weightprog.cli.main import main as cli
from weightprog.errors import WeightprogError
from weightprog.nn import evaluate_over_time
from weightprog.nn.discover import find_analog_weights
from weightprog.nn.limit import compute_limit, deployed_values
from weightprog.nn.spec import ModelSpec
from weightprog.nn.stats import Interval, metric_interval, paired_interval
from weightprog.sample import sample_from_values
from weightprog.select import NetworkSettings, resolved_choice, select_on_network

TIMES = (1.0, 86400.0, 3.1536e7)


def _classifier(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    x = torch.randn(900, 16)
    y = model(x).argmax(1)
    return model, x, y


def _correct(x, y):
    return lambda m: (m(x).argmax(1) == y).double()


def test_spec_forms_and_errors():
    model, x, y = _classifier()
    fn = _correct(x, y)
    assert ModelSpec.of((model, fn)).validate is None
    spec = ModelSpec.of({"model": model, "evaluate": fn, "validate": fn, "higher_is_better": False, "metric": "err"})
    assert spec.selection_split == "validate" and spec.metric_name == "err" and not spec.higher_is_better
    with pytest.raises(WeightprogError, match="did you mean 'validate'"):
        ModelSpec.of({"model": model, "evaluate": fn, "validat": fn})
    with pytest.raises(WeightprogError, match="needs 'model' and 'evaluate'"):
        ModelSpec.of({"model": model})
    with pytest.raises(WeightprogError, match="'calibrate' must be a function"):
        ModelSpec.of({"model": model, "evaluate": fn, "calibrate": 3})
    with pytest.raises(WeightprogError, match="higher_is_better"):
        ModelSpec.of({"model": model, "evaluate": fn, "higher_is_better": "yes"})
    with pytest.raises(WeightprogError, match="1-D tensor"):
        spec.reduce(torch.zeros(2, 3), "here")
    assert spec.reduce(torch.tensor([1.0, 3.0]), "here").value == 2.0


def test_test_data_is_never_run_before_it_is_scored():
    """Calibration runs `calibrate`; `evaluate` (test) is called once per score and never earlier."""
    model, x, y = _classifier()
    calls: list[str] = []

    def test_fn(m):
        assert calls and calls[0] == "calibrate", "test data touched before calibration finished"
        calls.append("test")
        return _correct(x[:300], y[:300])(m)

    def calibrate(m):
        calls.append("calibrate")
        m(x[600:])

    spec = {"model": model, "evaluate": test_fn, "validate": _correct(x[300:600], y[300:600]), "calibrate": calibrate}
    res = evaluate_over_time(spec, strategies=["lsp-first"], device="pcm", times_s=(1.0, 60.0), repeats=2,
                             periphery="chip-8bit")
    assert calls[0] == "calibrate" and calls.count("calibrate") == 1
    assert calls.count("test") == 1 + 2 * 2  # the digital score, then each realisation × time
    assert res.calibrated_on == "calibrate" and res.split == "test"
    assert res.examples is not None and res.examples.shape == (1, 2, 2, 300)
    assert torch.allclose(res.metrics, res.examples.double().mean(-1))
    # the older (model, evaluate) form calibrates on the scored data and says so
    old = evaluate_over_time(model, _correct(x, y), ["lsp-first"], "pcm", (1.0,), 1, periphery="chip-8bit")
    assert old.calibrated_on == "test"


def test_aggregate_and_direction_reach_the_results():
    model, x, y = _classifier()

    def losses(m):
        return nn.functional.cross_entropy(m(x), y, reduction="none").double().detach()

    spec = {"model": model, "evaluate": losses, "higher_is_better": False, "metric": "perplexity",
            "aggregate": lambda v: math.exp(float(v.mean()))}
    res = evaluate_over_time(spec, strategies=["lsp-first", "single-pair"], device="pcm", times_s=(1.0,), repeats=3)
    assert res.digital == pytest.approx(math.exp(float(losses(model).mean())))
    data = res.to_dict()
    assert data["metric_name"] == "perplexity" and data["higher_is_better"] is False
    row = data["summary"][0]
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert {p["verdict"] for p in data["paired"]} <= {"better", "worse", "unresolved"}
    assert "lower is better" in res.format()


def test_interval_coverage_with_known_variance():
    """x[r, n] = μ + a_r + e_n: the 95 % interval of the mean covers μ about 95 % of the time."""
    gen = torch.Generator().manual_seed(1)
    covered, trials, mu = 0, 400, 0.7
    for _ in range(trials):
        a = 0.02 * torch.randn(8, 1, generator=gen, dtype=torch.float64)
        e = 0.3 * torch.randn(1, 400, generator=gen, dtype=torch.float64)
        x = mu + a + e
        iv = metric_interval(x.mean(1), x)
        covered += iv.low <= mu <= iv.high
    assert 0.90 <= covered / trials <= 0.99
    # realisations only: a t interval
    iv = metric_interval(torch.tensor([1.0, 2.0, 3.0]))
    assert iv.over == "realisations" and iv.low < 2 < iv.high


def test_paired_verdicts():
    gen = torch.Generator().manual_seed(2)
    base = torch.rand(5, 300, generator=gen, dtype=torch.float64)
    better = base + 0.05
    iv = paired_interval(better.mean(1), base.mean(1), better, base)
    assert iv.verdict(higher_is_better=True) == "better" and iv.verdict(higher_is_better=False) == "worse"
    same = paired_interval(base.mean(1), base.mean(1) + 1e-12 * torch.randn(5, generator=gen, dtype=torch.float64))
    assert same.verdict(True) == "unresolved"


def test_limit_mse_beats_every_strategy_on_weight_error_at_every_time():
    """`limit-mse` (the weight-error bound's mapping) has the least weight error; `limit` (unbiased)
    pays a little of it for a mean read-out that is every weight's own, and both come in one run."""
    torch.manual_seed(0)
    layer = nn.Linear(256, 128, bias=False)
    spec = {"model": layer, "evaluate": lambda m: float(m.weight.detach().sum())}
    res = evaluate_over_time(spec, strategies=["lsp-first", "msp-first", "limit-mse", "limit"], device="pcm",
                             times_s=TIMES, repeats=2, significance="1,2")
    nmse = res.weight_nmse.mean(1)  # (S, T)
    assert res.strategies[2:] == ["limit-mse", "limit"] and res.limit is not None
    assert (nmse[2] <= nmse[:2].min(0).values * 1.02).all(), nmse
    assert (nmse[2] <= nmse[3] * 1.02).all() and (nmse[3] <= nmse[2] * 1.5).all(), nmse
    assert res.limit["name"] == "limit-mse" and not res.limit["unbiased"]  # the first listed
    per_time = res.limit["per_time"]
    assert [p["time_s"] for p in per_time] == list(TIMES) and all(p["significance"] == [1.0, 2.0] for p in per_time)


def test_limit_without_a_cell_takes_the_best_f():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(64, 32))
    values = deployed_values(find_analog_weights(net))
    assert values.numel() == 8 * 27 + 64 * 32 and values.abs().max() == 1.0
    limit = compute_limit(values, wp.get_device("pcm"), (1.0,), f_max=2)
    assert limit.name == "limit" and limit.unbiased and limit.to_dict()["unbiased"]
    assert limit.for_time(1.0).strategy.name == "limit" and limit.for_time(1.0).bound > 0
    assert compute_limit(values, wp.get_device("pcm"), (1.0,), f_max=1, unbiased=False).name == "limit-mse"
    with pytest.raises(ValueError):
        limit.for_time(2.0)


def _large_weights_matter():
    """A layer whose 'metric' is how exactly its largest 1 % of weights are read: clipping them (what
    the weight-error optimum does on this density) is the worst thing for it."""
    torch.manual_seed(0)
    v = wp.load_distribution()
    layer = nn.Linear(256, 32, bias=False)
    with torch.no_grad():
        layer.weight.copy_(0.1 * v[torch.randperm(v.numel())[:32 * 256]].reshape(32, 256))
    true = layer.weight.detach().clone()
    big = true.abs() >= true.abs().reshape(-1).quantile(0.99)

    def largest(m):
        return -((m.weight.detach()[big] - true[big]).abs() / true[big].abs()).double()
    return {"model": layer, "evaluate": largest, "validate": largest, "metric": "minus relative error"}


def _clipping_optimum():
    """`_large_weights_matter` and the pointwise search on its weights (whose optimum clips them)."""
    spec = _large_weights_matter()
    values = deployed_values(find_analog_weights(spec["model"]))
    settings = wp.OptimizeSettings(method="pointwise", significance=wp.Cell((1.0, 2.0)), times_s=(1.0, 3.1536e7),
                                   rescore_blocks=1, max_generations=3, polish=False)
    return spec, wp.optimize(sample_from_values(values, size=2048, rows=512), values, "pcm", settings)


def test_selection_on_the_network_avoids_a_weight_error_optimum_that_is_bad_for_it():
    spec, result = _clipping_optimum()
    assert not result.expressible  # the optimum clips the largest weights
    selection, chosen = select_on_network(spec, result, result.device, NetworkSettings(repeats=2, limit=False),
                                          rule="network")
    assert selection.tnmse_ranking[0] == "optimised"
    assert selection.chosen != "optimised" and chosen.name == selection.chosen
    assert not selection.agrees and "DISAGREE" in selection.format()
    tnmse_pick, _ = select_on_network(spec, result, result.device, NetworkSettings(repeats=1, limit=False),
                                      rule="tnmse")
    assert tnmse_pick.chosen == "optimised"


class _Paired:
    """What `resolved_choice` reads of an evaluation: times, direction and paired intervals, here
    given per (candidate, time) as the sign of A − B's interval (+1 above 0, −1 below, 0 straddling)."""

    def __init__(self, signs: dict[int, tuple[int, ...]], higher_is_better: bool = True):
        self.signs, self.higher_is_better = signs, higher_is_better
        self.times_s = TIMES[:len(next(iter(signs.values())))]

    def paired(self, a: int, b: int, time: int):
        sign = self.signs.get(a, (0,) * len(self.times_s))[time]
        return Interval(sign, sign - 0.5 if sign else -0.5, sign + 0.5 if sign else 0.5, "realisations")


def test_resolved_rule_keeps_the_weight_error_pick_unless_the_network_resolves_better():
    names = ["optimised", "de", "lsp-first F=1", "pointwise_expressible"]
    score = {"optimised": 0.70, "de": 0.72, "lsp-first F=1": 0.74, "pointwise_expressible": 0.71}
    # every difference unresolved: the lowest weight error stays, though `network` would take F=1
    assert resolved_choice(_Paired({1: (0, 0), 2: (0, 0)}), names, "optimised", score) == "optimised"
    # better at one time but worse at another: not a resolved gain
    assert resolved_choice(_Paired({2: (1, -1)}), names, "optimised", score) == "optimised"
    # better at one time, worse at none: among such candidates the best on the network
    assert resolved_choice(_Paired({1: (0, 1), 3: (1, 1)}), names, "optimised", score) == "de"
    # lower is better (perplexity): an interval below 0 is the better one
    assert resolved_choice(_Paired({3: (-1, 0)}, higher_is_better=False), names, "optimised", score) \
        == "pointwise_expressible"


def test_resolved_rule_on_a_network_where_the_weight_error_optimum_is_bad_for_it():
    spec, result = _clipping_optimum()
    # R = 2 leaves every difference unresolved (t with 1 degree of freedom): the weight-error pick stays
    kept, _ = select_on_network(spec, result, result.device, NetworkSettings(repeats=2, limit=False), rule="resolved")
    assert kept.chosen == "optimised" and "chosen by resolved: optimised" in kept.format()
    # R = 4 resolves the clipping optimum's loss on the largest weights: a candidate that keeps them wins
    selection, chosen = select_on_network(spec, result, result.device, NetworkSettings(repeats=4, limit=False),
                                          rule="resolved")
    ev = selection.evaluation
    assert ev is not None and selection.chosen != "optimised" and chosen.name == selection.chosen
    i, base = ev.strategies.index(selection.chosen), ev.strategies.index("optimised")
    assert "better" in {ev.paired(i, base, k).verdict(True) for k in range(len(ev.times_s))}


SPEC_FILE = '''
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 48), nn.ReLU(), nn.Linear(48, 4))
    x = torch.randn(700, 16)
    y = model(x).argmax(1)
    correct = lambda a, b: (lambda m: (m(a).argmax(1) == b).double())
    return {"model": model, "evaluate": correct(x[:300], y[:300]), "validate": correct(x[300:600], y[300:600]),
            "calibrate": lambda m: m(x[600:]), "metric": "agreement"}

def no_validate():
    spec = build()
    del spec["validate"]
    return spec
'''


def test_cli_evaluate_and_optimize_with_a_mapping_spec(tmp_path):
    (tmp_path / "myspec.py").write_text(SPEC_FILE)
    spec = f"{tmp_path / 'myspec.py'}:build"
    runner = CliRunner()
    out = tmp_path / "ev"
    res = runner.invoke(cli, ["evaluate", "--model", spec, "--strategy", "lsp-first", "--strategy", "limit",
                              "--times", "1s,1y", "--repeats", "2", "--periphery", "io8", "--out", str(out),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert data["metric_name"] == "agreement" and data["calibrated_on"] == "calibrate"
    assert data["interval_over"] == "realisations and examples" and data["examples"] == 300
    assert [s["strategy"] for s in data["summary"]][-1] == "limit" and "ci_low" in data["summary"][0]
    assert data["paired"][0]["verdict"] in ("better", "worse", "unresolved")

    out = tmp_path / "opt"
    res = runner.invoke(cli, ["optimize", "--model", spec, "--significance", "1,2", "--times", "1s,1y",
                              "--max-generations", "3", "--popsize", "3", "--grid", "3", "--rescore-blocks", "1",
                              "--no-polish",
                              "--network-repeats", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    network = report["network"]
    assert network["split"] == "validate" and network["rule"] == "resolved"  # the default with validate data
    assert network["chosen"] in network["network_ranking"]
    assert set(network["same_as"]).isdisjoint(network["network_ranking"])  # a twin table is programmed once
    # the limit is chosen per time on the same held-out data; its rows say which kind it is
    assert {r["strategy"] for r in network["limit"]} == {"limit-chosen"} and len(network["limit"]) == 2
    assert "limit-chosen" in res.output
    assert all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in network["rows"])
    assert "on the network" in res.output

    for rule in ("network", "resolved"):  # both choose on held-out data, which this spec lacks
        res = runner.invoke(cli, ["optimize", "--model", f"{tmp_path / 'myspec.py'}:no_validate", "--select", rule,
                                  "--out", str(tmp_path / "x")])
        assert res.exit_code == 2 and f"--select {rule}: " in res.output and "has no 'validate'" in res.output
    res = runner.invoke(cli, ["optimize", "--network-repeats", "3", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "need --model" in res.output


def test_error_split_adds_up_and_shows_the_clipping():
    from weightprog.error_split import error_split
    from weightprog.expected import ExpectedTNMSE
    model = ExpectedTNMSE(wp.load_distribution(), "pcm", TIMES)
    strategy = wp.baseline("lsp-first", wp.Cell((1.0, 2.0)))
    split = error_split(model, strategy)[0]
    assert torch.allclose(split.systematic + split.random, model.evaluate(strategy).per_time[0], rtol=1e-9)
    assert (split.systematic >= 0).all() and (split.random > split.systematic).all()
    data = split.to_dict(points=5)
    assert data["curve_ratio"][-1][0] is None and 0.98 < data["curve_ratio"][-1][-1] < 1.02  # u = 0 has no ratio


def test_no_clip_keeps_the_largest_weight_exact():
    values = wp.load_distribution()
    sample = sample_from_values(values, size=2048, rows=512)
    settings = wp.OptimizeSettings(method="pointwise", significance=wp.Cell((1.0, 2.0)), times_s=(1.0, 3.1536e7),
                                   rescore_blocks=1, max_generations=3, polish=False, clip=False)
    result = wp.optimize(sample, values, "pcm", settings)
    assert result.expressible and result.method in ("de", "pointwise_expressible")
    shares = {e.name: float(e.systematic[-1] / (e.systematic[-1] + e.random[-1])) for e in result.error_split}
    assert set(shares) == {"optimised", result.scores.best_hand_crafted.label, "lsp-first F=1"}
    with pytest.raises(WeightprogError, match="clip"):
        wp.OptimizeSettings(clip="no")


def test_results_md_quotes_the_committed_network_selection_records():
    """docs/RESULTS.md's table is what scripts/network_selection.py computes from the committed records."""
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    found = importlib.util.spec_from_file_location("network_selection", root / "scripts" / "network_selection.py")
    assert found is not None and found.loader is not None
    script = importlib.util.module_from_spec(found)
    found.loader.exec_module(script)
    table = script.summary(root / "docs" / "network_selection")
    assert len(table.splitlines()) > 2
    results = (root / "docs" / "RESULTS.md").read_text()
    for line in table.splitlines():
        assert line in results, line
