"""The study as resumable jobs: blocks of realisations add up to one run, intervals and paired
verdicts from the small CSV files, resumption, the engines, and docs/RESULTS.md's tables."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from study_helpers import tiny_settings, tiny_workloads
from weightprog.study import StudyData, StudySettings, markdown, paired_rows, run_study, summary_rows
from weightprog.study import jobs as study_jobs
from weightprog.validate import SettingError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_workload():
    with tiny_workloads():
        yield


settings = tiny_settings


def test_study_jobs_rows_intervals_and_resume(tmp_path, tiny_workload):
    log: list[str] = []
    res = run_study(settings(), tmp_path, log=log.append)
    assert res.complete and res.engine == "inline"
    # 4 roles × 2 variants × 2 times; every row has an interval around its mean, over realisations and examples
    assert len(res.summary) == 16
    for row in res.summary:
        assert row.realisations == 4 and row.examples == 96
        assert row.ci_low <= row.mean <= row.ci_high and row.interval_over == "realisations and examples"
        assert row.fp_digital == 1.0  # the FP model labels its own items
    assert {(p.strategy, p.versus) for p in res.paired} == {
        ("optimised", "best hand-crafted"), ("optimised", "naive"), ("best hand-crafted", "naive"),
        ("limit", "optimised"), ("limit", "best hand-crafted"), ("limit", "naive"), ("optimised", "FP digital")}
    for p in res.paired:
        assert p.verdict in ("better", "worse", "unresolved")
        assert (p.verdict == "unresolved") == (p.ci_low <= 0 <= p.ci_high)
    # the data CSVs give back the same tables
    again = StudyData.load(tmp_path / "data")
    assert summary_rows(again) == res.summary and paired_rows(again) == res.paired
    assert markdown(again) == (tmp_path / "summary.md").read_text()
    assert (tmp_path / "figures" / "tiny_pcm_metric_vs_time.png").stat().st_size > 1000
    # a rerun finds every job done; more realisations run only the new blocks
    log.clear()
    run_study(settings(), tmp_path, log=log.append)
    assert not any(line.startswith("[") for line in log)
    log.clear()
    res6 = run_study(settings(repeats=6), tmp_path, log=log.append)
    ran = [line for line in log if line.startswith("[")]
    assert len(ran) == 4 * 2 and all("r004-005" in line for line in ran)  # 4 roles × 2 variants, one new block
    assert {r.realisations for r in res6.summary} == {6}


def test_blocks_add_up_to_one_run(tmp_path, tiny_workload):
    """Realisation r has the same metric whatever block it ran in (its seed is (seed, r))."""
    one = run_study(settings(roles=("naive", "limit"), block=4), tmp_path / "a")
    split = run_study(settings(roles=("naive", "limit"), block=1), tmp_path / "b")
    assert one.data.realisations == split.data.realisations
    assert one.summary == split.summary


def test_paired_interval_is_tighter_than_the_difference_of_intervals(tmp_path, tiny_workload):
    res = run_study(settings(roles=("naive", "optimised"), repeats=6, block=3), tmp_path)
    at = {(r.variant, r.role, r.time_s): r for r in res.summary}
    for p in res.paired:
        if p.versus != "naive":
            continue
        a, b = at[(p.variant, "optimised", p.time_s)], at[(p.variant, "naive", p.time_s)]
        assert math.isclose(p.diff, a.mean - b.mean, abs_tol=1e-12)
        assert (p.ci_high - p.ci_low) <= (a.ci_high - a.ci_low) + (b.ci_high - b.ci_low) + 1e-12


def test_search_record_says_method_and_clipping(tmp_path, tiny_workload):
    run_study(settings(roles=("optimised",), repeats=1, block=1), tmp_path)
    rec = json.loads((tmp_path / "jobs" / "tiny@fp_pcm_search.json").read_text())["result"]
    assert rec["select"] == "resolved" and isinstance(rec["clips"], bool)
    assert rec["method"] in ("de", "pointwise", "pointwise_expressible") or rec["method"].startswith(
        ("lsp-first", "msp-first", "single-pair"))
    rows = StudyData.load(tmp_path / "data").searches
    assert {r.role for r in rows} == {"best hand-crafted", "optimised"}


def test_failed_job_is_reported_and_rerun(tmp_path, tiny_workload, monkeypatch):
    real = study_jobs._RUN["evaluate"]
    monkeypatch.setitem(study_jobs._RUN, "evaluate", lambda job: (_ for _ in ()).throw(RuntimeError("boom")))
    res = run_study(settings(roles=("naive",), repeats=1, block=1), tmp_path)
    assert not res.complete and all("boom" in e for e in res.failed.values())
    monkeypatch.setitem(study_jobs._RUN, "evaluate", real)
    res = run_study(settings(roles=("naive",), repeats=1, block=1), tmp_path)
    assert res.complete and len(res.summary) == 4


@pytest.mark.parametrize("kw, field", [({"repeats": 0}, "repeats"), ({"block": 0}, "block"),
                                       ({"roles": ("best",)}, "roles"), ({"select": "test"}, "select"),
                                       ({"roles": ()}, "roles")])
def test_settings_refused_with_the_field(kw, field, tiny_workload):
    with pytest.raises(SettingError, match=field):
        settings(**kw)


def test_study_blocks_cover_the_realisations():
    s = StudySettings(workloads=("ptb-lstm",), repeats=7, block=3)
    assert s.blocks() == [(0, 3), (3, 3), (6, 1)]
    assert s.times_s == (1.0, 3600.0, 86400.0, 2592000.0, 31536000.0)
    assert s.roles == ("naive", "best hand-crafted", "optimised", "limit") and s.variants == ("fp", "hwa")


def test_results_md_tables_match_the_committed_data():
    """docs/RESULTS.md's study tables are what scripts/study_tables.py computes from docs/study/."""
    study_tables = _study_tables()
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    assert study_tables.between(text) == study_tables.tables(ROOT / "docs" / "study")
    for name, csv_text in study_tables.derived_csvs(ROOT / "docs" / "study").items():
        assert (ROOT / "docs" / "study" / name).read_text() == csv_text, f"docs/study/{name} is stale"
    rows = summary_rows(StudyData.load(ROOT / "docs" / "study"))
    assert {r.time_s for r in rows} == {1.0, 3600.0, 86400.0, 2592000.0, 31536000.0}
    assert {r.variant for r in rows} == {"fp", "hwa"} and "limit" in {r.role for r in rows}
    assert all(r.ci_low <= r.mean <= r.ci_high for r in rows)


def _study_tables():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import study_tables
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return study_tables


def test_a_rerun_part_replaces_its_rows_when_combined(tmp_path, tiny_workload):
    """scripts/study_tables.py --replace: a later run's workload × device cells replace an earlier
    folder's; new digital runs (more test items) only with every device they were paired with."""
    study_tables = _study_tables()
    small = dict(roles=("naive",), variants=("fp",), repeats=1, block=1, times_s=(1.0,))
    run_study(settings(devices=("pcm", "pcm-lowdrift"), **small), tmp_path / "old")
    run_study(settings(devices=("pcm",), **{**small, "times_s": (86400.0,)}), tmp_path / "new")  # another time
    new = StudyData.load(tmp_path / "new" / "data")
    got = study_tables.combined([tmp_path / "old", tmp_path / "new"], replace=True)
    assert {r for r in got.realisations if r.device == "pcm"} == set(new.realisations)
    assert {r.device for r in got.realisations} == {"pcm", "pcm-lowdrift"} and got.digital == new.digital
    both = study_tables.combined([tmp_path / "old", tmp_path / "new"])  # without: both kept
    assert len([r for r in both.realisations if r.device == "pcm"]) == 2 * len(new.realisations)
    run_study(settings(devices=("pcm",), eval_size={"tiny": 48}, **small), tmp_path / "more")  # other digital runs
    with pytest.raises(SystemExit, match="not the rows of tiny@pcm-lowdrift"):
        study_tables.combined([tmp_path / "old", tmp_path / "more"], replace=True)


@pytest.mark.slow
def test_study_on_ray_equals_the_local_run(tmp_path):
    """`run_study(ray="auto")` on a local Ray instance gives the local run's numbers (PTB, 200 tokens)."""
    pytest.importorskip("ray")
    s = StudySettings(workloads=("ptb-lstm",), devices=("pcm",), variants=("hwa",), roles=("naive", "limit"),
                      times_s=(1.0, 86400.0), repeats=2, block=1, eval_size={"ptb-lstm": 200}, threads=1,
                      network_repeats=1)  # the limit's choices on 20,000 held-out tokens: one realisation
    local = run_study(s, tmp_path / "local")
    ray = run_study(s, tmp_path / "ray", ray="auto")
    assert ray.engine == "ray:auto" and ray.complete
    assert ray.data.realisations == local.data.realisations and ray.summary == local.summary


@pytest.mark.slow  # CI runs it in its slow line: worker processes, each starting torch
def test_processes_equal_inline(tmp_path):
    """Two worker processes give the in-process numbers (the same jobs, seeds and thread count)."""
    s = StudySettings(workloads=("ptb-lstm",), devices=("pcm",), variants=("hwa",), roles=("naive",),
                      times_s=(1.0,), repeats=2, block=1, eval_size={"ptb-lstm": 100}, threads=1, periphery="ideal")
    inline = run_study(s, tmp_path / "a")
    procs = run_study(replace(s), tmp_path / "b", workers=2)
    assert procs.engine == "processes:2" and procs.summary == inline.summary


def test_hwa_alone_keeps_the_fp_reference(tmp_path, tiny_workload):
    """`--variant hwa`: only the HWA model is programmed, and its comparison with the FP model's
    digital metric (on the same examples) is still there."""
    res = run_study(settings(variants=("hwa",), roles=("naive",), repeats=2, block=2), tmp_path)
    assert {d.variant for d in res.data.digital} == {"fp", "hwa"}
    assert {r.variant for r in res.summary} == {"hwa"} and {r.fp_digital for r in res.summary} == {1.0}


def test_bad_study_options_are_one_line_errors(tmp_path):
    from click.testing import CliRunner

    from weightprog.cli import main
    for args, text in ((["--workers", "-1"], "--workers"), (["--role", "best"], "--role"),
                       (["--block", "0"], "--block"), (["--select", "test"], "--select")):
        res = CliRunner().invoke(main, ["study", "--out", str(tmp_path / "s"), *args])
        assert res.exit_code == 2 and text in res.output, res.output
    assert not (tmp_path / "s").exists()


def test_study_sends_the_one_progress_event(tmp_path, tiny_workload):
    from weightprog.progress import Event

    events: list[Event] = []
    run_study(settings(roles=("naive",), repeats=1, block=1), tmp_path, progress=events.append)
    assert events and all(isinstance(e, Event) and e.task == "study" for e in events)
    assert [e.done for e in events] == list(range(1, len(events) + 1)) and events[-1].done == events[-1].total
    assert events[-1].path[0].endswith("_r000-000")


@pytest.mark.parametrize("precision", ["0.015", "tiny=0.015"])
def test_precision_adds_test_items_in_resumable_rounds(tmp_path, tiny_workload, precision):
    # one role: no paired comparison, so its own interval (realisations and items) sets the rounds
    s = settings(roles=("naive",), variants=("fp",), repeats=3, block=3, eval_size={"tiny": 40},
                 precision=precision)
    log: list[str] = []
    res = run_study(s, tmp_path, log=log.append)
    plan = json.loads((tmp_path / "study.json").read_text())
    report = plan["precision"]["tiny"]
    assert report["rounds"][0] == 40 and len(report["rounds"]) >= 2 and report["rounds"] == sorted(report["rounds"])
    # R = 3 cannot reach ±0.015 on the tiny workload's 600 items (±0.025 there): every item is used, and it says so
    assert not report["met"] and report["limited_by"] == "test set" and report["rounds"][-1] == 600
    last = report["rounds"][-1]
    assert all(r.examples == last for r in res.summary)  # the tables are the last round's
    assert all(j.endswith(f"_p{len(report['rounds']) - 1}") for j in plan["jobs"] if "_r0" in j or "digital" in j)
    assert any("precision: tiny round 2" in m for m in log) and "tiny: precision:" in res.markdown
    log.clear()
    again = run_study(s, tmp_path, log=log.append)  # every round resumes from its records
    assert not any(m.startswith("[") for m in log)
    assert again.summary == res.summary


def test_precision_is_validated(tiny_workload):
    with pytest.raises(SettingError, match="precision: must be > 0"):
        settings(precision="-1")
    with pytest.raises(SettingError, match="precision: 'ptb-lstm' is not a workload of this study"):
        settings(precision="tiny=0.005,ptb-lstm=1%")
    with pytest.raises(SettingError, match="precision: must be > 0"):
        settings(precision="tiny=0")


def test_precision_per_workload(tiny_workload):
    """`W=P` names each workload's target (accuracy in points, perplexity in %); a bare P is every
    workload's; a workload not named runs one round."""
    from weightprog.nn.precision import PrecisionTarget
    both = ("tiny", "ptb-lstm")
    assert settings(workloads=both).precision_targets() == {}
    assert settings(workloads=both, precision="0.01").precision_targets() == {
        "tiny": PrecisionTarget(0.01), "ptb-lstm": PrecisionTarget(0.01)}
    assert settings(workloads=both, precision="ptb-lstm=2%").precision_targets() == {
        "ptb-lstm": PrecisionTarget(0.02, relative=True)}
    assert settings(workloads=both, precision=" tiny=0.005, ptb-lstm=1%").precision_targets() == {
        "tiny": PrecisionTarget(0.005), "ptb-lstm": PrecisionTarget(0.01, relative=True)}


def test_a_worker_with_another_library_refuses_its_job(monkeypatch):
    from weightprog.study import jobs

    job = jobs.StudyJob("digital", "no-such-workload", "fp")
    sent = jobs.task(job)
    assert sent[jobs.LIBRARY] == jobs.library_fingerprint() and len(sent[jobs.LIBRARY]) == 16
    refused = jobs.run_job(sent | {jobs.LIBRARY: "0123456789abcdef"})
    assert refused["error"].startswith("LibraryChanged: ") and "0123456789abcdef" in refused["error"]
    assert refused["job"] == job.to_dict()  # the record keeps the job itself, as the plan compares it
    ran = jobs.run_job(sent)  # the same library: the job runs (and fails on its own, unknown workload)
    assert not ran["error"].startswith("LibraryChanged") and ran["run"][jobs.LIBRARY] == sent[jobs.LIBRARY]


def test_a_rerun_may_grow_the_study_but_not_change_it(tmp_path, tiny_workload):
    """`--repeats 2` into a folder run with `--repeats 1` runs the missing block (the study's
    extents may change); `--seed` may not (every record would be of other settings)."""
    from click.testing import CliRunner

    from weightprog.cli import main
    base = ["study", "--workload", "tiny", "--device", "pcm", "--variant", "fp", "--role", "naive", "--times", "1s",
            "--block", "1", "--beside", "none", "--eval-size", "tiny=48", "--out", str(tmp_path / "s")]
    first = CliRunner().invoke(main, [*base, "--repeats", "1"])
    assert first.exit_code == 0, first.output
    grown = CliRunner().invoke(main, [*base, "--repeats", "2"])
    assert grown.exit_code == 0 and "3 of 4 jobs done before, 1 to run" in grown.output, grown.output
    assert (tmp_path / "s" / "jobs" / "tiny@fp_pcm_naive_r001-001.json").is_file()
    refused = CliRunner().invoke(main, [*base, "--repeats", "2", "--seed", "1"])
    assert refused.exit_code != 0 and "its run had --seed 0, this one --seed 1" in refused.output, refused.output
    # a precision target on the same folder: the first round's records kept, more items as new jobs
    precise = CliRunner().invoke(main, [*base, "--repeats", "2", "--precision", "1e-9"])
    assert precise.exit_code == 0, precise.output
    assert "4 of 4 jobs done before, 0 to run" in precise.output and "precision: tiny round 2" in precise.output
    assert (tmp_path / "s" / "jobs" / "tiny@fp_pcm_naive_r001-001_p1.json").is_file()


def test_a_periphery_beside_the_study_is_paired_with_it(tmp_path, tiny_workload):
    """`beside=("standard@1d",)`: every strategy also under `standard` at 1 d, on the same
    realisations and examples as under the study's periphery; its own rows and a paired difference
    from itself there, in the data, the tables and the Markdown."""
    s = settings(roles=("naive", "limit"), variants=("fp",), repeats=2, block=1, beside=("standard@1d",))
    res = run_study(s, tmp_path)
    beside = [r for r in res.summary if r.beside]
    assert {(r.role, r.periphery, r.time_s) for r in beside} == {("naive", "standard", 86400.0),
                                                                 ("limit", "standard", 86400.0)}
    assert all(r.realisations == 2 and r.interval_over == "realisations and examples" for r in beside)
    diffs = {p.strategy: p for p in res.paired if p.strategy == p.versus}
    assert set(diffs) == {"naive", "limit"}
    main = {(r.role, r.time_s): r for r in res.summary if not r.beside}
    for r in beside:
        p = diffs[r.role]
        assert (p.periphery, p.versus_periphery, p.time_s) == ("standard", "ideal", 86400.0)
        assert p.diff == pytest.approx(r.mean - main[(r.role, 86400.0)].mean)
        assert p.ci_low <= p.diff <= p.ci_high
    assert (tmp_path / "jobs" / "tiny@fp_pcm_naive_standard_r001-001.json").is_file()
    # the study's limit is limit-chosen: per periphery, chosen on held-out data, recorded with the choice
    assert {r.strategy for r in res.summary if r.role == "limit"} == {"limit-chosen"}
    rec = json.loads((tmp_path / "jobs" / "tiny@fp_pcm_limit_standard_r000-000.json").read_text())
    assert rec["job"]["params"]["limit"] == "limit-chosen" and rec["result"]["limit"]["name"] == "limit-chosen"
    assert [h["time_s"] for h in rec["result"]["limit"]["held_out"]] == [86400.0]
    assert rec["job"]["params"]["limit_gain"] == "validate" and rec["result"]["limit"]["gain_scan"]
    assert rec["job"]["params"]["choice_repeats"] == s.network_repeats  # the limit's choices, as the search's
    assert {p["gain"] for p in rec["result"]["limit"]["per_time"]} <= {g["gain"] for g in
                                                                      rec["result"]["limit"]["gain_scan"]}
    # chosen once per periphery (its own job), and every block reads that choice back unchanged
    for suffix, block in (("", "tiny@fp_pcm_limit_r001-001"), ("_standard", "tiny@fp_pcm_limit_standard_r001-001")):
        choice = json.loads((tmp_path / "jobs" / f"tiny@fp_pcm_limit-choice{suffix}.json").read_text())
        used = json.loads((tmp_path / "jobs" / f"{block}.json").read_text())
        assert used["job"]["params"]["choice"] == choice["result"]["limit"] == used["result"]["limit"]
    md = (tmp_path / "summary.md").read_text()
    assert "Beside `ideal`" in md and "| pcm | fp | naive: lsp-first (f=1,1) | 1d |" in md
    again = StudyData.load(tmp_path / "data")  # the CSV files keep the periphery
    assert summary_rows(again) == res.summary and paired_rows(again) == res.paired


@pytest.mark.parametrize("beside, text", [(("io8@1y",), "not one of the study's times"),
                                          (("ideal",), "the study's periphery"),
                                          (("nonsense",), "beside")])
def test_beside_is_validated(beside, text, tiny_workload):
    with pytest.raises(SettingError, match=text):
        settings(beside=beside)
