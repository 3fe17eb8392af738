"""The accuracy limit of a device: a network programmed with the best mapping on the device, read
out with an oracle scale per crossbar column and time.

`limit` holds each weight's mean read-out at its value and takes, per weight value, the targets with
the least noise under that constraint (`Pointwise(unbiased=True)`): networks suffer from systematic
per-weight error far more than from zero-mean noise of the same size (docs/NN.md, "The limit").
`limit-mse` is the weight-error bound's own mapping (`expected.bound`: the least expected squared
error, which shrinks weights); on weight error nothing beats it. Neither is the better one on every
network, so `limit-chosen` takes, at each time, the one that scores better on the network's
held-out data (`chosen_limit`, run by `evaluate_over_time`), and then one read-out gain for the
whole network at that time, also chosen there (`next_gains`): a network's metric need not be best
at the weights' own scale (PTB's perplexity is lower with every weight read 2–6 % small, even
digitally: docs/NN.md, "The limit"), and one digital gain is within any periphery's reach. Each is
a limit *within the device model* (docs/MODEL.md §7.4): neither bounds what a better periphery,
more pairs or a different column size would give.

The read-out (`oracle_read`) scales each column of a tile by the number that best matches the
column's own true weights, computed from the realised read: the hardware's drift compensation
is also one number per column (or coarser), taken from a calibration read, so it removes each
column's realised gain error at best as well as the oracle does, and an ideal scale per time,
one for all columns, cannot remove it at all.
"""

from __future__ import annotations

from collections.abc import Mapping as Mapping_
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F

from ..cell import Cell
from ..choices import LIMIT, LIMIT_CHOSEN, LIMIT_MSE
from ..devices import DeviceModel
from ..expected import ExpectedTNMSE, limit_strategy
from ..hardware import Mapping, normalised_values, split_tiles
from ..strategy import Strategy
from ..timeunits import check_times
from .discover import AnalogWeight
from .program import ReadOut

LIMIT_VALUES = 1_000_000
"""Deployed weights the limit's density is estimated from (a seeded subsample beyond that)."""


@dataclass(frozen=True)
class LimitAt:
    """The limit at one time: its mapping for that time alone (`strategy`, β = 1) and its
    expected read-out scale (ŵ/w_max = scale · Σ f_p (g⁺_p − g⁻_p), 1/µS; the read-out itself
    takes each column's oracle scale, `oracle_read`, which needs no expected one)."""

    time_s: float
    strategy: Strategy
    scale: float
    bound: float
    """The mapping's expected error at this time on the deployed density (for `limit-mse`, the
    weight-error bound)."""
    unbiased: bool = True
    """True: the least-noise unbiased mapping (`limit`); False: the bound's own (`limit-mse`)."""
    gain: float = 1.0
    """One factor on every weight read at this time, after the oracle's (`limit-chosen`: chosen on
    held-out data; 1 for the others)."""

    def to_dict(self) -> dict:
        return {"time_s": self.time_s, "significance": self.strategy.significance[0].tolist(),
                "scale_per_us": self.scale, "bound_tnmse": self.bound, "unbiased": self.unbiased,
                "gain": self.gain}


@dataclass(frozen=True)
class Limit:
    """The limit at each evaluation time: a strategy chosen knowing the time it is read at can do
    no better (within the device model), so each time gets its own mapping.

    Programmed with no drift compensation and read with each column's oracle scale (`mapping`,
    `read_out`).
    """

    at: tuple[LimitAt, ...]
    name: str = LIMIT
    """`limit`, `limit-mse` or `limit-chosen` (`choices.LIMITS`)."""
    held_out: tuple[dict, ...] = ()
    """`limit-chosen`: per time, `limit` − `limit-mse` on held-out data (`OverTimeResult.paired_rows`)."""
    gain_scan: tuple[dict, ...] = ()
    """`limit-chosen`: each read-out gain tried, with its held-out metric per time (`{gain, means}`)."""

    @property
    def unbiased(self) -> bool | None:
        """Whether every time's mapping is the unbiased one (None: they differ)."""
        kinds = {a.unbiased for a in self.at}
        return kinds.pop() if len(kinds) == 1 else None

    def for_time(self, t_s: float) -> LimitAt:
        """The limit at `t_s` (one of the times it was computed for)."""
        for a in self.at:
            if abs(a.time_s - t_s) <= 1e-9 * max(1.0, t_s):
                return a
        raise ValueError(f"limit: computed for times {[a.time_s for a in self.at]}, not {t_s}")

    def mapping(self, mapping: Mapping) -> Mapping:
        """The network's mapping with drift compensation off: the oracle scale replaces it."""
        return Mapping(mapping.tile_rows, mapping.tile_cols, mapping.normalise, "none", mapping.reference)

    def read_out(self, mapping: Mapping, t_s: float) -> ReadOut:
        """`read_out(read, weight)`: the limit's read of one weight at `t_s` (`oracle_read` on
        `mapping`'s tiles, in the form of that time's mapping)."""
        at = self.for_time(t_s)
        return partial(oracle_read, mapping=mapping, unbiased=at.unbiased, gain=at.gain)

    def to_dict(self) -> dict:
        """JSON form (results.json `limit`): per time, the cell, the scale, the expected-error bound
        and which mapping; for `limit-chosen` the held-out comparison it was chosen on."""
        cells = {tuple(a.strategy.significance[0].tolist()) for a in self.at}
        one = {"significance": list(cells.pop())} if len(cells) == 1 else {}  # else: a cell per time
        held = {"held_out": list(self.held_out)} if self.held_out else {}
        scan = {"gain_scan": list(self.gain_scan)} if self.gain_scan else {}
        return {"name": self.name, "unbiased": self.unbiased, **one, "per_time": [a.to_dict() for a in self.at],
                **held, **scan}

    def with_gains(self, gains: dict[float, float], scan: Sequence[dict] = ()) -> Limit:
        """This limit with the gain chosen per time (`gains`, by time) and the scan it was chosen on."""
        return replace(self, at=tuple(replace(a, gain=float(gains[a.time_s])) for a in self.at), gain_scan=tuple(scan))

    def with_gain(self, gain: float) -> Limit:
        """This limit with every time read at `gain` (a candidate of the gain's choice)."""
        return self.with_gains({a.time_s: gain for a in self.at}, self.gain_scan)


def chosen_limit(unbiased: Limit, mse: Limit, held_out: Sequence[dict], higher_is_better: bool) -> Limit:
    """`limit-chosen`: at each time the mapping of `unbiased` or `mse` that scored better on held-out
    data (a tie keeps the unbiased one).

    Parameters
    ----------
    unbiased, mse
        `limit` and `limit-mse` for the same times.
    held_out
        Per time, `limit` − `limit-mse` on held-out data: rows of `OverTimeResult.paired_rows`
        (`time_s`, `diff`, …).
    higher_is_better
        The metric's direction.

    Returns
    -------
    Limit
    """
    diffs = {row["time_s"]: row["diff"] for row in held_out}
    sign = 1.0 if higher_is_better else -1.0
    at = tuple(a if sign * diffs[a.time_s] >= 0 else mse.for_time(a.time_s) for a in unbiased.at)
    return Limit(at, LIMIT_CHOSEN, tuple(held_out))


def chosen_from_dict(unbiased: Limit, mse: Limit, data: dict) -> Limit:
    """`limit-chosen` again from its JSON form (`Limit.to_dict`: per time which mapping and gain)
    and the two limits it chose between, for the same times: the choice made once on held-out data
    (a study's `limit-choice` job) and read by every block of realisations."""
    at = tuple((unbiased if t["unbiased"] else mse).for_time(t["time_s"]) for t in data["per_time"])
    return Limit(at, LIMIT_CHOSEN, tuple(data.get("held_out", ()))).with_gains(
        {a.time_s: t["gain"] for a, t in zip(at, data["per_time"])}, data.get("gain_scan", ()))


GAIN_START = (0.96, 0.98, 1.0, 1.02)
"""Read-out gains `limit-chosen` first tries on held-out data."""
GAIN_STEP = 0.02
GAIN_RANGE = (0.80, 1.20)
"""The gains it may extend to, a step at a time, while the best at some time is at an end of those tried."""


def next_gains(means: Mapping_[float, Sequence[float]], higher_is_better: bool) -> list[float]:
    """The gains to try next: one step beyond each end of those tried (`means`: per gain, the
    held-out metric per time) where some time's best is at that end and `GAIN_RANGE` allows."""
    tried = sorted(means)
    best = set(best_gains(range(len(means[tried[0]])), means, higher_is_better).values())
    low, high = round(tried[0] - GAIN_STEP, 6), round(tried[-1] + GAIN_STEP, 6)
    return ([low] if tried[0] in best and low >= GAIN_RANGE[0] - 1e-9 else []) + \
        ([high] if tried[-1] in best and high <= GAIN_RANGE[1] + 1e-9 else [])


def best_gains(times: Sequence[float], means: Mapping_[float, Sequence[float]], higher_is_better: bool) -> dict:
    """Per time (by `times`' position in each list of `means`), the gain with the best held-out
    metric; a tie: the one nearest 1."""
    sign = 1.0 if higher_is_better else -1.0
    return {t: max(means, key=lambda g: (sign * means[g][k], -abs(g - 1.0))) for k, t in enumerate(times)}


def deployed_values(weights: Sequence[AnalogWeight], mapping: Mapping = Mapping(),
                    max_values: int = LIMIT_VALUES, seed: int = 0) -> torch.Tensor:
    """Every analog weight normalised as deployed (`hardware.normalised_values`), pooled; a seeded
    subsample of `max_values` when there are more.

    Parameters
    ----------
    weights
        The model's analog weights.
    mapping
        Tiling and normalisation of the deployment.
    max_values
        Most values returned.
    seed
        Seed of the subsample.

    Returns
    -------
    torch.Tensor
        (N,) float32 values in [−1, 1] on the cpu.
    """
    values = torch.cat([normalised_values(w.matrix(), mapping).cpu() for w in weights])
    keep = subsample(values.numel(), max_values, seed)
    return values if keep is None else values[keep]


def subsample(n: int, max_values: int, seed: int) -> torch.Tensor | None:
    """The seeded subsample `deployed_values` keeps of n values (None: all of them), so that
    per-weight numbers (`nn.fisher`) can be kept aligned with it."""
    if n <= max_values:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_values]


def compute_limit(values: torch.Tensor, device: DeviceModel, times_s: Sequence[float],
                  significance: Sequence[float] | None = None, pairs: int = 2, f_max: int = 5,
                  unbiased: bool = True) -> Limit:
    """The limit for a density on a device at each of the given times.

    Parameters
    ----------
    values
        Normalised deployed weights (`deployed_values`).
    device
        The device.
    times_s
        The times the network is evaluated at (each gets its own mapping and scale).
    significance
        The cell; None: `pairs` pairs with F = 1 … `f_max`, per time the F with the lowest bound.
    pairs, f_max
        The cells searched when `significance` is None.
    unbiased
        True (`limit`): per weight value the least noise with the mean read-out held at the weight;
        False (`limit-mse`): the weight-error bound's mapping, the least squared error.

    Returns
    -------
    Limit
    """
    cells = [Cell(tuple(significance))] if significance is not None else \
        [Cell.with_pairs(pairs, f) for f in range(1, f_max + 1)] if pairs > 1 else [Cell((1.0,))]
    at = []
    for t in check_times(times_s):
        model = ExpectedTNMSE(values, device, (t,), compile=False)
        name = LIMIT if unbiased else LIMIT_MSE
        found = [limit_strategy(model, cell.significance, name=name, unbiased=unbiased) for cell in cells]
        strategy, bound = min(found, key=lambda x: x[1].mean)
        at.append(LimitAt(t, strategy, float(bound.scales[0]), bound.mean, unbiased))
    return Limit(tuple(at), LIMIT if unbiased else LIMIT_MSE)


def oracle_scales(read: torch.Tensor, weight: torch.Tensor, mapping: Mapping = Mapping(),
                  unbiased: bool = False) -> torch.Tensor:
    """Each crossbar column's oracle scale a of a read against the true weights w it stores.

    `unbiased=False` (`limit-mse`): the least-squares scale a = ⟨w, ŵ⟩/⟨ŵ, ŵ⟩, the least error
    Σ(a·ŵ − w)² of any one number per column, so no drift compensation (one number per column,
    tile or layer) reads a column with less error. `unbiased=True` (`limit`): a = ⟨w, w⟩/⟨w, ŵ⟩,
    which removes the column's realised gain error (⟨w, a·ŵ⟩ = ⟨w, w⟩) without the least-squares
    scale's shrinkage by ~1/(1 + the column's NMSE): a mapping chosen to read every weight at its
    value on average keeps that. A column whose denominator is not positive (nothing of w read)
    gets 0.

    Parameters
    ----------
    read, weight
        The read weights ŵ and the true ones w, same shape, outputs first (conv kernels are
        flattened as `ProgrammedTensor` does).
    mapping
        Its tiling: a column is one output of one input tile (`split_tiles`).
    unbiased
        The ratio form (True) or least squares (False).

    Returns
    -------
    torch.Tensor
        (outputs, input tiles) float64 scales.
    """
    w = weight.reshape(weight.shape[0] if weight.dim() > 1 else 1, -1)
    out, inputs = w.shape
    n_rt, _, rows, _ = split_tiles(inputs, out, mapping)

    def tiled(x: torch.Tensor) -> torch.Tensor:  # (outputs, input tiles, rows), zeros padded
        return F.pad(x.reshape(out, inputs).to(torch.float64), (0, n_rt * rows - inputs)).view(out, n_rt, rows)
    w64, r64 = tiled(w), tiled(read)
    cross = (w64 * r64).sum(-1)
    num, den = ((w64 * w64).sum(-1), cross) if unbiased else (cross, (r64 * r64).sum(-1))
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)


def oracle_read(read: torch.Tensor, weight: torch.Tensor, mapping: Mapping = Mapping(),
                unbiased: bool = False, gain: float = 1.0) -> torch.Tensor:
    """The read `read` with each crossbar column times its oracle scale (`oracle_scales`) and `gain`.

    Parameters
    ----------
    read, weight
        The read weights and the true ones, same shape (outputs first).
    mapping
        Its tiling.
    unbiased
        As `oracle_scales`.
    gain
        One factor on every column (`LimitAt.gain`).

    Returns
    -------
    torch.Tensor
        The scaled read, `read`'s shape and dtype.
    """
    a = oracle_scales(read, weight, mapping, unbiased) * gain
    out = a.shape[0]
    r = read.reshape(out, -1)
    inputs = r.shape[1]
    rows = split_tiles(inputs, out, mapping)[2]
    per_input = a.to(read.dtype).repeat_interleave(rows, dim=1)[:, :inputs]  # each input's column scale
    return (r * per_input).reshape(read.shape)
