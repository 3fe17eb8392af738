"""Device advice (which property pays) and flip maps (where naive and optimised rankings differ)."""

import json
import math

import pytest
from click.testing import CliRunner

import weightprog as wp
from weightprog.advise import FlipPoint, advise, flip_map_from_records, flip_sweep, parse_axis
from weightprog.cli import main
from weightprog.errors import WeightprogError
from weightprog.records.advice import AdviceRecord, PropertyRecord
from weightprog.scores import Scoreboard
from weightprog.search.run import OptimizeSettings

FAST = OptimizeSettings(pairs=1, max_generations=3, rescore_blocks=2, polish=False, method="de", bound=False)


def test_advise_improvements_lower_the_error_and_are_sorted_by_payoff():
    sample = wp.default_sample(2048)
    values = wp.load_distribution()
    result = advise(sample, values, "pcm", FAST, 0.2, ("read", "programming", "g_max"))
    assert [e.prop for e in result.effects] == sorted((e.prop for e in result.effects),
                                                     key=lambda p: next(e.change("optimised") for e in result.effects
                                                                        if e.prop == p))
    for e in result.effects:
        assert e.change("optimised") < 0 and e.change("naive") < 0, e.prop
        # less noise -> less error: positive elasticity; more range -> less error: negative
        assert (e.elasticity("optimised") < 0) == (e.prop == "g_max"), e.prop
    record = AdviceRecord.of(result, "distribution:default")
    assert record.base.device == "pcm" and len(record.properties) == 3
    assert not record.with_bound and record.properties[0].change.bound is None  # bound=False
    assert "change_bound" not in record.to_json()["properties"][0]
    assert record.properties[0].change.optimised == result.effects[0].change("optimised")
    assert len(result.words()) == 3 and "halving read noise Q" in " ".join(result.words())
    assert "pcm:read=0.8" in {p.scores.device for p in record.properties}
    assert AdviceRecord.from_json(record.to_json()) == record
    with pytest.raises(WeightprogError, match="improvement"):
        advise(sample, values, "pcm", FAST, 1.5)
    with pytest.raises(WeightprogError, match="property"):
        advise(sample, values, "pcm", FAST, 0.1, ("stuck",))


def _report(mean, stderr=1e-6):
    return {"mean": mean, "stderr": stderr}


def test_flip_map_verdicts():
    base = "pcm"
    scores = {base: Scoreboard.from_json({"lsp_first": _report(1.0), "optimised": _report(1.0)})}
    cases = {(0.5, 1.0): (0.9, 1.1), (2.0, 1.0): (1.1, 0.9), (0.5, 2.0): (0.9, 0.9), (2.0, 2.0): (1.0, 1.2)}
    for (x, y), (naive, opt) in cases.items():
        scores[f"pcm:drift_mean={x:g},read={y:g}"] = Scoreboard.from_json({"lsp_first": _report(naive),
                                                                           "optimised": _report(opt)})
    flip = flip_map_from_records(base, "drift_mean", (0.5, 2.0), "read", (1.0, 2.0), scores)
    verdicts = [p.verdict() for p in flip.points]
    assert verdicts == ["naive better, optimised worse", "naive worse, optimised better", "both better",
                        "within error"]
    assert flip.counts()["naive better, optimised worse"] == 1
    assert "Fig. 5" in flip.sentence()
    noisy = FlipPoint(1, 1, "x", -0.01, 0.01, 0.01, 0.01)
    assert noisy.verdict() == "within error"


def test_flip_sweep_and_axis_parsing():
    assert parse_axis("drift_mean=0.5:2:3", "--x") == ("drift_mean", (0.5, 1.0, 2.0))
    assert parse_axis("read=0.5,1,2", "--y") == ("read", (0.5, 1.0, 2.0))
    for bad in ("drift=1,2", "read=2:1:3", "read=1:2:1", "read=a,b", "read=1,1", "read=0,1"):
        with pytest.raises(WeightprogError):
            parse_axis(bad, "--x")
    spec = flip_sweep("pcm", "drift_mean", (0.5, 2.0), "read", (1.0,), pairs=1)
    assert spec["devices"] == ["pcm", "pcm:drift_mean=0.5,read=1", "pcm:drift_mean=2,read=1"]
    with pytest.raises(WeightprogError, match="must differ"):
        flip_sweep("pcm", "read", (1.0,), "read", (2.0,))


def test_flipmap_cli_runs_as_a_resumable_sweep(tmp_path):
    out = tmp_path / "fm"
    args = ["device", "flipmap", "pcm", "--x", "drift_std=0.5,2", "--y", "read=1", "--pairs", "1",
            "--max-generations", "3", "--rescore-blocks", "1", "--workers", "0", "--out", str(out)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    data = json.loads((out / "flipmap.json").read_text())
    assert len(data["points"]) == 2 and data["base"] == "pcm"
    assert (out / "flipmap.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert data["sentence"] in page.replace("&#x27;", "'") and "data:image/png;base64" in page
    halved = next(p for p in data["points"] if p["x"] == 0.5)
    assert halved["optimised_change"] < 0 and halved["verdict"] == "both better"
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "done optimize" not in again.output  # every job was kept
    assert json.loads((out / "flipmap.json").read_text())["points"] == data["points"]
    bad = CliRunner().invoke(main, ["device", "flipmap", "pcm", "--x", "read=1,2", "--y", "read=3",
                                    "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "two different properties" in bad.output


def test_advise_cli_writes_json_and_figure(tmp_path):
    out = tmp_path / "adv"
    result = CliRunner().invoke(main, ["device", "advise", "pcm", "--property", "read",
                                       "--pairs", "1", "--max-generations", "3", "--no-polish",
                                       "--rescore-blocks", "1", "--sample-size", "1024", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "advice.json").read_text())
    assert {p["property"] for p in data["properties"]} == {"read"}
    # the bound comes with each optimisation: it lies below the optimum, and less read noise lowers it
    assert 0 < data["base"]["bound"] <= data["base"]["optimised"]["mean"] * 1.02
    assert data["properties"][0]["change_bound"] < 0 and "Δ bound" in result.output
    assert data["weights"] and "halving" in result.output
    assert (out / "advice.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert "weightprog device advise: pcm" in page and 'data-key="/properties/0/change_optimised"' in page
    bad = CliRunner().invoke(main, ["device", "advise", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown device" in bad.output


def test_bound_is_reported_when_computed():
    from weightprog.advise import DeviceScores, PropertyEffect
    from weightprog.scores import Score

    def scores(naive, opt, limit):
        return DeviceScores("d", Score(naive, 1e-6), Score(opt, 1e-6), "lsp-first F=2", Score(opt, 1e-6), (1.0, 2.0),
                            limit)
    effect = PropertyEffect("read", 0.9, scores(0.9, 0.8, 0.7), scores(1.0, 1.0, 1.0))
    assert effect.choices()[-1] == "bound"
    assert effect.change("bound") == pytest.approx(-0.3)
    assert effect.elasticity("bound") == pytest.approx(math.log(0.7) / math.log(0.9))
    assert PropertyRecord.of(effect).to_json()["change_bound"] == pytest.approx(-0.3)
    without = PropertyEffect("read", 0.9, scores(0.9, 0.8, None), scores(1.0, 1.0, None))
    assert "bound" not in without.choices() and "change_bound" not in PropertyRecord.of(without).to_json()
