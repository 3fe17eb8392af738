"""`weightprog evaluate` through click's test runner (the command object, plus a group around it)."""

import json

import pytest
from click.testing import CliRunner

from weightprog.cli.evaluate import evaluate
from weightprog.cli.model_spec import load_model_spec
from weightprog.cli.options import Group
from weightprog.errors import WeightprogError

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args):
    return CliRunner().invoke(evaluate, list(args))


def test_evaluate_writes_results(tmp_path):
    out = tmp_path / "run"
    result = invoke("--model", "nn_helpers:tiny_entry", "--strategy", "lsp-first", "--strategy", "single-pair",
                    "--significance", "1,2", "--times", "1s,1h,1y", "--repeats", "2", "--seed", "7",
                    "--periphery", "standard", "--no-progress", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "lsp-first (f=1,2)" in result.output
    data = json.loads((out / "results.json").read_text())
    assert data["seed"] == 7 and data["times"] == ["1s", "1h", "1y"] and data["version"]
    assert data["device"]["name"] == "pcm" and data["periphery"]["name"] == "standard"
    assert data["wall_time_s"] > 0 and data["digital_metric"] == 1.0 and len(data["rows"]) == 2 * 2 * 3
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0] == "strategy,realisation,time_s,time,metric,weight_nmse" and len(csv) == 13
    assert data["mapping"]["compensation_reference"] == "read"
    assert {row["layer"] for row in data["weight_nmse_per_layer"]} == set(data["mapping"]["layers"][i]["name"]
                                                                         for i in range(len(data["mapping"]["layers"])))
    assert all(0 < row["weight_nmse_mean"] < 1 for row in data["summary"])
    assert "weight NMSE" in result.output
    assert (out / "accuracy_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    invoke("--model", "nn_helpers:tiny_entry", "--strategy", "lsp-first", "--strategy", "single-pair",
           "--significance", "1,2", "--times", "1s,1h,1y", "--repeats", "2", "--seed", "7",
           "--periphery", "standard", "--no-progress", "--out", str(tmp_path / "again"))
    assert json.loads((tmp_path / "again" / "results.json").read_text())["rows"] == data["rows"]


def test_bad_input_is_one_line_through_the_group():
    group = Group(name="weightprog")  # the lead registers the command in cli.main the same way
    group.add_command(evaluate)
    runner = CliRunner()
    cases = [(["--model", "nn_helpers", "--strategy", "lsp-first"], "model: use module:function"),
             (["--model", "no_such_module_xyz:f", "--strategy", "lsp-first"], "cannot import"),
             (["--model", "nn_helpers:bad_entry", "--strategy", "lsp-first"], "must return (model, evaluate_fn)"),
             (["--model", "nn_helpers:tiny_entry", "--strategy", "nope"], "neither a baseline"),
             (["--model", "nn_helpers:tiny_entry", "--strategy", "lsp-first", "--times", "1x"], "times"),
             (["--model", "nn_helpers:tiny_entry", "--strategy", "lsp-first", "--compute", "tpu"], "compute")]
    for args, message in cases:
        result = runner.invoke(group, ["evaluate", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert "Traceback" not in result.output


def test_entry_point_from_a_file(tmp_path):
    path = tmp_path / "mymodel.py"
    path.write_text("import torch\n"
                    "def build():\n"
                    "    m = torch.nn.Linear(2, 2)\n"
                    "    return m, lambda model: 0.5\n")
    spec = load_model_spec(f"{path}:build")
    assert spec.evaluate(spec.model) == 0.5 and spec.validate is None and spec.higher_is_better
    try:
        load_model_spec(f"{tmp_path / 'missing.py'}:build")
    except WeightprogError as exc:
        assert "not found" in str(exc)
    else:
        raise AssertionError("missing file accepted")


def test_evaluate_matches_another_simulator_s_settings(tmp_path):
    """Noise ×4 on a built-in device and compensation against the programmed state, from the CLI."""
    out = tmp_path / "x4"
    result = invoke("--model", "nn_helpers:tiny_entry", "--strategy", "single-pair", "--times", "1s,1d",
                    "--repeats", "2", "--device", "pcm:programming=4,read=4", "--normalise", "tile",
                    "--compensation", "tile", "--compensation-reference", "programmed", "--no-progress",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["device"]["name"] == "pcm:programming=4,read=4" and data["device"]["scales"]["read"] == 4
    assert data["mapping"]["compensation_reference"] == "programmed"
    assert data["strategies"][0]["significance"] == [1.0]
