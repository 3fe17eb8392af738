"""The optimum carried into aihwkit (weightprog.aihwkit_export): weight map ψ and ψ-indexed table.

The first tests emulate aihwkit 1.2.0's `CustomPairConductanceConverter` (the facts it uses: the
table is a uniform grid of weights from −max|w| to +max|w| of the tile, interpolated linearly per
device, read back as Σf(g⁺−g⁻) · max|w| / max|W_hw|); the last ones run aihwkit itself and skip,
with the reason, where it is not installed (.ci/run builds it: scripts/build_aihwkit.sh).
"""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from weightprog.aihwkit_export import (
    CONVERTER_FILE,
    G_TOL_US,
    MAP_FILE,
    converter_args,
    map_weight,
    noise_scales,
    read_out,
    save_optimum,
    split_sizes,
    table_error,
)
from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.errors import WeightprogError
from weightprog.strategy import Strategy

pytestmark = pytest.mark.usefixtures("one_thread")


def clipping(beta: float = 79.2) -> Strategy:
    """lsp-first F=2 read at β > W_hw(1) = 75 µS: reads its largest weights as smaller."""
    s = baseline("lsp-first", Cell((1.0, 2.0)))
    return Strategy(s.grid, s.conductances, s.significance, beta, s.g_min, s.g_max, ["clipping"])


def emulate_aihwkit(args: dict, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """aihwkit's conversion of one tile: (conductances (2P, n), read-back weights (n,))."""
    g_lst = np.array(args["g_lst"])
    f = np.array(args["f_lst"])
    w_hw_table = (f[:, None] * (g_lst[0::2] - g_lst[1::2])).sum(0)
    m = float(weights.abs().max())
    grid = np.linspace(-m, m, g_lst.shape[1])
    g = np.stack([np.interp(weights.numpy(), grid, row) for row in g_lst])
    back = (f[:, None] * (g[0::2] - g[1::2])).sum(0) * m / np.abs(w_hw_table).max()
    return torch.from_numpy(g), torch.from_numpy(back)


def test_an_exact_strategy_is_its_ordinary_export():
    s = baseline("lsp-first", Cell((1.0, 2.0)))
    psi = read_out(s)
    assert psi.identity
    ours, plain = converter_args(s, points=11), s.to_aihwkit(points=11)
    assert ours.keys() == plain.keys() and ours["f_lst"] == plain["f_lst"]
    np.testing.assert_allclose(ours["g_lst"], plain["g_lst"], atol=1e-12)
    w = torch.randn(7, 5, dtype=torch.float64)
    torch.testing.assert_close(map_weight(w, psi, 512), w)


def test_aihwkit_programs_what_weightprog_programs_and_reads_psi():
    s = clipping()
    psi = read_out(s)
    assert psi.psi[-1] == pytest.approx(75.0 / 79.2) and not psi.identity
    w = torch.linspace(-0.8, 0.8, 41, dtype=torch.float64)  # one tile, max|w| = 0.8
    mapped = map_weight(w[None], psi, 512)[0]
    args = converter_args(s, points=1001)
    g, back = emulate_aihwkit(args, mapped)
    u = w / 0.8
    torch.testing.assert_close(g.T, s.targets(u)[0], atol=0.05, rtol=0)  # µS, off only near knots
    expected = s.hardware_weight(s.targets(u))[0] / s.beta[0] * 0.8  # weightprog's read-out, scaled
    torch.testing.assert_close(back, expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(back, mapped, atol=1e-9, rtol=0)  # so aihwkit's invertibility holds


def test_table_points_grow_until_the_conductances_match():
    """lsp-first's kink (u = 1/3 at F=2) falls between 101 uniform samples: 1001 bring every
    conductance within G_TOL_US of the strategy's; an exact 101-point fit stays at 101."""
    s = clipping()
    args = converter_args(s)
    assert len(args["g_lst"][0]) == 1001
    assert table_error(s, args) <= G_TOL_US < table_error(s, converter_args(s, 0, 101))
    assert len(converter_args(baseline("msp-first", Cell((1.0, 3.0))))["g_lst"][0]) in (101, 1001)


def test_plain_conversion_loses_the_clipping():
    """Without the weight map, aihwkit stretches the table to max|w|: the largest weight reads back
    as itself, not as ψ(1) — why the map is needed."""
    s = clipping()
    w = torch.tensor([-1.0, 0.0, 0.5, 1.0], dtype=torch.float64)
    _, back = emulate_aihwkit(converter_args(s), w)
    assert float(back[-1]) == pytest.approx(1.0)
    assert read_out(s).psi[-1] < 0.95


def test_weights_are_mapped_per_aihwkit_tile():
    assert split_sizes(1030, 512) == [344, 343, 343] and split_sizes(10, 512) == [10]
    assert split_sizes(7, 0) == [7]
    s = clipping()
    psi = read_out(s)
    w = torch.ones(3, 10, dtype=torch.float64)
    w[:, 5:] *= 0.5  # second tile (tile 5 inputs) has max 0.5: its weights map to ψ(1)·0.5
    out = map_weight(w, psi, 5)
    torch.testing.assert_close(out[:, :5], torch.full((3, 5), psi.psi[-1], dtype=torch.float64))
    torch.testing.assert_close(out[:, 5:], torch.full((3, 5), psi.psi[-1] * 0.5, dtype=torch.float64))
    conv = torch.randn(4, 2, 3, 3, dtype=torch.float64)  # aihwkit: (out, in·kernel) tiles
    torch.testing.assert_close(map_weight(conv, psi, 512).reshape(4, -1),
                               map_weight(conv.reshape(4, -1), psi, 512))


def test_save_optimum_writes_loadable_files(tmp_path):
    meta = save_optimum(clipping(), tmp_path, points=21)
    args = json.loads((tmp_path / CONVERTER_FILE).read_text())
    assert set(args) == {"f_lst", "g_lst", "g_min", "g_max"} and len(args["g_lst"][0]) == 21
    data = json.loads((tmp_path / MAP_FILE).read_text())
    assert data["u"][0] == 0.0 and data["u"][-1] == 1.0 and data["psi"][-1] == pytest.approx(75 / 79.2)
    assert meta["converter"] == CONVERTER_FILE and meta["weight_map"] == MAP_FILE


def test_non_monotonic_read_out_is_refused():
    grid = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    table = torch.tensor([[0.0, 0.0], [20.0, 0.0], [15.0, 0.0]], dtype=torch.float64)
    with pytest.raises(WeightprogError, match="increasing weight"):
        read_out(Strategy(grid, table, [1.0], 25.0))


def test_noise_scales_of_weightprog_devices():
    assert noise_scales("pcm") == {"prog_noise_scale": 1.0, "read_noise_scale": 1.0, "g_max": 25.0}
    assert noise_scales("pcm:programming=4,read=4")["prog_noise_scale"] == 4.0
    with pytest.raises(WeightprogError, match="no aihwkit counterpart"):
        noise_scales("pcm-lowdrift")
    with pytest.raises(WeightprogError, match="only programming and read"):
        noise_scales("pcm:drift_mean=2")


# --- with aihwkit itself ----------------------------------------------------------------------
needs_aihwkit = pytest.mark.skipif(
    importlib.util.find_spec("aihwkit") is None,
    reason=f"aihwkit is not installed ({os.environ.get('WEIGHTPROG_AIHWKIT_BUILD', 'optional')}; .ci/run "
           f"builds it with scripts/build_aihwkit.sh, docs/VALIDATION.md)")


@needs_aihwkit
def test_export_round_trip_in_aihwkit(tmp_path):
    """Both exports load with **json; aihwkit's round trip is exact; the optimum's converter on the
    mapped weights programs weightprog's conductances."""
    from aihwkit.inference.converter.conductance import CustomPairConductanceConverter

    s = clipping()
    s.save_aihwkit(tmp_path / "strategy.aihwkit.json")
    save_optimum(s, tmp_path, points=1001)
    for name in ("strategy.aihwkit.json", CONVERTER_FILE):
        with open(tmp_path / name) as f:
            CustomPairConductanceConverter(**json.load(f))
    with open(tmp_path / CONVERTER_FILE) as f:
        converter = CustomPairConductanceConverter(**json.load(f))
    w = torch.linspace(-0.8, 0.8, 41)
    mapped = map_weight(w[None], read_out(s), 512)[0]
    g, params = converter.convert_to_conductances(mapped)
    back = converter.convert_back_to_weights(g, params)
    torch.testing.assert_close(back, mapped, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.stack(g).T.double(), s.targets((w / 0.8).double())[0], atol=0.05, rtol=0)


@needs_aihwkit
def test_prepare_programs_the_optimum_in_aihwkit():
    """prepare() -> convert_to_analog: the analog layer holds the mapped weights, and programming
    with zero noise reads back weightprog's ψ-scaled weights."""
    from aihwkit.nn.conversion import convert_to_analog

    from weightprog.aihwkit_export import prepare

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    s = clipping()
    mapped, config = prepare(model, s, "pcm:programming=0,read=0", tile=512)
    config.noise_model.drift_scale = 0.0
    analog = convert_to_analog(mapped, config)
    analog.eval()
    analog.program_analog_weights()
    psi = read_out(s)
    for layer, tile in zip((model[0], model[2]), analog.analog_tiles()):
        w = layer.weight.detach()
        want = psi(w, float(w.abs().max()))
        torch.testing.assert_close(tile.programmed_weights, want, atol=1e-5, rtol=0)
