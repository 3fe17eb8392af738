"""`--precision`: test items added in rounds until every compared interval is within ±P."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from weightprog.cli import main
from weightprog.errors import WeightprogError
from weightprog.nn import evaluate_over_time
from weightprog.nn.precision import PrecisionTarget, evaluate_to_precision, next_size
from weightprog.nn.spec import ModelSpec
from weightprog.nn.stats import Interval

POOL = 3000


def _pool():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    x = torch.randn(POOL, 16)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _run(model, x, y):
    def run(n: int):
        n = min(n, POOL)
        spec = ModelSpec(model, lambda m, a=x[:n], b=y[:n]: (m(a).argmax(1) == b).double(),
                         calibrate=lambda m: m(x[-64:]))
        result = evaluate_over_time(spec, strategies=["lsp-first", "single-pair"], device="pcm", times_s=(1.0, 3.15e7),
                                    repeats=3, seed=0, periphery="ideal")
        return result, POOL
    return run


def test_target_parsing():
    assert PrecisionTarget.parse("0.005") == PrecisionTarget(0.005, False)
    relative = PrecisionTarget.parse("1%")
    assert relative.relative and relative.absolute(120.0) == pytest.approx(1.2)
    for bad in ("x", "-1", "0%", "nan"):
        with pytest.raises(WeightprogError, match="precision"):
            PrecisionTarget.parse(bad)


def test_rounds_grow_until_the_target_and_equal_one_run_of_that_size():
    model, x, y = _pool()
    run = _run(model, x, y)
    lines: list[str] = []
    result, report = evaluate_to_precision(run, 100, PrecisionTarget(0.02), log=lines.append)
    assert report.rounds[0] == 100 and len(report.rounds) >= 2 and list(report.rounds) == sorted(report.rounds)
    assert len(lines) == len(report.rounds)
    # R = 3 on 3,000 items cannot reach ±0.02: the rounds run to the whole pool and say why they stopped
    assert not report.met and report.reached > 0.02 and report.rounds[-1] == POOL
    assert report.limited_by in ("realisations", "test set")
    direct, _ = run(report.examples)  # the last round is exactly the run on that many items
    assert torch.equal(direct.metrics, result.metrics)
    assert result.examples is not None and result.examples.shape[-1] == report.examples


def test_a_spread_that_more_items_do_not_narrow_stops_and_says_so():
    class Fixed:  # the realisations term alone is 0.05, whatever the items
        strategies, times_s, examples, digital = ["a"], (1.0,), torch.zeros(1), 1.0

        def interval(self, s, k):
            return Interval(0.0, -0.06, 0.06, "realisations and examples", 0.05, 0.033)

    rounds: list[int] = []

    def run(n):
        rounds.append(n)
        return Fixed(), 10_000
    _, report = evaluate_to_precision(run, 100, PrecisionTarget(0.01))  # type: ignore[arg-type]
    assert report.limited_by == "realisations" and not report.met and len(rounds) == 2
    assert "raise --repeats" in report.format()


def test_the_test_set_runs_out():
    class Wide:
        strategies, times_s, examples, digital = ["a"], (1.0,), torch.zeros(1), 1.0

        def interval(self, s, k):
            return Interval(0.0, -0.5, 0.5, "realisations and examples", 0.0, 0.5)

    _, report = evaluate_to_precision(lambda n: (Wide(), 400), 100, PrecisionTarget(0.01))  # type: ignore[arg-type]
    assert report.limited_by == "test set" and report.rounds[-1] == 400


def test_next_size_scales_with_the_square_of_the_width():
    wide = Interval(0.0, -0.04, 0.04, "realisations and examples", 0.0, 0.04)
    assert next_size([wide], 0.02, 1000) == pytest.approx(4400, abs=1)  # (0.04/0.02)² × 1000 × 1.1
    narrowish = Interval(0.0, -0.021, 0.021, "realisations and examples", 0.0, 0.021)
    assert next_size([narrowish], 0.02, 1000) == 1500  # at least 1.5× the items


def test_cli_refuses_precision_for_an_entry_point(tmp_path):
    r = CliRunner().invoke(main, ["evaluate", "--model", "somewhere:build", "--strategy", "lsp-first",
                                  "--precision", "0.01"])
    assert r.exit_code == 2 and "precision: only for the reference workloads" in r.output
    r = CliRunner().invoke(main, ["evaluate", "--model", "fmnist-resnet32", "--strategy", "lsp-first",
                                  "--precision", "fast"])
    assert r.exit_code == 2 and "precision: a number or a percentage" in r.output
