"""compare-devices: same search for every device, rankings by optimum and by naive baseline."""

from __future__ import annotations

import csv
import dataclasses
import json

import click
import pytest
from click.testing import CliRunner

import weightprog.cli.compare as cli_compare
import weightprog.cli.inputs as cli_inputs
from weightprog.cli.compare import compare_devices_command
from weightprog.cli.options import Group
from weightprog.compare import (
    DeviceRow,
    compare_devices,
    comparison_from_rows,
    rank,
    ranking_sentence,
    table_text,
)
from weightprog.errors import WeightprogError
from weightprog.records.comparison import ComparisonRecord, write_comparison_run
from weightprog.sample import default_sample, load_distribution
from weightprog.scores import Score, Scoreboard, Scored
from weightprog.search.run import OptimizeSettings, optimize

TINY = OptimizeSettings(max_generations=2, popsize=3, rescore_blocks=2, compile=False, polish=False, f_max=2)
TIMES = (1.0, 3600.0)


def score(mean, stderr=1e-6):
    return Score(mean, stderr, (mean * 0.5, mean * 1.5), (stderr, stderr))


def row(name, naive, opt, stderr=1e-6):
    hand = (Scored("single-pair", 1.0, score(naive * 1.2, stderr)), Scored("lsp-first", 1.0, score(naive, stderr)),
            Scored("msp-first", 1.0, score(naive * 1.1, stderr)))
    return DeviceRow(name, {"name": name}, Scoreboard(score(opt, stderr), hand), [1.0, 2.0], 1.0, "f=1,2", 0.0)


def test_ranking_changes_like_fig5():
    """Device B better under naive programming, worse at its optimum: the ranking changes."""
    c = comparison_from_rows([row("A", naive=2e-3, opt=5e-4), row("B", naive=1e-3, opt=8e-4)], TIMES, TINY)
    assert c.by_naive.order == ["B", "A"]
    assert c.by_optimum.order == ["A", "B"]
    assert c.ranking_changes
    s = c.sentence()
    assert s.startswith("The ranking changes") and "B 1→2" in s and "A 2→1" in s
    assert "not resolved" not in s
    text = table_text(c)
    assert "rank naive" in text and s in text
    d = ComparisonRecord.of(c).to_json()
    assert d["ranking"] == {**d["ranking"], "by_optimum": ["A", "B"], "by_naive": ["B", "A"], "changes": True}


def test_ranking_unchanged_and_ties():
    c = comparison_from_rows([row("A", 1e-3, 5e-4), row("B", 2e-3, 8e-4), row("C", 3e-3, 9e-4)], TIMES, TINY)
    assert not c.ranking_changes
    assert c.sentence().startswith("The ranking does not change: A < B < C")
    # differences within two combined standard errors are reported as unresolved
    close = comparison_from_rows([row("A", 1e-3, 5.00e-4, 1e-5), row("B", 2e-3, 5.01e-4, 1e-5)], TIMES, TINY)
    assert close.by_optimum.ties() == [("A", "B")]
    assert "(not resolved): A/B (optimum)" in close.sentence()
    r = rank({"x": 3.0, "y": 1.0, "z": 2.0}, by="t")
    assert r.order == ["y", "z", "x"] and r.rank_of("x") == 3
    assert ranking_sentence(r, r).startswith("The ranking does not change")
    with pytest.raises(WeightprogError):
        rank({})


def test_compare_reuses_optimize_with_same_settings(tmp_path):
    sample, values = default_sample(size=1024), load_distribution()
    c = compare_devices(["pcm", "pcm-lowdrift"], sample, values, TINY, source="default")
    assert [r.device for r in c.rows] == ["pcm", "pcm-lowdrift"]
    # exactly what optimize() gives for each device alone (same sample, same seeds)
    alone = optimize(sample, values, "pcm-lowdrift", TINY)
    assert c.rows[1].scores.optimised == alone.scores.optimised
    assert c.rows[1].scores.naive == alone.scores.naive
    for r in c.rows:
        assert set(r.scores.to_json(others=False)) == {"optimised", "single_pair", "lsp_first", "msp_first",
                                             "lsp_first_best", "msp_first_best"}
        assert len(r.scores.optimised.per_time) == len(TINY.times_s)
    means = {r.device: r.scores.optimised.mean for r in c.rows}
    assert c.by_optimum.order == sorted(means, key=means.get)
    paths = write_comparison_run(c, tmp_path)
    assert ComparisonRecord.from_json(json.loads(paths[0].read_text())) == ComparisonRecord.of(c)
    data = json.loads(paths[0].read_text())
    assert data["ranking"]["by_optimum"] == c.by_optimum.order and len(data["devices"]) == 2
    lines = list(csv.DictReader(paths[1].open()))
    assert len(lines) == 2 * 6  # optimised, 3 naive, 2 best-F per device
    assert {ln["strategy"] for ln in lines} >= {"optimised", "lsp_first"}
    assert float(lines[0]["tnmse"]) == c.rows[0].scores.optimised.mean
    assert paths[2].stat().st_size > 1000


def test_compare_rejects_bad_device_lists():
    sample, values = default_sample(size=1024), load_distribution()
    with pytest.raises(WeightprogError, match="at least 2"):
        compare_devices(["pcm"], sample, values, TINY)
    with pytest.raises(WeightprogError, match="more than once"):
        compare_devices(["pcm", "pcm"], sample, values, TINY)
    with pytest.raises(WeightprogError, match="unknown device"):
        compare_devices(["pcm", "nope"], sample, values, TINY)
    with pytest.raises(WeightprogError, match="naive"):
        compare_devices(["pcm", "ideal"], sample, values, TINY, naive="bogus")


@pytest.fixture
def group(monkeypatch):
    # keep the CLI run small: 1,024 weights unless --sample-size says otherwise, two re-score blocks,
    # no torch.compile (compare-devices reads its settings and sample through search_inputs)
    def small(sample_size=None, **options):
        inputs = cli_inputs.search_inputs(sample_size=sample_size or 1024, **options)
        return dataclasses.replace(inputs, settings=dataclasses.replace(inputs.settings, rescore_blocks=2,
                                                                        compile=False))

    monkeypatch.setattr(cli_compare, "search_inputs", small)

    @click.group(cls=Group)
    def main():
        pass

    main.add_command(compare_devices_command, name="compare-devices")
    return main


def test_cli_compare_writes_everything(tmp_path, group):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(group, ["compare-devices", "pcm", "pcm-lowdrift", "--max-generations", "2",
                                        "--popsize", "3", "--f-max", "2", "--no-polish", "--times", "1s,1d",
                                        "--sample-size", "1024", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rank opt" in result.output and "The ranking" in result.output
    data = json.loads((out / "comparison.json").read_text())
    assert [d["device"] for d in data["devices"]] == ["pcm", "pcm-lowdrift"]
    assert data["times_s"] == [1.0, 86400.0]
    assert data["settings"]["max_generations"] == 2
    assert (out / "comparison.csv").read_text().startswith("device,strategy,f,tnmse")
    assert (out / "tnmse_vs_time.png").stat().st_size > 1000


@pytest.mark.parametrize("args,message", [
    (["pcm", "nope"], "unknown device"),
    (["pcm"], "at least 2"),
    (["pcm", "pcm-lowdrift", "--distribution", "nope"], "--distribution"),
    (["pcm", "pcm-lowdrift", "--significance", "1,2,3"], "--significance"),
])
def test_cli_compare_errors_write_nothing(tmp_path, group, args, message):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(group, ["compare-devices", *args, "--max-generations", "1", "--popsize", "2",
                                        "--f-max", "1", "--no-polish", "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()
