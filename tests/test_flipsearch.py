"""The flip search (`device flipmap --search`): margins, the DE over the five factors, paired checks."""

import json
import math

import pytest
import torch
from click.testing import CliRunner

from weightprog.cli import main
from weightprog.devices import get_device
from weightprog.errors import WeightprogError
from weightprog.expected import ExpectedTNMSE, Pointwise
from weightprog.flipcheck import Check, PairedChange, paired_change
from weightprog.flipsearch import (
    FACTORS,
    FLIP,
    REVERSE,
    Expected,
    ExpectedScorer,
    SearchPlan,
    Trial,
    climb,
    margin,
    search_direction,
)
from weightprog.records.flipsearch import read_flip_search_record
from weightprog.sample import load_distribution


def test_margin_is_positive_only_for_a_flip_in_its_direction():
    base = Expected(1.0, 1.0, 2)
    flip = Expected(0.9, 1.05, 2)  # naive 10 % better, optimised 5 % worse
    assert margin(base, flip, FLIP) == pytest.approx(0.05)
    assert margin(base, flip, REVERSE) == pytest.approx(-0.10)
    assert margin(base, Expected(0.9, 0.95, 2), FLIP) < 0  # better both ways: no flip
    assert margin(base, base, FLIP) == 0
    with pytest.raises(WeightprogError, match="direction"):
        margin(base, flip, "sideways")


def test_paired_change_uses_the_shared_draws():
    gen = torch.Generator().manual_seed(0)
    base = 1.0 + torch.rand(400, generator=gen)  # columns differ a lot ...
    x = 1.03 * base + 0.001 * torch.randn(400, generator=gen)  # ... but X follows them: a clear 3 %
    paired = paired_change(x, base)
    assert paired.change == pytest.approx(0.03, abs=1e-3)
    independent = math.hypot(x.std() / x.mean(), base.std() / base.mean()) / math.sqrt(400) * 1.03
    assert paired.stderr < independent / 50  # the independent bound would call it within error
    assert abs(paired.change) > 2 * paired.stderr > 0
    with pytest.raises(ValueError):
        paired_change(x[:3], base)


def test_check_verdict_beyond_two_paired_standard_errors():
    trial = Trial((1.0,) * 5, Expected(1.0, 1.0, 2), 0.0, 0)

    def verdict(naive, optimised):
        return Check("x", trial, PairedChange(*naive), PairedChange(*optimised), 1.0, 1.0).verdict

    assert verdict((-0.05, 0.01), (0.03, 0.01)) == FLIP
    assert verdict((0.05, 0.01), (-0.03, 0.01)) == REVERSE
    assert verdict((-0.05, 0.01), (0.015, 0.01)) == "within error"
    assert verdict((-0.05, 0.01), (-0.03, 0.01)) == "both better"


class _Synthetic:
    """Stands in for `ExpectedScorer`: naive rewards lower drift spread twice as much as optimised
    does, both punish programming noise alike, so a flip lies where σ_ν falls and σ_p rises."""

    base = get_device("pcm")

    def __init__(self):
        self.calls = 0

    def key(self):
        return {"base": "synthetic"}

    def __call__(self, factors):
        self.calls += 1
        s = dict(zip(FACTORS, (math.log(f) for f in factors)))
        naive = math.exp(0.6 * s["programming"] + 1.0 * s["drift_std"])
        optimised = math.exp(0.6 * s["programming"] + 0.4 * s["drift_std"])
        return Expected(naive, optimised, 2)


def test_search_finds_a_constructed_flip_and_resumes_from_its_checkpoint(tmp_path):
    scorer = _Synthetic()
    plan = SearchPlan(popsize=4, generations=6)
    base = scorer((1.0,) * 5)
    ckpt = tmp_path / "ckpt.json"
    found = search_direction(scorer, base, FLIP, plan, ckpt)
    assert found.best.margin > 0.05 and found.generations == 6
    best = dict(zip(FACTORS, found.best.factors))
    assert best["drift_std"] < 1 < best["programming"]
    calls = scorer.calls
    again = search_direction(scorer, base, FLIP, plan, ckpt)
    assert scorer.calls == calls and again.trials == found.trials  # resumed at its end: nothing re-scored
    longer = search_direction(scorer, base, FLIP, SearchPlan(popsize=4, generations=7), ckpt)
    assert longer.generations == 7 and longer.trials[:len(found.trials)] == found.trials  # continued
    assert scorer.calls == calls + 20  # one more generation of 4 × 5
    other = search_direction(scorer, base, FLIP, SearchPlan(popsize=4, generations=2, seed=1), ckpt)
    assert other.generations == 2 and other.trials[0] not in found.trials  # another plan: a fresh run
    with pytest.raises(WeightprogError, match="bounds"):
        SearchPlan((2.0, 4.0))


def test_climb_finds_the_lowest_f_of_a_unimodal_curve():
    calls = []

    def at(f):
        calls.append(f)
        return (f - 4) ** 2

    assert climb(at, 2, 5) == (0, 4) and len(calls) == len(set(calls))
    assert climb(lambda f: f, 2, 5) == (1, 1)  # falls below the start
    assert climb(lambda f: -f, 1, 1) == (-1, 1)


@pytest.mark.slow
def test_best_f_climb_matches_every_f():
    values = load_distribution()[::8]
    scorer = ExpectedScorer(values, get_device("pcm"), (1.0, 86400.0), pairs=2, f_max=3)
    e = scorer((1.0,) * 5)
    model = ExpectedTNMSE(values, get_device("pcm"), (1.0, 86400.0))
    every = {f: Pointwise(model, (1.0, float(f)), 24).solve(compensated=True).mean for f in (1, 2, 3)}
    assert e.f == min(every, key=every.get) and e.optimised == pytest.approx(min(every.values()), rel=1e-9)


def test_flipmap_search_cli_writes_its_record(tmp_path):
    out = tmp_path / "fs"
    args = ["device", "flipmap", "pcm", "--search", "--direction", "flip", "--generations", "1",
            "--population", "1", "--pairs", "1", "--times", "1s,1d", "--max-generations", "2",
            "--rescore-blocks", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = read_flip_search_record(out)
    assert record.base == "pcm" and len(record.searches) == 1 and len(record.checks) == 1
    assert len(record.searches[0].trials) == 10  # 5 initial + 5 in one generation
    check = record.checks[0]
    assert check.trial == record.searches[0].best and check.device.startswith("pcm:")
    assert check.naive.stderr > 0 and record.sentence in result.output
    assert (out / "flipsearch.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "strategy_flip.json").read_text())
    assert saved["meta"]["device"] == check.device
    assert record.sentence in (out / "report.html").read_text().replace("&#x27;", "'")
    data = json.loads((out / "flipsearch.json").read_text())
    assert data["checks"][0]["verdict"] == check.verdict
    data["checks"][0]["naive"]["change"] = "x"
    (out / "flipsearch.json").write_text(json.dumps(data))
    with pytest.raises(WeightprogError, match=r"flipsearch.json: /checks/0/naive/change: expected a number"):
        read_flip_search_record(out)
    bad = CliRunner().invoke(main, ["device", "flipmap", "pcm", "--search", "--x", "read=1,2",
                                    "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "give no --x" in bad.output
    bounds = CliRunner().invoke(main, ["device", "flipmap", "pcm", "--search", "--bounds", "2:1",
                                       "--out", str(tmp_path / "bad2")])
    assert bounds.exit_code == 2 and "bounds" in bounds.output
