"""Typed run records (weightprog.records): files written by today's format (tests/data, saved from
a main-branch run) load, round-trip to the same JSON, and older layouts are migrated on read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weightprog.errors import WeightprogError
from weightprog.records.advice import AdviceRecord, FlipMapRecord, read_advice_record, read_flip_map_record
from weightprog.records.comparison import ComparisonRecord
from weightprog.records.evaluate import EvaluateRecord
from weightprog.records.fit import FitRecord
from weightprog.records.optimize import OptimizeRecord
from weightprog.records.sweep import SweepJobRecord, SweepManifest

DATA = Path(__file__).parent / "data"
GOLDEN = [("optimize_report_v0.json", OptimizeRecord), ("evaluate_results_v0.json", EvaluateRecord),
          ("comparison_v0.json", ComparisonRecord), ("device_fit_v0.json", FitRecord),
          ("sweep_job_optimize_v0.json", SweepJobRecord), ("sweep_job_compare_v0.json", SweepJobRecord),
          ("sweep_manifest_v0.json", SweepManifest), ("advice_v0.json", AdviceRecord),
          ("flipmap_v0.json", FlipMapRecord)]


@pytest.mark.parametrize(("name", "cls"), GOLDEN)
def test_golden_files_load_and_round_trip(name, cls):
    data = json.loads((DATA / name).read_text())
    record = cls.from_json(data)
    assert json.dumps(record.to_json()) == json.dumps(data)  # the same keys, in the same order
    assert cls.from_json(record.to_json()) == record


def test_fit_and_sweep_records_are_typed():
    fit = FitRecord.from_json(json.loads((DATA / "device_fit_v0.json").read_text()))
    assert fit.device["name"] == "mine" and len(fit.bins) == 6 and all(isinstance(b.clean, bool) for b in fit.bins)
    job = SweepJobRecord.from_json(json.loads((DATA / "sweep_job_optimize_v0.json").read_text()))
    assert job.optimize is not None and job.strategy is not None and job.optimize.cell.significance == (1.0, 2.0)
    job = SweepJobRecord.from_json(json.loads((DATA / "sweep_job_compare_v0.json").read_text()))
    assert job.comparison is not None and [d.device for d in job.comparison.devices] == ["pcm", "pcm-lowdrift"]


def test_optimize_record_is_typed():
    r = OptimizeRecord.from_json(json.loads((DATA / "optimize_report_v0.json").read_text()))
    assert r.method == "pointwise" and r.expressible is False and r.bound is not None
    assert r.cell.pairs == 2 and r.cell.significance == (1.0, 2.0)
    assert r.tnmse.optimised.mean == pytest.approx(r.bound.tnmse * (1 + r.gap_to_bound["optimised"]))
    assert r.aihwkit_export is not None and r.aihwkit_export.strategy == "de"
    assert r.settings.f_max == 5 and r.settings.significance is None
    assert len(r.search) == 5 and r.search[r.chosen_search].polish_kept is not None
    assert r.labels["lsp_first_best"].endswith("(F=2)")


def test_older_optimize_layouts_are_migrated():
    data = json.loads((DATA / "optimize_report_v0.json").read_text())
    for key in ("method", "expressible", "bound", "gap_to_compensated", "improvement", "rescore"):
        data.pop(key)
    data["gap_to_bound"] = 0.175  # an early layout: one number
    data["expected"] = {"bound": 7.5e-4}
    r = OptimizeRecord.from_json(data)
    assert r.method is None and r.expressible is None and r.bound is None and r.gap_to_bound is None
    assert [p for _, p, _ in r.legacy_bounds] == ["/gap_to_bound", "/expected/bound"]


def test_older_evaluate_layouts_are_migrated():
    data = json.loads((DATA / "evaluate_results_v0.json").read_text())
    data["wall_s"] = data.pop("wall_time_s")
    for row in data["summary"]:
        del row["ci_low"], row["ci_high"]
    r = EvaluateRecord.from_json(data)
    assert r.wall_time_s == data["wall_s"] and all(x.ci_low is None for x in r.summary)


def test_sweep_job_records_hold_typed_results():
    report = json.loads((DATA / "optimize_report_v0.json").read_text())
    job = {"id": "j1", "kind": "optimize", "params": {"device": "pcm"}, "run": {"wall_time_s": 1.5},
           "result": {**report, "strategy": {"name": "optimised"}}}
    record = SweepJobRecord.from_json(job)
    assert record.optimize is not None and record.wall_time_s == 1.5
    assert json.dumps(record.to_json()) == json.dumps(job)
    comparison = json.loads((DATA / "comparison_v0.json").read_text())
    job = {"id": "j2", "kind": "compare", "params": {}, "run": {}, "result": comparison}
    assert SweepJobRecord.from_json(job).comparison is not None
    assert json.dumps(SweepJobRecord.from_json(job).to_json()) == json.dumps(job)


def test_advice_and_flip_map_records_are_typed():
    advice = AdviceRecord.from_json(json.loads((DATA / "advice_v0.json").read_text()))
    assert advice.with_bound and [p.prop for p in advice.properties] == ["drift_std", "read"]
    first = advice.properties[0]
    assert first.change.optimised < 0 and first.change.bound is not None and first.scores.cell == (1.0,)
    assert advice.settings.pairs == 1 and advice.weights == "distribution:default"
    flip = FlipMapRecord.from_json(json.loads((DATA / "flipmap_v0.json").read_text()))
    assert (flip.x.prop, flip.y.prop) == ("drift_std", "read") and len(flip.points) == 4
    assert sum(flip.counts.values()) == 4 and flip.points[0].verdict == flip.points[0].point.verdict()


def test_older_advice_layouts_are_migrated():
    """advice.json before bounds were reported: no `bound`, no `change_bound` / `elasticity_bound`."""
    data = json.loads((DATA / "advice_v0.json").read_text())
    del data["base"]["bound"], data["weights"]
    for p in data["properties"]:
        del p["scores"]["bound"], p["change_bound"], p["elasticity_bound"]
    r = AdviceRecord.from_json(data)
    assert not r.with_bound and r.weights is None and all(p.change.bound is None for p in r.properties)
    assert "change_bound" not in r.to_json()["properties"][0]


@pytest.mark.parametrize(("name", "read", "edit", "message"), [
    ("advice.json", read_advice_record, lambda d: d["properties"][1].update(factor="0.9"),
     "/properties/1/factor: expected a number, got \"0.9\""),
    ("advice.json", read_advice_record, lambda d: d["base"]["optimised"].pop("stderr"),
     "/base/optimised/stderr: missing"),
    ("advice.json", read_advice_record, lambda d: d.update(format="weightprog.flipmap"), "/format: expected"),
    ("flipmap.json", read_flip_map_record, lambda d: d["points"][2].pop("verdict"), "/points/2/verdict: missing"),
    ("flipmap.json", read_flip_map_record, lambda d: d["counts"].update({"both worse": 1.5}),
     "/counts/both worse: expected an integer"),
])
def test_a_bad_advice_or_flip_map_field_names_the_file_and_its_path(tmp_path, name, read, edit, message):
    data = json.loads((DATA / name.replace(".json", "_v0.json")).read_text())
    edit(data)
    (tmp_path / name).write_text(json.dumps(data))
    with pytest.raises(WeightprogError) as err:
        read(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / name}: {message}") and "\n" not in str(err.value)
