"""Issue 12: every bad input is one line naming the file and field (exit code 2, no traceback,
nothing written, inputs untouched), outputs never overwrite inputs, and the answers that used to
be silently wrong are right. Bad inputs fail before any search, so these tests are fast."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.cli import main
from weightprog.devices import get_device, load_tabulated
from weightprog.devices.fit import fit_device
from weightprog.devices.measurements import parse_measurements, simulate_measurements, write_measurements
from weightprog.errors import WeightprogError
from weightprog.fileio import atomic_write_text, lock_folder, unlock_folder
from weightprog.largescale import sample_file
from weightprog.search.run import OptimizeSettings
from weightprog.strategy import Strategy
from weightprog.weightfiles import load_state

TINY_SEARCH = ["--pairs", "1", "--max-generations", "1", "--popsize", "3", "--no-polish", "--rescore-blocks", "1",
               "--sample-size", "1024", "--times", "1s,1d"]


def snapshot(folder):
    """Every file under `folder` with its bytes and mode: 'nothing written, nothing changed'."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result, *needles):
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    assert out.startswith("error: "), out
    for needle in needles:
        assert needle in out, out
    return out


@pytest.fixture
def files(tmp_path):
    """Bad and odd weight files, a measurement CSV and an unrelated file, in tmp_path."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "column.npy", rng.standard_normal((300, 1)).astype(np.float32))
    np.save(tmp_path / "plain.npy", rng.standard_normal(300).astype(np.float32))
    np.save(tmp_path / "zeros.npy", np.zeros((64, 64), np.float32))
    np.save(tmp_path / "int8.npy", np.ones((64, 64), np.int8))
    np.save(tmp_path / "bool.npy", np.ones((64, 64), bool))
    np.save(tmp_path / "complex.npy", np.ones((64, 64), np.complex64))
    (tmp_path / "corrupt.safetensors").write_bytes(b"garbage" * 10)
    (tmp_path / "huge_header.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    torch.save({"fc.weight": torch.randn(64, 64)}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(1).bytes(4000))
    torch.save({"epoch": 3, "model_state_dict": {"fc.weight": torch.randn(64, 64)}}, tmp_path / "nested.pt")
    (tmp_path / "notes.txt").write_text("mine")
    return tmp_path


# --- the command line: one line, exit code 2, nothing written --------------------------------

OPTIMIZE_CASES = [  # (arguments after `optimize`, what the line must name)
    (["--seed", "-1"], ["--seed", "0…4294967295"]),
    (["--seed", "99999999999999999999"], ["--seed"]),
    (["--popsize", "0"], ["--popsize", ">= 1"]),
    (["--rescore-blocks", "0"], ["--rescore-blocks", ">= 1"]),
    (["--f-max", "0"], ["--f-max"]),
    (["--compute", "tpu"], ["--compute", "cpu, cuda or cuda:N"]),
    (["--budget", "-5"], ["--budget", "> 0"]),
    (["--times", "1s,1000000y"], ["--times", "1000000y is beyond 100y"]),
    (["--pairs", "100"], ["--pairs", "1…4"]),
    (["--grid", "1"], ["--grid"]),
    (["--weights", "{d}/corrupt.safetensors"], ["corrupt.safetensors: not a readable safetensors file"]),
    (["--weights", "{d}/huge_header.safetensors"], ["huge_header.safetensors: not a readable safetensors file"]),
    (["--weights", "{d}/zeros.npy"], ["zeros.npy: every weight is 0"]),
    (["--weights", "{d}/int8.npy"], ["int8.npy", "dtype int8", "floating-point"]),
    (["--weights", "{d}/bool.npy"], ["bool.npy", "dtype bool"]),
    (["--weights", "{d}/complex.npy"], ["complex.npy", "dtype complex64"]),
    (["--weights", "{d}/truncated.pt"], ["truncated.pt: not a readable torch file (truncated or corrupt"]),
    (["--weights", "{d}/random.pt"], ["random.pt: not a file of plain tensors", "never runs code"]),
    (["--out", "/proc/weightprog-x"], ["/proc/weightprog-x"]),
    (["--out", "{d}/notes.txt"], ["notes.txt: is an existing file, not a folder"]),
]
if not torch.cuda.is_available():
    OPTIMIZE_CASES.append((["--compute", "cuda"], ["--compute", "no GPU is available"]))


@pytest.mark.parametrize("args, needles", OPTIMIZE_CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_optimize_bad_input_is_one_line(files, args, needles):
    before = snapshot(files)
    args = [a.format(d=files) for a in args]
    out = [] if "--out" in args else ["--out", str(files / "run")]
    result = CliRunner().invoke(main, ["optimize", *args, *out])
    line = one_line_error(result, *needles)
    assert "weights_only=False" not in line  # torch's advice, never to be followed here
    assert snapshot(files) == before and not (files / "run").exists()


@pytest.mark.parametrize("args, needles", [
    (["baselines", "--pairs", "100"], ["--pairs", "1…4"]),
    (["baselines", "--seed", "-1"], ["--seed"]),
    (["device", "simulate", "pcm", "--out", "{d}/sim.csv", "--seed", "-1"], ["--seed"]),
    (["device", "simulate", "{d}/dev.yaml", "--out", "{d}/dev.yaml"], ["--out", "is the input DEVICE"]),
])
def test_other_commands_bad_input_is_one_line(files, args, needles):
    (files / "dev.yaml").write_text(yaml.safe_dump(get_device("ecram").to_dict()))
    before = snapshot(files)
    one_line_error(CliRunner().invoke(main, [a.format(d=files) for a in args]), *needles)
    assert snapshot(files) == before


def test_compare_devices_existing_file_as_out(files):
    before = snapshot(files)
    result = CliRunner().invoke(main, ["compare-devices", "pcm", "ideal", "--out", str(files / "notes.txt")])
    one_line_error(result, "--out", "notes.txt: is an existing file, not a folder")
    assert snapshot(files) == before


def test_sweep_unwritable_out(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("devices: [pcm]\ncells: [1]\nsettings: {max_generations: 1}\n")
    result = CliRunner().invoke(main, ["sweep", str(sweep), "--out", "/proc/weightprog-x", "--workers", "0"])
    one_line_error(result, "/proc/weightprog-x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_evaluate_cuda_without_gpu(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--model", "nope:make", "--strategy", "lsp-first",
                                       "--compute", "cuda"])
    one_line_error(result, "--compute", "no GPU is available")


def test_evaluate_existing_file_as_out(files):
    """One line naming --out, as the other commands say it (no usage block)."""
    result = CliRunner().invoke(main, ["evaluate", "--model", "nope:make", "--strategy", "lsp-first",
                                       "--out", str(files / "notes.txt")])
    one_line_error(result, "--out", "notes.txt: is an existing file, not a folder")
    assert (files / "notes.txt").read_text() == "mine"


def test_study_bad_settings_named_by_option(tmp_path):
    result = CliRunner().invoke(main, ["study", "--out", str(tmp_path / "s"), "--repeats", "0"])
    one_line_error(result, "--repeats", ">= 1")
    result = CliRunner().invoke(main, ["study", "--out", str(tmp_path / "s"), "--threads", "-1"])
    one_line_error(result, "--threads")
    assert not (tmp_path / "s").exists()


def test_study_variant_and_periphery_reach_the_settings(tmp_path, monkeypatch):
    import weightprog.study.run as study_run
    seen = []
    monkeypatch.setattr(study_run, "run_study", lambda settings, out, **kw: seen.append(settings) or 1 / 0)
    CliRunner().invoke(main, ["study", "--out", str(tmp_path / "s"), "--variant", "hwa", "--workload", "ptb-lstm"])
    assert seen[-1].variants == ("hwa",) and seen[-1].periphery == "chip-8bit"  # the study's default periphery
    CliRunner().invoke(main, ["study", "--out", str(tmp_path / "t"), "--periphery", "standard"])
    assert seen[-1].variants == ("fp", "hwa") and seen[-1].periphery == "standard"
    result = CliRunner().invoke(main, ["study", "--out", str(tmp_path / "u"), "--variant", "int8"])
    assert result.exit_code == 2 and "--variant" in result.output


# --- device fit: never overwrite an input, no silent nonsense ---------------------------------

@pytest.fixture(scope="module")
def measurements(tmp_path_factory):
    path = tmp_path_factory.mktemp("meas") / "m.csv"
    table = simulate_measurements(get_device("pcm"), [0, 5, 10, 15, 19.9], 48, (1.0, 60.0, 3600.0, 86400.0),
                                  seed=1)
    write_measurements(path, table)
    return path


@pytest.mark.parametrize("extra, needles", [
    (["--out", "{m}"], ["--out", "is the input MEASUREMENTS"]),
    (["--out", "{d}/dev.yaml", "--plot", "{m}"], ["--plot", "is the input MEASUREMENTS"]),
    (["--out", "{d}/dev.yaml", "--plot", "{d}/dev.yaml"], ["--plot", "is also --out"]),
    (["--out", "{d}/notes.yaml"], ["notes.png: exists and is not a figure weightprog wrote", "--plot"]),
    (["--out", "{d}/dev.yaml", "--min-devices", "0"], ["min_devices", ">= 1"]),
    (["--out", "{d}/dev.yaml", "--max-bins", "0"], ["max_bins", ">= 1"]),
    (["--out", "{d}/dev.yaml", "--t0", "0"], ["t0", "> 0"]),
])
def test_device_fit_refuses(tmp_path, measurements, extra, needles):
    m = tmp_path / "m.csv"
    m.write_bytes(measurements.read_bytes())
    (tmp_path / "notes.png").write_bytes(b"\x89PNG my own figure")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["device", "fit", str(m), *[a.format(m=m, d=tmp_path) for a in extra]])
    one_line_error(result, *needles)
    assert snapshot(tmp_path) == before


def test_device_fit_top_target_rounding_and_rerun(tmp_path, measurements):
    """19.9 µS targets: the mean of 48 equal targets is 19.900000000000002 > 19.9, which used to be
    refused as outside the range taken from the same data. A rerun replaces its own figure."""
    out = tmp_path / "dev.yaml"
    for _ in range(2):
        result = CliRunner().invoke(main, ["device", "fit", str(measurements), "--out", str(out)])
        assert result.exit_code == 0, result.output
    dev = load_tabulated(out)
    assert dev.g_max == 19.9 and dev.tables["programming"]["g"][-1] == 19.9
    assert (tmp_path / "dev.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_top_bin_never_above_g_max():
    for top in (19.9, 24.3):
        n = next(k for k in range(2, 100) if np.full(k, top).mean() > top)  # a count that rounds up
        table = simulate_measurements(get_device("pcm"), [0.0, top / 2, top], max(n, 30), (1.0, 60.0, 3600.0), seed=2)
        result = fit_device(table, min_devices=10)
        assert result.bins.g.max() <= top and result.device.g_max == top


def test_measurements_in_wrong_unit_refused():
    text = "device_id,g_target,t,g\na,2.5e7,1,2.4e7\n"
    with pytest.raises(WeightprogError, match=r"m\.csv: row 2, column 'g_target': 2\.5e\+07 µS is above 10000 µS"):
        parse_measurements(text, "m.csv")


# --- device files: unknown keys, physically absurd curves -------------------------------------

def _device_yaml(tmp_path, **changes):
    data = get_device("ecram").to_dict()
    for key, value in changes.items():
        section, _, column = key.partition("__")
        if column:
            data[section][column] = value
        else:
            data[section] = value
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("change, match", [
    ({"stuk": {"p_zero": 0.1}}, r"unknown key 'stuk' \(did you mean 'stuck'\?\); allowed: kind, name"),
    ({"drift__nu_man": [0.1]}, r"drift: unknown key 'nu_man' \(did you mean 'nu_mean'\?\)"),
    ({"stuck": {"p_zero": 0.1, "p_max": 0.1}}, r"stuck: unknown key 'p_max' \(did you mean 'p_gmax'\?\)"),
    ({"programming__std": [300.0, 600.0, 1000.0]}, r"programming\.std\[0\] = 300 is above"),
    ({"read_noise__q": [2.0, 2.0, 2.0]}, r"read_noise\.q\[0\] = 2 is above 1"),
    ({"drift__nu_mean": [5.0, 5.0, 5.0]}, r"drift\.nu_mean\[0\] = 5 is above 1"),
    ({"stuck": {"p_zero": 0.5, "p_gmax": 0.5}}, r"every device is stuck"),
])
def test_device_file_refused(tmp_path, change, match):
    dev = get_device("ecram").to_dict()
    n = len(dev["programming"]["g"])
    for key in ("programming__std", "read_noise__q", "drift__nu_mean"):  # one value per table row
        if key in change:
            change = {key: [change[key][0]] * n}
    path = _device_yaml(tmp_path, **change)
    with pytest.raises(WeightprogError, match=match) as info:
        load_tabulated(path)
    assert str(path) in str(info.value)
    result = CliRunner().invoke(main, ["device", "show", str(path)])
    one_line_error(result, str(path))


# --- weights: one reader for the library and the CLI ------------------------------------------

def test_plain_and_column_arrays_are_one_tensor_normalised_as_a_whole(files):
    for name in ("plain.npy", "column.npy"):
        w = torch.from_numpy(np.load(files / name)).reshape(-1)
        streamed = sample_file(files / name, size=512, rows=512)
        assert streamed.total_weights == 300
        expected = torch.sort(w / w.abs().max()).values
        assert torch.allclose(torch.sort(streamed.values).values, expected)
        assert 0.1 < float(streamed.values.abs().mean()) < 0.6  # not all ±1 (per-row normalisation of (N, 1))


def test_nested_checkpoint_read_alike_by_library_and_cli(files):
    state = load_state(files / "nested.pt")
    streamed = sample_file(files / "nested.pt", size=512, rows=512)
    assert list(state) == ["fc.weight"] and streamed.tensors == ["fc.weight"]


def test_column_array_optimises(files):
    result = CliRunner().invoke(main, ["optimize", "--weights", str(files / "column.npy"), *TINY_SEARCH,
                                       "--out", str(files / "run")])
    assert result.exit_code == 0, result.output
    assert (files / "run" / "strategy.json").is_file()


def test_strategy_negative_index():
    s = Strategy.stack([baseline(n, Cell((1.0, 2.0))) for n in ("lsp-first", "msp-first")])
    assert s[-1].name == s[1].name == "msp-first (f=1,2)"
    with pytest.raises(IndexError):
        s[2]


def test_nan_evaluate_fn_refused():
    from weightprog.nn import evaluate_over_time

    model = torch.nn.Linear(8, 4)
    with pytest.raises(WeightprogError, match=r"evaluate_fn: returned nan \(digital run\)"):
        evaluate_over_time(model, lambda m: float("nan"), ["lsp-first"], "pcm", (1.0,), 1, 0, progress=False)


# --- settings: one check for the CLI, the sweep file and Python -------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, r"seed: must be in 0…4294967295, got -1"),
    ({"popsize": 0}, r"popsize: must be >= 1"),
    ({"rescore_blocks": 0}, r"rescore_blocks: must be >= 1"),
    ({"f_max": 0}, r"f_max: must be in 1…64"),
    ({"compute": "tpu"}, r"compute: use cpu, cuda or cuda:N"),
    ({"budget_s": -5}, r"budget_s: must be > 0"),
    ({"pairs": 100}, r"pairs: must be in 1…4"),
    ({"times_s": (1.0, 1e6 * 365 * 86400)}, r"times_s: 1000000y is beyond 100y"),
    ({"significance": Cell((1.0, 2.0, 4.0))}, r"significance: \[1.0, 2.0, 4.0\] has 3 factors but pairs is 2"),
])
def test_optimize_settings_validated_when_made(kwargs, match):
    with pytest.raises(WeightprogError, match=match):
        OptimizeSettings(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_settings_made_anywhere_refused_where_run():
    """A sweep's driver may have no GPU while its Ray workers do: the settings accept 'cuda', the
    search refuses it, before any work, where there is none."""
    from weightprog.sample import default_sample, load_distribution
    from weightprog.search.run import optimize

    settings = OptimizeSettings(compute="cuda")
    with pytest.raises(WeightprogError, match=r"compute: cuda was asked for but no GPU is available"):
        optimize(default_sample(size=512), load_distribution(), "pcm", settings)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        OptimizeSettings().popsize = 0


def test_hwa_config_validated():
    from weightprog.workloads.training import HWAConfig

    with pytest.raises(WeightprogError, match=r"periphery: unknown preset 'nope'; use one of ideal, standard"):
        HWAConfig(periphery="nope")
    with pytest.raises(WeightprogError, match=r"range_momentum: must be >= 0 and < 1"):
        HWAConfig(range_momentum=1.0)


def test_study_settings_validated():
    from weightprog.study import StudySettings

    with pytest.raises(WeightprogError, match=r"workloads: use one of ptb-lstm"):
        StudySettings(workloads=("nope",))
    with pytest.raises(WeightprogError, match=r"sample_size: must be a multiple of 512"):
        StudySettings(sample_size=1000)
    with pytest.raises(WeightprogError, match=r"seed: must be in 0…"):
        StudySettings(seed=-1)


# --- outputs: umask, locks ---------------------------------------------------------------------

@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode


def test_second_run_into_a_locked_folder_stops(tmp_path):
    """Another process holds the folder (as a running optimize does): the second run stops at once
    with one line naming it, and writes nothing."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from weightprog.fileio import lock_folder
        lock_folder({str(out)!r}, "weightprog optimize")
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(out)
        result = CliRunner().invoke(main, ["optimize", *TINY_SEARCH, "--out", str(out)])
        one_line_error(result, f"weightprog optimize (pid {holder.pid}", "is writing this folder")
        assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()
    lock_folder(out)  # the holder's death released it (kill -9 included): no stale lock
    unlock_folder(out)


def test_interrupt_messages_promise_only_what_happens(monkeypatch):
    import weightprog.devices as devices  # the command imports get_device when it runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(devices, "get_device", interrupted)
    result = CliRunner().invoke(main, ["device", "show", "pcm"])
    assert result.exit_code == 130 and "show keeps no partial results" in result.output
    assert "resume" not in result.output


def test_force_starts_afresh_where_settings_differ(tmp_path):
    out = tmp_path / "run"
    first = CliRunner().invoke(main, ["optimize", *TINY_SEARCH, "--out", str(out)])
    assert first.exit_code == 0, first.output
    other = [*TINY_SEARCH[:-1], "1s,1y"]
    refused = CliRunner().invoke(main, ["optimize", *other, "--out", str(out)])
    last = refused.output.strip().splitlines()[-1]  # after the line saying what it optimises
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "its run had --times 1s,1d, this one --times 1s,1y" in last and "--force" in last
    forced = CliRunner().invoke(main, ["optimize", *other, "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert '"times_s": [\n  1.0,\n  31536000.0\n ]' in (out / "report.json").read_text()
