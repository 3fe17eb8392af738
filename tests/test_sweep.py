"""Sweeps: expansion and ids, resumable runs (killed part-way), failures, local vs Ray."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from weightprog.cli.sweep import sweep as sweep_command
from weightprog.errors import WeightprogError
from weightprog.sweep import SweepError, comparable_records, load_sweep, read_record, run_sweep, sweep_status

TINY = """\
name: tiny
kind: [optimize, compare]
devices: [pcm, pcm-lowdrift]
cells: [1, "1,2"]
grid_points: 3
times: "1s,1d"
seeds: [0]
settings:
  max_generations: 2
  popsize: 2
  rescore_blocks: 1
  compile: false
  polish: false
  sample_size: 1024
  rows: 512
"""
TOTAL = 6  # 2 devices x 2 cells optimize + 2 cells compare, one seed


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def results(out: Path, sweep) -> dict:
    return comparable_records(out, sweep.jobs)


def done_events(out: Path) -> Counter:
    lines = (out / "events.jsonl").read_text().splitlines()
    return Counter(e["id"] for e in map(json.loads, lines) if e["event"] == "done")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny sweep file and its uninterrupted run (in this process)."""
    root = tmp_path_factory.mktemp("sweep")
    path = write(root / "tiny.yaml", TINY)
    ref = run_sweep(path, root / "ref", workers=0)
    assert len(ref.ran) == TOTAL and not ref.failed
    return path, root / "ref", load_sweep(path)


# --- the sweep file ---------------------------------------------------------------------------

def test_expansion_and_stable_ids(tmp_path, tiny):
    path, _, sweep = tiny
    assert len(sweep.jobs) == TOTAL
    kinds = Counter(j.kind for j in sweep.jobs)
    assert kinds == {"optimize": 4, "compare": 2}
    assert len({j.id for j in sweep.jobs}) == TOTAL
    assert [j.id for j in load_sweep(path).jobs] == [j.id for j in sweep.jobs]  # stable
    # a copy elsewhere has the same ids; two more seeds keep every old id and add 12 jobs
    moved = write(tmp_path / "moved.yaml", TINY.replace("seeds: [0]", "seeds: 3"))
    ids = {j.id for j in load_sweep(moved).jobs}
    assert {j.id for j in sweep.jobs} < ids and len(ids) == TOTAL + 12
    opt = next(j for j in sweep.jobs if j.kind == "optimize" and j.params["cell"]["pairs"] == 2)
    assert opt.params["cell"] == {"pairs": 2, "significance": [1.0, 2.0], "f_max": 5}
    assert opt.params["times_s"] == [1.0, 86400.0]
    comp = next(j for j in sweep.jobs if j.kind == "compare")
    assert comp.params["devices"] == ["pcm", "pcm-lowdrift"]


@pytest.mark.parametrize("text, match", [
    ("devices: [pcm]\nbogus: 1\n", r"unknown key 'bogus'; allowed: name, kind"),
    ("devices: [pcm]\nsetings: {popsize: 5}\n", r"unknown key 'setings' \(did you mean 'settings'\?\)"),
    ("settings: {popsize: 5, polsh: false}\n", r"settings: unknown key 'polsh' \(did you mean 'polish'\?\)"),
    ("cells: [{pair: 2}]\n", r"cells\[0\]: unknown key 'pair' \(did you mean 'pairs'\?\)"),
    ("settings: {seed: 3}\n", r"settings\.seed: is set with the grid's axes"),
    ("settings: {popsize: 0}\n", r"settings\.popsize: must be >= 1, got 0"),
    ("settings: {rescore_blocks: 0}\n", r"settings\.rescore_blocks: must be >= 1, got 0"),
    ("settings: {budget_s: -5}\n", r"settings\.budget_s: must be > 0, got -5"),
    ("settings: {compute: tpu}\n", r"settings\.compute: use cpu, cuda or cuda:N, got 'tpu'"),
    ("cells: [100]\n", r"pairs: must be in 1…4, got 100"),
    ("seeds: [99999999999999999999]\n", r"seeds\[0\]: must be in 0…4294967295"),
    ("grid_points: [3, 1]\n", r"grid_points\[1\]: must be in 2…64, got 1"),
    ("cells: [{pairs: 2, f_max: 100}]\n", r"cells\[0\]\.f_max: must be in 1…64, got 100"),
    ("cells: [{significance: [1, -2]}]\n", r"cells\[0\]\.significance: .*factors > 0"),
    ("settings: {naive: lsp-last}\n", r"settings\.naive: use one of single-pair, lsp-first, msp-first"),
    ("settings: {normalise: rows}\n", r"settings\.normalise: use one of column, tensor, got 'rows'"),
    ("settings: {threads: 0}\n", r"settings\.threads: must be >= 1, got 0"),
    ("times: ['1s,1000000y']\n", r"times\[0\]: times: 1000000y is beyond 100y"),
    ("settings: {popsize: two}\n", r"settings\.popsize: must be an integer"),
    ("settings: {sample_size: 1000}\n", r"settings\.sample_size: 1000 must be a multiple of rows"),
    ("cells: [{pairs: 3, significance: '1,2'}]\n", r"cells\[0\]: significance \[1.0, 2.0\] has 2 factors"),
    ("devices: [nonexistent]\n", r"devices\[0\]: 'nonexistent' is neither a known name nor an existing file"),
    ("kind: compare\ndevices: [pcm]\n", r"devices: kind compare needs at least 2 devices"),
    ("kind: evaluate\n", r"kind: 'evaluate' is not one of optimize, compare"),
    ("times: ['1s,1x']\n", r"times\[0\]: times: cannot read '1x'"),
    ("weights: [distribution:nope]\n", r"weights\[0\]: unknown distribution 'nope'"),
    ("weights: [missing.npy]\n", r"weights\[0\]: 'missing.npy' is neither"),
    ("seeds: [0, 0]\n", r"two jobs have the same settings"),
    ("- a list\n", r"expected a mapping"),
    ("devices: [pcm\n", r"not valid YAML"),
])
def test_errors_name_the_file_and_the_field(tmp_path, text, match):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(SweepError, match=match) as info:
        load_sweep(path)
    assert str(path) in str(info.value)


def test_naive_in_both_spellings_and_ids_as_before(tmp_path):
    """`naive` reads the CLI's spelling (msp-first) and the older one (msp_first); a file in the older
    spelling keeps the id it had (ids hash the settings as written), and both run the same baseline."""
    text = "kind: compare\ndevices: [pcm, pcm-lowdrift]\nsettings: {{naive: {}}}\n"
    old = load_sweep(write(tmp_path / "old.yaml", text.format("msp_first"))).jobs[0]
    new = load_sweep(write(tmp_path / "new.yaml", text.format("msp-first"))).jobs[0]
    assert old.id == "35cda088bf409f72"  # the id sweeps written before this spelling was read keep
    assert old.params["settings"]["naive"] == "msp_first"
    assert old.sample_settings().naive == new.sample_settings().naive == "msp-first"
    assert load_sweep(write(tmp_path / "rows.yaml", "cells: [1]\nsettings: {rows: 256}\n")).jobs[0].id \
        == "70b6ea754af6b951"


# --- running ----------------------------------------------------------------------------------

def session_processes(sid: int) -> list[int]:
    """Live processes of session `sid` (a driver started with start_new_session: it and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
                if os.getsid(int(entry.name)) == sid and state not in "ZX":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def wait_until_gone(sid: int, within_s: float) -> list[int]:
    deadline = time.perf_counter() + within_s
    while session_processes(sid) and time.perf_counter() < deadline:
        time.sleep(0.2)
    left = session_processes(sid)
    for pid in left:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.slow  # CI runs it in its slow line: three driver processes, each starting torch
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_local_processes_killed_part_way_then_resumed(tmp_path, tiny):
    """kill -9 the driver alone right after the 3rd result: its workers (and the forkserver and
    resource tracker) go with it, nothing is left computing; a re-run finishes the rest."""
    path, ref, sweep = tiny
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        from weightprog.sweep import run_sweep
        def progress(e):
            if e.detail.done >= 3:
                os.kill(os.getpid(), signal.SIGKILL)  # the driver only, as `kill -9 PID` does
        run_sweep({str(path)!r}, {str(out)!r}, workers=2, progress=progress)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    assert proc.wait(timeout=300) == -signal.SIGKILL
    assert wait_until_gone(proc.pid, within_s=10) == []  # workers watch their driver (1 s polls)
    status = sweep_status(sweep, out)
    assert len(status.done) == 3 and len(status.pending) == TOTAL - 3 and not status.failed
    before = {jid: (out / "jobs" / f"{jid}.json").read_bytes() for jid in status.done}
    again = run_sweep(path, out, workers=2)
    assert sorted(again.skipped) == sorted(status.done)
    assert sorted(again.ran) == sorted(status.pending) and not again.failed
    assert all((out / "jobs" / f"{jid}.json").read_bytes() == b for jid, b in before.items())  # not redone
    assert done_events(out) == Counter({j.id: 1 for j in sweep.jobs})  # every job done exactly once
    assert results(out, sweep) == results(ref, sweep)  # same numbers as the uninterrupted run
    assert not list((out / "jobs").glob(".*.tmp"))
    # nothing left to do
    third = run_sweep(path, out, workers=2)
    assert third.ran == [] and len(third.skipped) == TOTAL and third.engine == "none"
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 + 2 * 2 and (out / "summary.png").stat().st_size > 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_sigterm_stops_driver_and_workers_within_seconds(tmp_path, tiny):
    """SIGTERM (as Ctrl-C) mid-sweep: the driver stops at once, its running workers with it; the
    finished jobs are kept."""
    path, _, sweep = tiny
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal, time
        from weightprog.sweep import run_sweep
        def progress(e):
            if e.detail.done >= 2:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # interrupted by the signal's KeyboardInterrupt, not waited out
        run_sweep({str(path)!r}, {str(out)!r}, workers=2, progress=progress)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stderr=subprocess.PIPE,
                            text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert wait_until_gone(proc.pid, within_s=5) == []
    status = sweep_status(sweep, out)
    assert len(status.done) >= 2 and not status.failed


def test_failed_job_is_recorded_and_others_go_on(tmp_path):
    weights = tmp_path / "w.npy"
    np.save(weights, np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32))
    path = write(tmp_path / "s.yaml", """\
        weights: [distribution:default, w.npy]
        cells: [1]
        grid_points: 3
        times: 1s,1h
        settings: {max_generations: 1, popsize: 2, rescore_blocks: 1, compile: false, polish: false,
                   sample_size: 1024}
    """)
    sweep = load_sweep(path)
    bad = next(j for j in sweep.jobs if j.params["weights"] == "w.npy")
    weights.rename(tmp_path / "away.npy")  # the file goes missing after the sweep was read
    events = []
    first = run_sweep(sweep, tmp_path / "out", workers=0,
                      progress=lambda e: events.append((e.detail.event, e.detail.done, e.detail.failed,
                                                        e.detail.pending)))
    assert list(first.failed) == [bad.id] and len(first.done) == 1
    assert events[0] == ("start", 0, 0, 2) and ("failed", 1, 1, 0) in events
    err = json.loads((tmp_path / "out" / "jobs" / f"{bad.id}.error.json").read_text())
    assert "not found" in err["error"] and "Traceback" in err["traceback"]
    assert sweep_status(sweep, tmp_path / "out").failed == {bad.id: err["error"]}
    # skip-failed leaves it; a plain re-run retries it
    assert run_sweep(sweep, tmp_path / "out", workers=0, retry_failed=False).ran == []
    (tmp_path / "away.npy").rename(weights)
    second = run_sweep(sweep, tmp_path / "out", workers=0)
    assert second.ran == [bad.id] and not second.failed
    assert not (tmp_path / "out" / "jobs" / f"{bad.id}.error.json").exists()
    record = read_record(tmp_path / "out", bad.id)
    assert record["result"]["weights"] == "w.npy" and record["result"]["tnmse"]["optimised"]["mean"] > 0


def test_cli(tmp_path, tiny):
    path, ref, sweep = tiny
    runner = CliRunner()
    res = runner.invoke(sweep_command, [str(path), "--out", str(ref), "--list"])
    assert res.exit_code == 0, res.output
    assert f"{TOTAL} jobs: {TOTAL} done, 0 failed, 0 pending" in res.output
    # a folder the Python API wrote has no command.json listing its files: the CLI never replaces them
    res = runner.invoke(sweep_command, [str(path), "--out", str(ref), "--workers", "0"])
    assert isinstance(res.exception, WeightprogError) and "is not listed" in str(res.exception)
    out = tmp_path / "cli"
    for before in (0, TOTAL):  # a run, then a rerun that finds every job done
        res = runner.invoke(sweep_command, [str(path), "--out", str(out), "--workers", "0"])
        assert res.exit_code == 0, res.output
        assert f"{TOTAL}/{TOTAL} jobs done ({TOTAL - before} this run, {before} before)" in res.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_job_on_cuda_matches_cpu_closely(tmp_path):
    text = TINY.replace("kind: [optimize, compare]", "kind: optimize")
    cpu = run_sweep(write(tmp_path / "cpu.yaml", text), tmp_path / "cpu", workers=0)
    cuda = run_sweep(write(tmp_path / "cuda.yaml", text + "  compute: cuda\n"), tmp_path / "cuda", workers=0)
    assert len(cuda.ran) == len(cpu.ran) == 4 and not cuda.failed
    a = sorted(float(r["result"]["tnmse"]["optimised"]["mean"])
               for r in map(json.loads, (p.read_text() for p in (tmp_path / "cpu" / "jobs").glob("*.json"))))
    b = sorted(float(r["result"]["tnmse"]["optimised"]["mean"])
               for r in map(json.loads, (p.read_text() for p in (tmp_path / "cuda" / "jobs").glob("*.json"))))
    assert np.allclose(a, b, rtol=0.05)


def test_ray_address_nobody_answers_fails_fast(tmp_path, tiny):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[scale]'")
    if ray.is_initialized():
        pytest.skip("Ray already initialised here: run_sweep uses it as it is")
    path, _, _ = tiny
    start = time.perf_counter()
    with pytest.raises(SweepError, match=r"--ray 127\.0\.0\.1:1: no Ray cluster answers there"):
        run_sweep(path, tmp_path / "out", ray="127.0.0.1:1")
    assert time.perf_counter() - start < 30


# --- Ray --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[scale]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


class Stop(Exception):
    pass


@pytest.mark.slow
def test_ray_killed_part_way_then_resumed_and_same_as_local(tmp_path, tiny, ray_local):
    path, ref, sweep = tiny
    out = tmp_path / "ray"

    def stop_after_three(e):
        if e.detail.done >= 3:
            raise Stop  # the driver dies part-way; in-flight tasks are cancelled

    with pytest.raises(Stop):
        run_sweep(path, out, ray="auto", progress=stop_after_three)
    status = sweep_status(sweep, out)
    assert len(status.done) == 3 and len(status.pending) == TOTAL - 3
    again = run_sweep(path, out, ray="auto")
    assert again.engine == "ray:auto" and sorted(again.ran) == sorted(status.pending) and not again.failed
    assert done_events(out) == Counter({j.id: 1 for j in sweep.jobs})
    assert results(out, sweep) == results(ref, sweep)  # Ray = local, same seeds, identical numbers
    whole = run_sweep(path, tmp_path / "ray-whole", ray="auto")  # uninterrupted on Ray too
    assert results(tmp_path / "ray-whole", sweep) == results(ref, sweep) and len(whole.ran) == TOTAL


def test_ray_missing_gives_install_hint(monkeypatch, tiny, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    path = write(tmp_path / "one.yaml", TINY.replace("seeds: [0]", "seeds: [5]"))
    with pytest.raises(SweepError, match=r"pip install 'ray==2\.\d+\.\d+'"):
        run_sweep(path, tmp_path / "out", ray="auto")



def test_sweep_file_takes_scaled_devices(tmp_path):
    """`pcm:read=2` and `dev.yaml:read=2` are devices in a sweep file; a bad scale names the entry."""
    from weightprog.devices import get_device
    from weightprog.devices.fit import write_device

    write_device(tmp_path / "dev.yaml", get_device("ecram"))  # any tabulated device file
    (tmp_path / "s.yaml").write_text("devices: [pcm, 'pcm:read=2', 'dev.yaml:programming=0.5']\n")
    jobs = load_sweep(tmp_path / "s.yaml").jobs
    assert [j.params["device"] for j in jobs] == ["pcm", "pcm:read=2", "dev.yaml:programming=0.5"]
    scaled_file = jobs[2].files["device"]
    assert scaled_file.endswith("dev.yaml:programming=0.5")
    assert get_device(scaled_file).scales.programming == 0.5
    (tmp_path / "bad.yaml").write_text("devices: ['pcm:loud=2']\n")
    with pytest.raises(SweepError, match=r"devices\[0\].*loud"):
        load_sweep(tmp_path / "bad.yaml")
