"""Carry any weightprog strategy into IBM aihwkit, clipping and compressing optima included (docs/MODEL.md §5.4).

aihwkit's `CustomPairConductanceConverter` maps ±max|w| of each tile to the ends of its table (a
uniform grid of weights) and reads back W_hw · max|w| / max|W_hw|: its read-out is exact, scaled at
the table's maximum. A weightprog strategy reads back ψ(u) = W_hw(u)/β, which an optimum that clips
(β > W_hw(1)) or compresses keeps below u on purpose. The same hardware behaviour in aihwkit:
replace each weight w of a tile by its intended read-out s·ψ(w/s) (s = max|w| of the tile) before
conversion, and index the table by ψ instead of u. aihwkit then programs g(u) — the conductances
weightprog programs — and reads back s·ψ(u), as weightprog does. For an exact strategy ψ(u) = u:
the weights stay, and the table is `Strategy.to_aihwkit()`'s (sampled as finely as its kinks need).

`prepare(model, strategy)` does both for a torch model (aihwkit is imported there only);
`save_optimum` writes the two files a user without weightprog needs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .devices import DeviceModel, PCMDevice, ScaledDevice, get_device
from .errors import WeightprogError
from .fileio import atomic_write_text
from .strategy import AIHWKIT_POINTS, Strategy

CONVERTER_FILE = "strategy.aihwkit-optimum.json"
"""The converter's arguments, its table indexed by ψ: `CustomPairConductanceConverter(**json.load(f))`."""
MAP_FILE = "strategy.aihwkit-optimum.map.json"
"""ψ on the strategy's grid: what each weight is replaced by before aihwkit converts it."""
MAP_FORMAT = "weightprog.aihwkit-weight-map"
G_TOL_US = 0.1
"""µS: how far the converter's interpolated conductances may be from the strategy's targets (well
below the programming noise, σ_p ≥ 0.26 µS on PCM)."""
POINTS_MAX = 10_001
"""Largest table (~0.85 MB of JSON for two pairs)."""
MIN_SLOPE = 1e-3
"""Least slope of ψ (read_out): enough to order the weights, far below any read-out error."""
MAX_DEVIATION = 1e-2
"""How far ψ may be moved to make it strictly increasing (ψ(0) included) before a strategy is refused."""


@dataclass(frozen=True)
class ReadOut:
    """ψ: the intended expected read-out W_hw(u)/β of normalised weight u ≥ 0 (odd, piecewise linear)."""

    u: np.ndarray
    """(D,) the strategy's grid, 0 … 1."""
    psi: np.ndarray
    """(D,) ψ at those points, strictly increasing from 0."""
    deviation: float = 0.0
    """max |ψ − W_hw(u)/β| over the grid: what making ψ strictly increasing moved it (`read_out`)."""

    @property
    def identity(self) -> bool:
        return bool(np.allclose(self.psi, self.u, rtol=0.0, atol=1e-4))

    def __call__(self, w: torch.Tensor, scale: float) -> torch.Tensor:
        """s·ψ(w/s) with s = `scale` (odd in w; |w| > s reads as ψ(1))."""
        if scale <= 0:
            return w.clone()
        a = np.interp(w.abs().detach().cpu().double().numpy() / scale, self.u, self.psi)
        return (torch.from_numpy(a).to(w) * scale * w.sign())

    def inverse(self, v: np.ndarray) -> np.ndarray:
        """u with ψ(u) = v, for 0 ≤ v ≤ ψ(1) (ψ is piecewise linear, so is its inverse)."""
        return np.interp(v, self.psi, self.u)

    def to_dict(self) -> dict:
        return {"format": MAP_FORMAT, "version": 1, "u": self.u.tolist(), "psi": self.psi.tolist(),
                "deviation": self.deviation,
                "apply": "per tile, s = max|w| of the tile: w <- s * sign(w) * interp(|w| / s, u, psi), "
                         "before CustomPairConductanceConverter converts the weights"}


def read_out(strategy: Strategy, index: int = 0) -> ReadOut:
    """ψ of strategy `index`, made strictly increasing where it is not quite: a dense pointwise
    optimum can dip or stay flat by a few 1e-4 between neighbouring points, and a table indexed by
    ψ needs a strictly increasing ψ. Points are lowered to at most their successor less
    `MIN_SLOPE` × the step (keeping ψ(1)), then raised from ψ(0) = 0 likewise; `ReadOut.deviation`
    is how far that moved ψ.

    Raises
    ------
    WeightprogError
        When ψ(0) ≠ 0 or that would move ψ by more than `MAX_DEVIATION`: not a monotonic map.
    """
    one = strategy[index]
    raw = (one.hardware_weight(one.conductances)[0] / one.beta[0]).numpy()
    u = one.grid.numpy()
    psi = raw.copy()
    for i in range(len(psi) - 2, -1, -1):  # lower from the top, so ψ(1), the table's read-out scale, stays
        psi[i] = min(psi[i], psi[i + 1] - MIN_SLOPE * (u[i + 1] - u[i]))
    psi[0] = 0.0
    for i in range(1, len(psi)):  # then raise from 0
        psi[i] = max(psi[i], psi[i - 1] + MIN_SLOPE * (u[i] - u[i - 1]))
    deviation = float(np.abs(psi - raw).max())
    if deviation > MAX_DEVIATION:
        raise WeightprogError(f"aihwkit export: strategy '{one.name}' does not read back an increasing weight "
                              f"from 0 (W_hw(u)/beta = {np.round(raw, 4).tolist()}), so no weight map carries "
                              f"it into aihwkit")
    return ReadOut(u, psi, deviation)


def converter_args(strategy: Strategy, index: int = 0, points: int | None = None) -> dict:
    """`CustomPairConductanceConverter` arguments with the table indexed by ψ: its uniform grid
    v ∈ [−1, 1] holds the targets of u = ψ⁻¹(|v|·ψ(1)), mirrored for v < 0. W_hw is then linear in v
    at every sample, so aihwkit's round trip is exact and its invertibility check stays on.

    `points=None` takes the fewest of 101, 1001, … (at most `POINTS_MAX`) at which every weight's
    conductances are within `G_TOL_US` of the strategy's: a dense optimum's kinks fall between
    the uniform samples, and the linear interpolation there programs other devices."""
    if points is not None:
        if points < 2:
            raise WeightprogError(f"aihwkit export: need at least 2 points, got {points}")
        return _table(strategy, index, points)
    points = AIHWKIT_POINTS
    args = _table(strategy, index, points)
    while table_error(strategy, args, index) > G_TOL_US and (points - 1) * 10 + 1 <= POINTS_MAX:
        points = (points - 1) * 10 + 1
        args = _table(strategy, index, points)
    return args


def _table(strategy: Strategy, index: int, points: int) -> dict:
    psi = read_out(strategy, index)
    v = np.linspace(-1.0, 1.0, points)
    u = np.sign(v) * psi.inverse(np.abs(v) * psi.psi[-1])
    one = strategy[index]
    g = one.targets(torch.from_numpy(u))[0]  # (points, 2P)
    return {"f_lst": one.significance[0].tolist(), "g_lst": g.T.tolist(),
            "g_min": float(one.g_min), "g_max": float(one.g_max)}


def table_error(strategy: Strategy, args: dict, index: int = 0) -> float:
    """max |Δg| (µS) over weights 0 … 1 (a fine grid and the strategy's own points) between the
    conductances aihwkit interpolates from `args` for the mapped weights and the strategy's targets."""
    psi = read_out(strategy, index)
    u = np.union1d(np.linspace(0.0, 1.0, 20_001), psi.u)
    table = np.asarray(args["g_lst"])
    v = np.interp(u, psi.u, psi.psi) / psi.psi[-1]
    g = np.stack([np.interp(v, np.linspace(-1.0, 1.0, table.shape[1]), row) for row in table], -1)
    return float(np.abs(g - strategy[index].targets(torch.from_numpy(u))[0].numpy()).max())


def save_optimum(strategy: Strategy, folder: str | Path, index: int = 0, points: int | None = None) -> dict:
    """Write CONVERTER_FILE and MAP_FILE for strategy `index` into `folder`; return what
    strategy.json's `meta.aihwkit.optimum` records (how to use them)."""
    folder = Path(folder)
    args = converter_args(strategy, index, points)
    atomic_write_text(folder / CONVERTER_FILE, json.dumps(args))
    atomic_write_text(folder / MAP_FILE, json.dumps(read_out(strategy, index).to_dict(), indent=1))
    return {"converter": CONVERTER_FILE, "weight_map": MAP_FILE, "points": len(args["g_lst"][0]),
            "max_dg_us": table_error(strategy, args, index),
            "note": f"the optimised strategy itself: replace each weight of a tile by s*psi(w/s) "
                    f"({MAP_FILE}, s = max|w| of the tile), then convert with "
                    f"CustomPairConductanceConverter(**json.load(open('{CONVERTER_FILE}'))); "
                    f"weightprog.aihwkit_export.prepare does both"}


def split_sizes(size: int, largest: int) -> list[int]:
    """aihwkit's tiling of one dimension: as few pieces as fit, equal but for the first ones one larger."""
    if largest <= 0:
        return [size]
    n = -(-size // largest)
    base, extra = divmod(size, n)
    return [base + (i < extra) for i in range(n)]


def map_weight(weight: torch.Tensor, psi: ReadOut, tile: int) -> torch.Tensor:
    """`weight` (out, in, …) with every aihwkit tile (out × in·kernel, cut as aihwkit cuts it)
    replaced by s·ψ(w/s), s its own max|w| — the scale aihwkit normalises that tile by."""
    matrix = weight.detach().reshape(weight.shape[0], -1).clone()
    rows = 0
    for n_out in split_sizes(matrix.shape[0], tile):
        cols = 0
        for n_in in split_sizes(matrix.shape[1], tile):
            block = matrix[rows:rows + n_out, cols:cols + n_in]
            block.copy_(psi(block, float(block.abs().max())))
            cols += n_in
        rows += n_out
    return matrix.reshape(weight.shape)


def noise_scales(device: DeviceModel | str) -> dict[str, float]:
    """aihwkit `PCMLikeNoiseModel` arguments for a weightprog device: `pcm`, optionally scaled in
    programming and read noise (aihwkit has no counterpart of the other devices)."""
    device = get_device(device)
    scales = {"prog_noise_scale": 1.0, "read_noise_scale": 1.0}
    if isinstance(device, ScaledDevice):
        s = device.scales
        if (s.drift_mean, s.drift_std, s.g_max) != (1.0, 1.0, 1.0):
            raise WeightprogError(f"aihwkit: device '{device.name}': only programming and read noise "
                                  f"scale into aihwkit's PCMLikeNoiseModel")
        scales = {"prog_noise_scale": s.programming, "read_noise_scale": s.read}
        device = device.base
    if type(device) is not PCMDevice or device.g_max != 25.0:
        raise WeightprogError(f"aihwkit: device '{device.name}' has no aihwkit counterpart; aihwkit's "
                              f"PCMLikeNoiseModel is weightprog's 'pcm' (g_max 25 uS)")
    return {**scales, "g_max": device.g_max}


def rpu_config(converter: Any, device: DeviceModel | str = "pcm", tile: int = 512) -> Any:
    """An aihwkit `InferenceRPUConfig` around a conductance converter: aihwkit's PCM noise model for
    `device` (`noise_scales`), one drift-compensation factor per tile, `tile` × `tile` tiles."""
    from aihwkit.inference.compensation.drift import GlobalDriftCompensation  # aihwkit is optional: here only
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
    from aihwkit.simulator.configs import InferenceRPUConfig

    config = InferenceRPUConfig()
    config.noise_model = PCMLikeNoiseModel(g_converter=converter, **noise_scales(device))
    config.drift_compensation = GlobalDriftCompensation()
    config.mapping.max_input_size = config.mapping.max_output_size = tile
    return config


def prepare(model: nn.Module, strategy: Strategy | str | Path, device: DeviceModel | str = "pcm",
            tile: int = 512, index: int = 0, points: int | None = None) -> tuple[nn.Module, Any]:
    """A copy of `model` and an aihwkit `InferenceRPUConfig` that program `strategy` in aihwkit.

    The copy's Linear and Conv weights are replaced tile by tile by their intended read-out
    (identical for an exact strategy); the config carries the ψ-indexed converter in a PCM noise
    model for `device`, one drift-compensation factor per tile (`GlobalDriftCompensation`) and
    `tile` × `tile` tiles. Then `aihwkit.nn.conversion.convert_to_analog(model, config)`; change
    the config's other fields (e.g. `forward`, the periphery) as for any aihwkit run.

    Parameters
    ----------
    model
        The torch model (left unchanged).
    strategy
        A `Strategy` or a strategy.json file.
    device
        `pcm` or `pcm:programming=K,read=K`.
    tile
        aihwkit's `mapping.max_input_size` and `max_output_size`.
    index, points
        Which strategy of a batch; table points of the converter.

    Returns
    -------
    (nn.Module, InferenceRPUConfig)
    """
    from aihwkit.inference.converter.conductance import CustomPairConductanceConverter  # optional: here only

    if not isinstance(strategy, Strategy):
        strategy = Strategy.load(strategy)
    psi = read_out(strategy, index)
    config = rpu_config(CustomPairConductanceConverter(**converter_args(strategy, index, points)), device, tile)
    mapped = copy.deepcopy(model)
    if not psi.identity:
        with torch.no_grad():
            for module in mapped.modules():
                if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                    module.weight.copy_(map_weight(module.weight, psi, tile))
    return mapped, config


def optimum_export(strategy: Strategy, folder: str | Path) -> dict:
    """`save_optimum`, or why the optimum cannot be carried (recorded instead of failing the run)."""
    try:
        return save_optimum(strategy, folder)
    except WeightprogError as exc:
        return {"note": f"the optimised strategy itself is not written for aihwkit: {exc}"}
