"""`weightprog device list|fit|simulate|show`, invoked on the click group directly."""

from __future__ import annotations

from click.testing import CliRunner

from weightprog.cli import main
from weightprog.cli.device import device
from weightprog.devices import device_names, load_tabulated


def _run(*args):
    return CliRunner().invoke(device, [str(a) for a in args])


def test_simulate_fit_show(tmp_path):
    csv_path, dev_path = tmp_path / "m.csv", tmp_path / "mine.yaml"
    r = _run("simulate", "ecram", "--out", csv_path, "--targets", "0,5,10,15,20,25",
             "--devices", 40, "--times", "1s,1min,1h,1d,30d", "--seed", 2)
    assert r.exit_code == 0, r.output
    assert "240 devices x 5 reads of ecram" in r.output
    assert csv_path.read_text().splitlines()[0] == "device_id,g_target,t,g"
    r = _run("fit", csv_path, "--out", dev_path)
    assert r.exit_code == 0, r.output
    dev = load_tabulated(dev_path)
    assert dev.name == "mine" and dev.g_max == 25.0 and len(dev.tables["programming"]["g"]) == 6
    png = tmp_path / "mine.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = _run("show", dev_path, "--out", tmp_path / "curves.png")
    assert r.exit_code == 0, r.output
    assert "σ_p µS" in r.output and (tmp_path / "curves.png").stat().st_size > 10_000


def test_list_and_its_old_spelling():
    r = _run("list")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert [line.split()[0] for line in lines] == device_names()
    assert "pcm             pcm           g 0–25 µS" in lines and "rram-hfox       tabulated     g 1–40 µS" in lines
    old = CliRunner().invoke(main, ["devices"])  # hidden alias: same output, not in the help
    assert old.exit_code == 0 and old.output == r.output
    listed = CliRunner().invoke(main, ["--help"]).output
    commands = [line.split()[0] for line in listed.split("Commands:")[1].splitlines() if line.strip()]
    assert "device" in commands and "devices" not in commands


def test_show_builtin_and_preset_by_name():
    r = _run("show", "pcm")
    assert r.exit_code == 0 and "device pcm" in r.output
    r = _run("show", "rram-hfox")
    assert r.exit_code == 0 and "source: Wan et al." in r.output


def test_bad_csv_one_line_error_and_nothing_written(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,g_target,t,g\na,10,1,1.0\na,10,60,oops\n")
    out = tmp_path / "dev.yaml"
    r = _run("fit", bad, "--out", out)
    assert r.exit_code == 2
    assert r.output.strip() == f"error: {bad}: row 3, column 'g': 'oops' is not a number"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_unfittable_data_writes_nothing(tmp_path):
    csv_path = tmp_path / "m.csv"
    assert _run("simulate", "pcm", "--out", csv_path, "--devices", 5, "--times", "1s").exit_code == 0
    r = _run("fit", csv_path, "--out", tmp_path / "dev.yaml")
    assert r.exit_code == 2 and "only one read" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_bad_arguments(tmp_path):
    r = _run("simulate", "nope", "--out", tmp_path / "m.csv")
    assert r.exit_code == 2 and "unknown device 'nope'" in r.output
    r = _run("simulate", "pcm", "--out", tmp_path / "m.csv", "--targets", "1,x")
    assert r.exit_code == 2 and "--targets: cannot read 'x'" in r.output
    r = _run("simulate", "pcm", "--out", tmp_path / "m.csv", "--times", "1s,soon")
    assert r.exit_code == 2 and "times" in r.output
    assert not list(tmp_path.iterdir())
