"""Programming a weight tensor into a crossbar and reading it back over time (docs/MODEL.md §4, §6).

A weight tensor is viewed as a matrix (outputs × inputs; conv kernels flattened to out × in·k),
cut evenly into as few tiles of at most `tile_rows` inputs × `tile_cols` outputs as fit. Each
output of a tile is a crossbar column. Weights are normalised per column, tile or tensor, mapped through a strategy to
device targets, programmed once, and read at any time with global drift compensation per column,
tile or layer: α = Σ|ŵ(t_ref)| / Σ|ŵ(t)| against a reference: by default a calibration read right
after programming (noisy, as a chip does it), or the noise-free programmed state (`reference=
"programmed"`, what simulators that compensate against the programmed conductances do;
docs/MODEL.md §6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .devices import DeviceModel, get_device
from .errors import WeightprogError
from .sample import check_finite
from .settings import Mapping
from .strategy import Strategy
from .validate import COMPENSATION_SCOPES

COMPENSATION_UNITS = COMPENSATION_SCOPES
"""The drift-compensation scopes a mapping takes: `validate.COMPENSATION_SCOPES` (the one table)."""


def split_tiles(in_features: int, out_features: int, mapping: Mapping) -> tuple[int, int, int, int]:
    """(input tiles, output tiles, rows per tile, columns per tile).

    As few tiles as the size limit allows, cut evenly: a layer smaller than a tile gets a tile
    of its own size and a 576-input layer two 288-row tiles, so padding never exceeds one row or
    column per tile (full 512 × 512 padding would multiply a small CNN's device state ~50×).
    """
    n_rt, n_ot = -(-in_features // mapping.tile_rows), -(-out_features // mapping.tile_cols)
    return n_rt, n_ot, -(-in_features // n_rt), -(-out_features // n_ot)


_UNIT_DIMS: dict[str, tuple[int, ...]] = {"column": (3,), "tile": (1, 3), "tensor": (0, 1, 2, 3),
                                          "layer": (0, 1, 2, 3)}
"""Dimensions of the tiled view (out-tiles, cols, row-tiles, rows) a normalisation or compensation unit
reduces over."""


def _reduce(x: torch.Tensor, unit: str, op: str) -> torch.Tensor:
    """max |x| (`op="max"`) or Σ|x| over each `unit` of the tiled view, keeping its dimensions."""
    dims = _UNIT_DIMS[unit]
    return x.abs().amax(dim=dims, keepdim=True) if op == "max" else x.abs().sum(dim=dims, keepdim=True)


def normalisation(matrix: torch.Tensor, mapping: Mapping = Mapping()) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised weights u = w / w_max of a matrix (outputs × inputs) as `ProgrammedTensor`
    deploys them (w_max per column, tile or tensor of the tiled view), and each weight's w_max,
    both flattened in the matrix's order (conv kernels flattened), padding left out.

    Parameters
    ----------
    matrix
        (outputs, inputs) weights; any shape with the outputs first (conv kernels are flattened).
    mapping
        Tiling and normalisation unit.

    Returns
    -------
    tuple of torch.Tensor
        (outputs · inputs,) values in [−1, 1] and (outputs · inputs,) w_max > 0, float32.
    """
    w = matrix.detach().to(torch.float32)
    w = w.reshape(w.shape[0] if w.dim() > 1 else 1, -1)  # conv kernels flattened, as ProgrammedTensor does
    out_features, in_features = w.shape
    n_rt, n_ot, tr, tc = split_tiles(in_features, out_features, mapping)
    padded = torch.zeros(n_ot * tc, n_rt * tr, dtype=torch.float32, device=w.device)
    padded[:out_features, :in_features] = w
    tiled = padded.reshape(n_ot, tc, n_rt, tr)
    w_max = _reduce(tiled, mapping.normalise, "max")
    scale = torch.where(w_max > 0, w_max, torch.ones_like(w_max)).expand_as(tiled)

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(n_ot * tc, n_rt * tr)[:out_features, :in_features].reshape(-1)
    return flat(tiled / scale), flat(scale)


def normalised_values(matrix: torch.Tensor, mapping: Mapping = Mapping()) -> torch.Tensor:
    """The normalised weights of `normalisation(matrix, mapping)` alone, (outputs · inputs,) in
    [−1, 1]: the density a search for this network's deployment should see."""
    return normalisation(matrix, mapping)[0]


class ProgrammedTensor:
    """One programming realisation of a weight tensor; read it at any time after programming.

    Parameters
    ----------
    weight
        The weights, any shape: viewed as a matrix outputs × inputs (dim 0 the outputs, conv
        kernels flattened into the inputs; a 1-D tensor is one output).
    strategy
        A single strategy (not a population) within the device's range.
    device
        A `DeviceModel` or a name/file for `get_device`.
    mapping
        Tiling, normalisation and drift compensation.
    generator
        Source of the programming draws and of the calibration read.
    name
        The tensor's name in error messages.

    Raises
    ------
    WeightprogError
        For a population, a strategy outside the device range, or NaN/inf weights.
    """

    def __init__(self, weight: torch.Tensor, strategy: Strategy, device: DeviceModel | str = "pcm",
                 mapping: Mapping = Mapping(), generator: torch.Generator | None = None,
                 name: str = "weight"):
        if len(strategy) != 1:
            raise WeightprogError("strategy: program with one strategy, not a population")
        self.device, self.mapping, self.name = get_device(device), mapping, name
        strategy.check_range(self.device.g_min, self.device.g_max, f"strategy {strategy.name}")
        check_finite(weight, name)
        self.shape, self.dtype = weight.shape, weight.dtype
        w = weight.detach().to(torch.float32).reshape(weight.shape[0] if weight.dim() > 1 else 1, -1)
        self.out_features, self.in_features = w.shape
        n_rt, n_ot, tr, tc = split_tiles(self.in_features, self.out_features, mapping)
        padded = torch.zeros(n_ot * tc, n_rt * tr, dtype=torch.float32, device=w.device)
        padded[: self.out_features, : self.in_features] = w
        self.mask = torch.zeros_like(padded)
        self.mask[: self.out_features, : self.in_features] = 1.0
        tiled = padded.reshape(n_ot, tc, n_rt, tr)
        self.mask = self.mask.reshape(n_ot, tc, n_rt, tr)
        w_max = _reduce(tiled, mapping.normalise, "max")
        self.w_max = torch.where(w_max > 0, w_max, torch.ones_like(w_max))
        u = tiled / self.w_max
        targets = strategy.targets(u)[0]  # (…, 2P)
        self.state = self.device.program(targets, generator=generator)
        sig = strategy.significance[0].to(torch.float32)
        self.factors = (torch.repeat_interleave(sig, 2) * torch.tensor([1.0, -1.0]).repeat(strategy.pairs)
                        / float(strategy.beta[0])).to(w.device)
        at_reference = (self._normalised(self.state.g_prog) if mapping.reference == "programmed"
                        else self._read_normalised(0.0, generator))
        unit = mapping.compensation
        self.reference: torch.Tensor | None = None if unit == "none" else _reduce(at_reference, unit, "sum")
        """Σ|ŵ| per compensation unit at the reference (None without compensation)."""

    def _normalised(self, g: torch.Tensor) -> torch.Tensor:
        """ŵ/w_max = W_hw/β from device conductances, padding masked out."""
        return (g @ self.factors).mul_(self.mask)

    def _read_normalised(self, t_s: float, generator) -> torch.Tensor:
        return self._normalised(self.device.read(self.state, float(t_s), generator=generator))

    def read(self, t_s: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Effective weights α·ŵ(t) in the original shape and units (fresh read noise).

        Parameters
        ----------
        t_s
            Seconds after programming.
        generator
            Source of the read noise.

        Returns
        -------
        torch.Tensor
            The read weights, the shape and dtype of the programmed tensor.
        """
        return self.finish(self._read_normalised(t_s, generator))

    def finish(self, w: torch.Tensor) -> torch.Tensor:
        """A normalised read ŵ/w_max (tiled, as `_normalised` gives it; consumed in place) to the
        effective weights of `read`: drift-compensated, scaled, in the original shape and dtype."""
        reference = self.reference
        if reference is not None:  # in place on the fresh read: each temporary costs a pass over the weights
            now = _reduce(w, self.mapping.compensation, "sum")
            w.mul_(torch.where(now > 0, reference / now, torch.ones_like(now)))
        n_ot, tc, n_rt, tr = w.shape
        w = w.mul_(self.w_max).reshape(n_ot * tc, n_rt * tr)[: self.out_features, : self.in_features]
        return w.reshape(self.shape).to(self.dtype)

    @property
    def state_bytes(self) -> int:
        """Bytes of device state held (programmed conductances, drift exponents, noise coefficients)."""
        return sum(t.numel() * t.element_size() for t in (self.state.g_prog, self.state.nu, self.state.q))


def program_weights(weight: torch.Tensor, strategy: Strategy, device: DeviceModel | str = "pcm",
                    times_s: Sequence[float] = (1.0,), mapping: Mapping = Mapping(),
                    seed: int = 0) -> list[torch.Tensor]:
    """Program once and read at each time: effective weights, one tensor per time.

    Parameters
    ----------
    weight
        The weight tensor (see `ProgrammedTensor`).
    strategy
        A single strategy.
    device
        A `DeviceModel` or a name/file for `get_device`.
    times_s
        Seconds after programming of the reads.
    mapping
        Tiling, normalisation and drift compensation.
    seed
        Seed of programming and read noise.

    Returns
    -------
    list of torch.Tensor
        The read weights at each time, each of `weight`'s shape.
    """
    gen = torch.Generator(device=weight.device).manual_seed(seed)
    programmed = ProgrammedTensor(weight, strategy, device, mapping, gen)
    return [programmed.read(t, gen) for t in times_s]
