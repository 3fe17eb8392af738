"""Programming strategies: which conductance each device gets for each normalised weight (docs/MODEL.md §5).

A strategy is a table over grid points 0 = u_0 < … < u_{D−1} = 1 of the normalised weight, giving
the target conductance of each of the 2P devices (stored pair by pair: g⁺_1, g⁻_1, g⁺_2, …), with
linear interpolation in between. A negative weight swaps g⁺ and g⁻ of every pair. Plus the cell's
significance factors f_p and the scale β (µS of W_hw per unit of u).

`Strategy` is batched: one object holds B strategies that share a grid (a population), as tensors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .cell import Cell
from .errors import WeightprogError
from .fileio import atomic_write_text, read_text
from .interpolation import gather_rows, interpolation_weights, swap_index

FORMAT = "weightprog.strategy"
_RANGE_TOL = 1e-6  # µS: slack for float rounding when checking the device range
AIHWKIT_POINTS = 101
"""Normalised weights from −1 to +1 at which the aihwkit export samples a strategy."""
AIHWKIT_INVERTIBILITY_TOL = 1e-4
"""aihwkit's construction check compares weights to 1e-4 (normalised): exact strategies pass."""


@dataclass
class Strategy:
    """B programming strategies on one grid: target conductances per normalised weight and device.

    Parameters
    ----------
    grid
        (D,) normalised weights, 0 first and 1 last, strictly increasing.
    conductances
        (B, D, 2P) or, for one strategy, (D, 2P) target conductances, µS, devices stored pair by
        pair (g⁺_1, g⁻_1, g⁺_2, …).
    significance
        (B, P) or (P,) significance factor per pair.
    beta
        (B,) or scalar: µS of W_hw per unit normalised weight.
    g_min, g_max
        Device range, µS; every target must lie in it.
    names
        One name per strategy (default `strategy`, or `strategy0`, … for a batch).

    Raises
    ------
    WeightprogError
        For a bad grid, shapes that do not fit, NaN or inf, factors or β ≤ 0, or targets outside
        the range.

    Notes
    -----
    The inputs may be lists or tensors of any float dtype; they are stored as float64 tensors.
    """

    grid: torch.Tensor
    """(D,) normalised weights, 0 first and 1 last, strictly increasing (float64)."""
    conductances: torch.Tensor
    """(B, D, 2P) target conductance per grid point and device, µS (float64)."""
    significance: torch.Tensor
    """(B, P) significance factor per pair."""
    beta: torch.Tensor
    """(B,) µS of W_hw per unit normalised weight."""
    g_min: float = 0.0
    g_max: float = 25.0
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.grid = torch.as_tensor(self.grid, dtype=torch.float64)
        self.conductances = torch.as_tensor(self.conductances, dtype=torch.float64)
        if self.conductances.dim() == 2:
            self.conductances = self.conductances.unsqueeze(0)
        batch = self.conductances.shape[0]
        significance = torch.as_tensor(self.significance, dtype=torch.float64)
        self.significance = (significance.expand(batch, -1) if significance.dim() == 1 else significance).clone()
        self.beta = torch.as_tensor(self.beta, dtype=torch.float64).reshape(-1).expand(batch).clone()
        if not self.names:
            self.names = [f"strategy{i}" for i in range(batch)] if batch > 1 else ["strategy"]
        self.validate()

    # --- shape -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.conductances.shape[0]

    def __getitem__(self, index: int) -> Strategy:
        """One strategy of a population; negative indices count from the end, as for a list."""
        index = range(len(self))[index]  # IndexError out of range, like a list
        return Strategy(self.grid, self.conductances[index:index + 1], self.significance[index:index + 1],
                        self.beta[index:index + 1], self.g_min, self.g_max, [self.names[index]])

    @property
    def pairs(self) -> int:
        """Number of differential pairs P."""
        return self.conductances.shape[-1] // 2

    @property
    def name(self) -> str:
        """The first strategy's name (the name of a single strategy)."""
        return self.names[0]

    def cell(self, index: int = 0) -> Cell:
        """The significance factors of strategy `index` as a `Cell`.

        Parameters
        ----------
        index
            Which strategy of the batch.

        Returns
        -------
        Cell
        """
        return Cell(tuple(self.significance[index].tolist()))

    # --- checks ----------------------------------------------------------------------------
    def validate(self, where: str = "strategy") -> None:
        """Check grid, shapes, finiteness, factors, β and the device range (run on construction).

        Parameters
        ----------
        where
            What to name in the error (a file path, `strategy`).

        Raises
        ------
        WeightprogError
            Naming `where` and what is wrong.
        """
        grid, g = self.grid, self.conductances
        if grid.dim() != 1 or grid.numel() < 2:
            raise WeightprogError(f"{where}: grid needs at least 2 points (0 and 1)")
        if not torch.isfinite(grid).all() or grid[0] != 0 or grid[-1] != 1 or (grid.diff() <= 0).any():
            raise WeightprogError(f"{where}: grid must increase strictly from 0 to 1, got {grid.tolist()}")
        if g.dim() != 3 or g.shape[1] != grid.numel() or g.shape[2] % 2 or g.shape[2] == 0:
            raise WeightprogError(f"{where}: conductances must be (grid points × 2P devices), got "
                                  f"{tuple(g.shape[1:])} for {grid.numel()} grid points")
        if self.significance.shape != (g.shape[0], g.shape[2] // 2):
            raise WeightprogError(f"{where}: significance needs one factor per pair ({g.shape[2] // 2})")
        if not torch.isfinite(g).all():
            raise WeightprogError(f"{where}: conductances contain NaN or inf")
        if not (torch.isfinite(self.significance).all() and (self.significance > 0).all()):
            raise WeightprogError(f"{where}: significance factors must be finite and > 0")
        if not (torch.isfinite(self.beta).all() and (self.beta > 0).all()):
            raise WeightprogError(f"{where}: beta must be finite and > 0")
        self.check_range(self.g_min, self.g_max, where)

    def check_range(self, g_min: float, g_max: float, where: str = "strategy") -> None:
        """Every target conductance must lie in the device range [g_min, g_max] (1e-6 µS slack).

        Parameters
        ----------
        g_min, g_max
            The range of the device the strategy is used with, µS.
        where
            What to name in the error.

        Raises
        ------
        WeightprogError
            When a target lies outside the range.
        """
        lo, hi = float(self.conductances.min()), float(self.conductances.max())
        if lo < g_min - _RANGE_TOL or hi > g_max + _RANGE_TOL:
            raise WeightprogError(f"{where}: conductances span [{lo:.4g}, {hi:.4g}] µS, outside the "
                                  f"device range [{g_min:g}, {g_max:g}] µS")

    def representation_error(self) -> torch.Tensor:
        """(B,) max over grid points of |W_hw − β·u| / β: 0 when every grid weight is exact."""
        w_hw = self.hardware_weight(self.conductances)
        return ((w_hw - self.beta[:, None] * self.grid[None]).abs().amax(-1) / self.beta)

    # --- evaluation --------------------------------------------------------------------------
    def hardware_weight(self, g: torch.Tensor) -> torch.Tensor:
        """W_hw = Σ f_p (g⁺_p − g⁻_p) for conductances of this batch.

        Parameters
        ----------
        g
            (B, …, 2P) conductances, µS.

        Returns
        -------
        torch.Tensor
            (B, …) hardware weights, µS.
        """
        pos, neg = g[..., 0::2], g[..., 1::2]
        sig = self.significance.to(g).reshape((len(self),) + (1,) * (g.dim() - 2) + (self.pairs,))
        return ((pos - neg) * sig).sum(-1)

    def targets(self, u: torch.Tensor) -> torch.Tensor:
        """Target conductances for normalised weights (negative weights swap g⁺ and g⁻).

        Parameters
        ----------
        u
            Normalised weights in [−1, 1], any shape (|u| > 1 is clamped to 1).

        Returns
        -------
        torch.Tensor
            (B, *u.shape, 2P) targets, µS, in u's dtype and device.
        """
        index, frac, negative = interpolation_weights(self.grid.to(u.device), u)
        table = self.conductances.to(device=u.device, dtype=u.dtype)
        g = gather_rows(table, index, frac)
        swapped = g[..., swap_index(self.pairs)]
        return torch.where(negative[..., None], swapped, g)

    # --- combining ---------------------------------------------------------------------------
    def regrid(self, grid: torch.Tensor | Sequence[float]) -> Strategy:
        """The same strategies on another grid (exact when it contains the old grid points).

        Parameters
        ----------
        grid
            The new grid: 0 first, 1 last, strictly increasing.

        Returns
        -------
        Strategy
        """
        grid = torch.as_tensor(grid, dtype=torch.float64)
        g = self.targets(grid)  # (B, D', 2P); grid ≥ 0 so no mirroring
        return Strategy(grid, g, self.significance, self.beta, self.g_min, self.g_max, list(self.names))

    @staticmethod
    def stack(strategies: Sequence[Strategy]) -> Strategy:
        """One batch from several strategies (re-gridded onto the union of their grids).

        Parameters
        ----------
        strategies
            Strategies (single or batches) with the same number of pairs.

        Returns
        -------
        Strategy
            All of them in order; the device range spans all of theirs.
        """
        first = strategies[0]
        if any(s.pairs != first.pairs for s in strategies):
            raise WeightprogError("strategies: cannot stack strategies with different numbers of pairs")
        grid = torch.unique(torch.cat([s.grid for s in strategies]))
        parts = [s.regrid(grid) for s in strategies]
        return Strategy(grid, torch.cat([p.conductances for p in parts]),
                        torch.cat([p.significance for p in parts]), torch.cat([p.beta for p in parts]),
                        min(s.g_min for s in strategies), max(s.g_max for s in strategies),
                        [n for p in parts for n in p.names])

    # --- files -------------------------------------------------------------------------------
    def to_dict(self, index: int = 0, **meta: Any) -> dict:
        """The JSON form of strategy `index` (format `weightprog.strategy`, version 1).

        Parameters
        ----------
        index
            Which strategy of the batch.
        **meta
            JSON-able values stored under `meta`.

        Returns
        -------
        dict
        """
        return {"format": FORMAT, "version": 1, "name": self.names[index],
                "grid": self.grid.tolist(), "conductances": self.conductances[index].tolist(),
                "significance": self.significance[index].tolist(), "beta": float(self.beta[index]),
                "g_min": self.g_min, "g_max": self.g_max, "meta": meta}

    def save(self, path: str | Path, index: int = 0, **meta: Any) -> None:
        """Write `to_dict(index, **meta)` as JSON, atomically.

        Parameters
        ----------
        path
            The .json file.
        index
            Which strategy of the batch.
        **meta
            JSON-able values stored under `meta`.
        """
        atomic_write_text(path, json.dumps(self.to_dict(index, **meta), indent=1))

    @classmethod
    def from_dict(cls, data: Any, where: str = "strategy") -> Strategy:
        """A strategy from its JSON form (`to_dict`).

        Parameters
        ----------
        data
            The parsed JSON.
        where
            What to name in errors (the file).

        Returns
        -------
        Strategy
            One strategy, named as in the file.

        Raises
        ------
        WeightprogError
            For a wrong format, a missing key or values that are not numbers.
        """
        if not isinstance(data, dict):
            raise WeightprogError(f"{where}: expected a JSON object")
        if data.get("format") != FORMAT:
            raise WeightprogError(f"{where}: format must be {FORMAT!r}, got {data.get('format')!r}")
        for key in ("grid", "conductances", "significance", "beta", "g_min", "g_max"):
            if key not in data:
                raise WeightprogError(f"{where}: missing key '{key}'")
        try:
            tensors = {k: torch.tensor(data[k], dtype=torch.float64)
                       for k in ("grid", "conductances", "significance", "beta")}
            g_min, g_max = float(data["g_min"]), float(data["g_max"])
        except (TypeError, ValueError) as exc:
            raise WeightprogError(f"{where}: grid, conductances, significance, beta, g_min and g_max "
                                  f"must be numbers or lists of numbers ({exc})") from None
        if tensors["conductances"].dim() != 2:
            raise WeightprogError(f"{where}: conductances must be a list of rows, one per grid point")
        return cls(tensors["grid"], tensors["conductances"], tensors["significance"], tensors["beta"],
                   g_min, g_max, [str(data.get("name", "strategy"))])

    @classmethod
    def load(cls, path: str | Path) -> Strategy:
        """Read a strategy file written by `save`.

        Parameters
        ----------
        path
            The .json file.

        Returns
        -------
        Strategy

        Raises
        ------
        WeightprogError
            An unreadable file, invalid JSON or an invalid strategy, naming the file.
        """
        path = Path(path)
        try:
            data = json.loads(read_text(path, "strategy file"))
        except json.JSONDecodeError as exc:
            raise WeightprogError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        strategy = cls.from_dict(data, where=str(path))
        return strategy

    def to_aihwkit(self, index: int = 0, points: int = AIHWKIT_POINTS) -> dict:
        """Keyword arguments of IBM aihwkit's `CustomPairConductanceConverter` — those only, so
        `CustomPairConductanceConverter(**strategy.to_aihwkit())` works (docs/MODEL.md §5.4).

        `g_lst` has one list per device (g⁺_1, g⁻_1, g⁺_2, …), sampled at `points` normalised
        weights evenly spaced from −1 to +1: aihwkit maps the ends of that grid to ± max|w| of the
        weights it converts. aihwkit checks on construction that weight → conductances → weight
        is the identity; a strategy that does not represent every weight exactly (e.g. `--mode
        free`) would fail that check, so for it `invertibility_test` is set to False.

        Parameters
        ----------
        index
            Which strategy of the batch.
        points
            Normalised weights from −1 to +1 at which `g_lst` is sampled (≥ 2).

        Returns
        -------
        dict
            `f_lst`, `g_lst`, `g_min`, `g_max` (and `invertibility_test` when not exact).
        """
        if points < 2:
            raise WeightprogError(f"aihwkit export: need at least 2 points, got {points}")
        weights = torch.linspace(-1.0, 1.0, points, dtype=torch.float64)
        one = self[index]
        g = one.targets(weights)[0]  # (points, 2P)
        args = {"f_lst": one.significance[0].tolist(), "g_lst": g.T.tolist(),
                "g_min": float(self.g_min), "g_max": float(self.g_max)}
        if float(one.representation_error()[0]) > AIHWKIT_INVERTIBILITY_TOL:
            args["invertibility_test"] = False
        return args

    def save_aihwkit(self, path: str | Path, index: int = 0, points: int = AIHWKIT_POINTS) -> AihwkitExport:
        """Write `to_aihwkit()` as JSON (atomically); return what to record beside it.

        Parameters
        ----------
        path
            The .json file.
        index, points
            As for `to_aihwkit`.

        Returns
        -------
        AihwkitExport
        """
        args = self.to_aihwkit(index, points)
        atomic_write_text(path, json.dumps(args, indent=1))
        one = self[index]
        w_hw = one.hardware_weight(one.targets(torch.linspace(-1.0, 1.0, points, dtype=torch.float64)))
        return AihwkitExport(file=Path(path).name, points=points,
                             exact="invertibility_test" not in args, beta=float(one.beta[0]),
                             max_w_hw=float(w_hw.abs().max()))


@dataclass(frozen=True)
class AihwkitExport:
    """What `Strategy.save_aihwkit` wrote: recorded in strategy.json's meta (`aihwkit`)."""

    file: str
    points: int
    """Normalised weights of the uniform grid from −1 to +1 that `g_lst` is sampled at."""
    exact: bool
    """Every weight represented exactly (aihwkit's invertibility check is on)."""
    beta: float
    """µS of W_hw per unit of normalised weight, as weightprog reads back (W_hw / β)."""
    max_w_hw: float
    """max |W_hw| over the grid: aihwkit reads back W_hw / max_w_hw, the same when it equals β."""

    def to_dict(self) -> dict:
        return {"file": self.file, "points": self.points, "exact": self.exact, "beta": self.beta,
                "max_w_hw": self.max_w_hw,
                "load": "CustomPairConductanceConverter(**json.load(open(file)))",
                "weights": "g_lst sampled at normalised weights linspace(-1, 1, points); aihwkit maps "
                           "their ends to ± max|w| of each tile it converts (per-tile normalisation)"}
