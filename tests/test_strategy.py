"""Strategies: interpolation, mirroring, baselines in range, JSON round trips."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from weightprog.baselines import BASELINES, baseline
from weightprog.cell import Cell
from weightprog.errors import WeightprogError
from weightprog.strategy import Strategy


def test_grid_points_exact_and_linear_between():
    grid = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    table = torch.tensor([[1.0, 1.0, 0.0, 0.0], [5.0, 2.0, 3.0, 0.0], [20.0, 0.0, 25.0, 1.0]])
    s = Strategy(grid, table, [1.0, 2.0], 60.0)
    torch.testing.assert_close(s.targets(grid)[0], table.double())
    mid = s.targets(torch.tensor([0.15, 0.65], dtype=torch.float64))[0]
    torch.testing.assert_close(mid[0], (table[0] + table[1]).double() / 2)
    torch.testing.assert_close(mid[1], (table[1] + table[2]).double() / 2)
    # negative weights swap g+ and g- of each pair
    neg = s.targets(torch.tensor([-0.3], dtype=torch.float64))[0, 0]
    torch.testing.assert_close(neg, table[1][[1, 0, 3, 2]].double())


@pytest.mark.parametrize("pairs", [1, 2, 3])
@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("f", [1.0, 2.0, 3.0])
def test_baselines_in_range_and_exact(name, pairs, f):
    s = baseline(name, Cell.with_pairs(pairs, f), 0.0, 25.0)
    u = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    g = s.targets(u)
    assert g.min() >= 0 and g.max() <= 25 + 1e-12
    w = s.hardware_weight(g)[0]
    torch.testing.assert_close(w, s.beta[0] * u)  # every weight represented exactly
    assert float(s.representation_error()[0]) < 1e-12


def test_lsp_first_fills_lsp_first():
    s = baseline("lsp-first", Cell((1.0, 2.0)), 0.0, 25.0)
    assert float(s.beta[0]) == 75.0
    g = s.targets(torch.tensor([0.2, 0.6], dtype=torch.float64))[0]
    torch.testing.assert_close(g[0], torch.tensor([15.0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(g[1], torch.tensor([25.0, 0, 10, 0], dtype=torch.float64))


def test_msp_first_fills_msp_first():
    s = baseline("msp-first", Cell((1.0, 2.0)), 0.0, 25.0)
    g = s.targets(torch.tensor([0.2], dtype=torch.float64))[0]
    torch.testing.assert_close(g[0], torch.tensor([0.0, 0, 7.5, 0], dtype=torch.float64))


def test_json_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    grid = torch.tensor([0.0, 0.1234567890123, 0.5, 1.0], dtype=torch.float64)
    s = Strategy(grid, torch.rand(4, 6, dtype=torch.float64) * 25, [1.0, 2.5, 7.0], 123.456789)
    path = tmp_path / "s.json"
    s.save(path)
    back = Strategy.load(path)
    assert torch.equal(back.grid, s.grid) and torch.equal(back.conductances, s.conductances)
    assert torch.equal(back.significance, s.significance) and torch.equal(back.beta, s.beta)


def test_stack_regrids_exactly():
    a = baseline("lsp-first", Cell((1.0, 2.0)))
    b = baseline("msp-first", Cell((1.0, 3.0)))
    both = Strategy.stack([a, b])
    u = torch.linspace(-1, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(both.targets(u)[0], a.targets(u)[0])
    torch.testing.assert_close(both.targets(u)[1], b.targets(u)[0])


# aihwkit 1.2.0, aihwkit.inference.converter.conductance.CustomPairConductanceConverter.__init__:
# (f_lst: List[float], g_lst: List[List[float]], g_max=None, g_min=None, invertibility_test=True).
# Hard-coded: aihwkit is no test dependency; scripts/crosscheck_aihwkit.py checks the real one.
AIHWKIT_REQUIRED = {"f_lst", "g_lst"}
AIHWKIT_OPTIONAL = {"g_max", "g_min", "invertibility_test"}


def aihwkit_readback(args: dict, points: int = 5) -> torch.Tensor:
    """What the converter's construction check computes: the exported table read back at evenly
    spaced weights, W_hw / max |W_hw| (its grid spans −1…+1 of max|w|)."""
    g = torch.tensor(args["g_lst"], dtype=torch.float64)  # (2P, N)
    f = torch.tensor(args["f_lst"], dtype=torch.float64)
    w_hw = (f[:, None] * (g[0::2] - g[1::2])).sum(0)
    grid = torch.linspace(-1, 1, w_hw.numel(), dtype=torch.float64)
    at = torch.linspace(-1, 1, points, dtype=torch.float64)
    return torch.from_numpy(np.interp(at.numpy(), grid.numpy(), w_hw.numpy())) / w_hw.abs().max()


@pytest.mark.parametrize("name,sig", [("lsp-first", (1.0, 2.0)), ("msp-first", (1.0, 3.0)),
                                      ("single-pair", (1.0,)), ("lsp-first", (1.0, 2.0, 4.0))])
def test_aihwkit_export_is_exactly_the_converter_arguments(tmp_path, name, sig):
    s = baseline(name, Cell(sig))
    export = s.save_aihwkit(tmp_path / "a.json", points=11)
    data = json.loads((tmp_path / "a.json").read_text())
    assert set(data) <= AIHWKIT_REQUIRED | AIHWKIT_OPTIONAL and set(data) >= AIHWKIT_REQUIRED
    assert "invertibility_test" not in data and export.exact
    assert data["f_lst"] == list(sig) and len(data["g_lst"]) == 2 * len(sig)
    assert all(isinstance(x, list) and len(x) == 11 for x in data["g_lst"])
    assert data["g_min"] == 0.0 and data["g_max"] == 25.0
    # weight -> conductances -> weight is the identity (aihwkit checks it on construction)
    torch.testing.assert_close(aihwkit_readback(data), torch.linspace(-1, 1, 5, dtype=torch.float64),
                               atol=1e-9, rtol=0)
    assert export.max_w_hw == pytest.approx(export.beta) and export.points == 11


def test_aihwkit_export_device_order_and_mirroring():
    data = baseline("lsp-first", Cell((1.0, 2.0))).to_aihwkit(points=11)
    g_lsp_plus, g_lsp_minus, g_msp_plus, g_msp_minus = data["g_lst"]
    assert g_lsp_plus[-1] == 25.0 and g_msp_plus[-1] == 25.0 and g_lsp_minus[-1] == 0.0
    assert g_lsp_minus[0] == 25.0 and g_msp_minus[0] == 25.0 and g_lsp_plus[0] == 0.0  # w = −1
    assert g_lsp_plus[5] == 0.0 and g_msp_plus[5] == 0.0  # w = 0


def test_aihwkit_export_of_an_inexact_strategy_turns_the_check_off():
    grid = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    table = torch.tensor([[0.0, 0.0], [10.0, 0.0], [25.0, 0.0]], dtype=torch.float64)  # W(0.5) = 10, not 12.5
    data = Strategy(grid, table, [1.0], 25.0).to_aihwkit(points=5)
    assert data["invertibility_test"] is False
    assert set(data) <= AIHWKIT_REQUIRED | AIHWKIT_OPTIONAL


def test_aihwkit_export_metadata_goes_to_strategy_json(tmp_path):
    s = baseline("lsp-first", Cell((1.0, 2.0)))
    export = s.save_aihwkit(tmp_path / "strategy.aihwkit.json")
    s.save(tmp_path / "strategy.json", aihwkit=export.to_dict())
    meta = json.loads((tmp_path / "strategy.json").read_text())["meta"]["aihwkit"]
    assert meta["file"] == "strategy.aihwkit.json" and meta["points"] == 101 and meta["exact"] is True
    assert meta["beta"] == pytest.approx(75.0)
    with pytest.raises(WeightprogError, match="at least 2 points"):
        s.to_aihwkit(points=1)


def test_out_of_range_strategy_refused(tmp_path):
    data = baseline("lsp-first", Cell((1.0, 2.0))).to_dict()
    data["conductances"][1][0] = 30.0
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(WeightprogError, match="outside the device range"):
        Strategy.load(path)


@pytest.mark.parametrize("key,value,match", [
    ("grid", [0.0, 0.8, 0.5, 1.0], "grid must increase"),
    ("beta", -1.0, "beta"),
    ("significance", [1.0, 0.0], "significance"),
    ("conductances", "x", "must be numbers"),
])
def test_bad_strategy_fields(key, value, match):
    data = baseline("lsp-first", Cell((1.0, 2.0))).to_dict()
    data[key] = value
    with pytest.raises(WeightprogError, match=match):
        Strategy.from_dict(data)


def test_crosscheck_script_says_why_without_aihwkit():
    """scripts/crosscheck_aihwkit.py needs aihwkit (an optional extra): without it, one line and exit 2."""
    if importlib.util.find_spec("aihwkit") is not None:
        pytest.skip("aihwkit is installed here: the script would run the cross-check")
    script = Path(__file__).resolve().parents[1] / "scripts" / "crosscheck_aihwkit.py"
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "aihwkit is not importable" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("g_max", [15.2375, 27.6, 41.025])  # 25 µS × 0.6095, 1.104, 1.641
def test_baselines_on_any_range_end_exactly_at_one(g_max):
    """Rounding must not leave the last grid point 1 ulp below 1 (a scaled device's range)."""
    from weightprog.baselines import BASELINES, baseline
    for f in range(1, 6):
        for name in BASELINES:
            s = baseline(name, Cell((1.0, float(f))), 0.0, g_max)
            assert float(s.grid[-1]) == 1.0 and float(s.representation_error().max()) < 1e-9
