"""The weight-error metric (docs/MODEL.md §7.1): time-averaged, density-weighted, drift-compensated NMSE.

    TNMSE = mean_t mean_j ((α(t)·ŵ_j(t) − w_j) / w_max)²

(each term times the weight's importance I_j, mean 1, when the sample carries one: `--weighting
fisher`; α still averages every weight of the column, as the hardware does) evaluated for a whole
population of strategies at once. Design:

* Common random numbers: the standard-normal draws of programming, drift and every read are drawn
  once per (seed, sample) and shared by all candidates, so the metric is deterministic for a seed,
  candidates are compared on equal terms, and it is differentiable in the conductance tables.
* One pass: per column the error only needs Σ|W|, ΣW² and ΣW·u at each time, because
  Σ(αW − u)² = α²ΣW² − 2αΣWu + Σu². Devices and times are unrolled so `torch.compile` fuses the
  whole chain (interpolation, programming, drift, read noise, compensation, error) into a few
  loops without materialising population × weights × devices × times tensors.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .devices import DeviceModel, get_device
from .interpolation import interpolation_weights, take
from .sample import WeightSample, sample_from_values
from .strategy import Strategy
from .timeunits import DEFAULT_TIMES_S, check_times
from .validate import SAMPLE_COMPENSATION_SCOPES, compensation_scope, compute_device

COMPENSATION = SAMPLE_COMPENSATION_SCOPES
"""Per column of the sample, one α for the whole sample (`layer`), or no compensation: the scopes of
`validate.COMPENSATION_SCOPES` a weight sample has (the old name `all` is read as `layer`)."""


@dataclass
class TNMSEResult:
    """Per-column errors of B strategies: everything else is derived from them.

    Parameters
    ----------
    names
        The B strategies' names.
    times_s
        The T times, seconds after programming.
    per_column
        (B, T, C) mean squared normalised error of each column at each time.
    """

    names: list[str]
    times_s: tuple[float, ...]
    per_column: torch.Tensor
    """(B, T, C) mean squared normalised error of each column at each time."""

    @property
    def per_time(self) -> torch.Tensor:
        """(B, T) NMSE at each time."""
        return self.per_column.mean(-1)

    @property
    def mean(self) -> torch.Tensor:
        """(B,) TNMSE: the mean over times and columns."""
        return self.per_column.mean((-1, -2))

    @property
    def stderr(self) -> torch.Tensor:
        """(B,) standard error of `mean` across columns, which carry independent weights and draws."""
        c = self.per_column.shape[-1]
        return self.per_column.mean(-2).std(-1) / math.sqrt(c) if c > 1 else torch.zeros(len(self.names))

    @property
    def per_time_stderr(self) -> torch.Tensor:
        """(B, T) standard error of `per_time` across columns."""
        c = self.per_column.shape[-1]
        return self.per_column.std(-1) / math.sqrt(c) if c > 1 else torch.zeros_like(self.per_time)

    def summary(self, index: int = 0) -> dict:
        """JSON form of one strategy's numbers.

        Parameters
        ----------
        index
            Which strategy.

        Returns
        -------
        dict
            `mean`, `stderr`, `per_time` and `per_time_stderr` as floats.
        """
        return {"mean": float(self.mean[index]), "stderr": float(self.stderr[index]),
                "per_time": [float(x) for x in self.per_time[index]],
                "per_time_stderr": [float(x) for x in self.per_time_stderr[index]]}

    def __getitem__(self, index: int) -> TNMSEResult:
        """The result of strategy `index` alone (B = 1)."""
        return TNMSEResult([self.names[index]], self.times_s, self.per_column[index:index + 1])

    @staticmethod
    def concat_columns(results: Sequence[TNMSEResult]) -> TNMSEResult:
        """One result from several of the same strategies and times on other columns (re-score blocks).

        Parameters
        ----------
        results
            Results with equal names and times.

        Returns
        -------
        TNMSEResult
            Their columns side by side (names and times of the first).
        """
        return TNMSEResult(results[0].names, results[0].times_s,
                           torch.cat([r.per_column for r in results], dim=-1))


@dataclass
class Draws:
    """Standard normals shared by every candidate: (2P, C, R) each, reads (T + 1, 2P, C, R)."""

    z_prog: torch.Tensor
    z_nu: torch.Tensor
    z_read: torch.Tensor
    u_stuck: torch.Tensor

    @classmethod
    def make(cls, devices: int, columns: int, rows: int, reads: int, seed: int,
             compute: torch.device) -> Draws:
        gen = torch.Generator().manual_seed(seed)
        shape = (devices, columns, rows)
        z_prog, z_nu = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
        z_read = torch.randn((reads,) + shape, generator=gen)
        u_stuck = torch.rand(shape, generator=gen)
        return cls(*(x.to(compute) for x in (z_prog, z_nu, z_read, u_stuck)))


def column_errors(table, signed, index, frac, negative, u, draws: Draws, *, device: DeviceModel,
                  drift_logs: tuple[float, ...], read_scales: tuple[float, ...],
                  compensation: str, importance: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, C) errors for tables (B, D, 2P) and signed factors ±f_p/β (B, 2P); with `importance`
    (C, R) each weight's squared error counts by it.

    Written as plain element-wise torch on (B, C, R) tensors, unrolled over devices and times:
    eager mode runs it as is (and differentiates it), torch.compile fuses it.
    """
    n_dev = table.shape[-1]
    lo, hi = take(table, index, 1), take(table, index + 1, 1)  # (B, C, R, 2P)
    frac = frac.unsqueeze(0)
    states = []
    for d in range(n_dev):
        mirror = d ^ 1  # negative weights swap g⁺ and g⁻ of each pair
        g_plain = lo[..., d] + (hi[..., d] - lo[..., d]) * frac
        g_mirror = lo[..., mirror] + (hi[..., mirror] - lo[..., mirror]) * frac
        g = torch.where(negative, g_mirror, g_plain)
        g_prog = (g + device.programming_std(g) * draws.z_prog[d]).clamp_min(0.0)
        if device.has_stuck:
            g_prog = device.apply_stuck(g_prog, draws.u_stuck[d])
        nu = (device.drift_mean(g) + device.drift_std(g) * draws.z_nu[d]).abs()
        states.append((g_prog, nu, device.read_q(g_prog), signed[:, d].reshape(-1, 1, 1)))

    def hardware_weight(k: int):
        w = 0.0
        for d, (g_prog, nu, q, s) in enumerate(states):
            g_d = g_prog if k == 0 else g_prog * torch.exp(nu * -drift_logs[k - 1])
            w = w + s * (g_d * (1.0 + q * (read_scales[k] * draws.z_read[k, d]))).clamp_min(0.0)
        return w  # (B, C, R) in units of u

    rows = u.shape[-1]
    weighted_u = u if importance is None else importance * u  # Σ I(αw − u)² = α²ΣIw² − 2αΣIwu + ΣIu²
    sum_uu = (weighted_u * u).sum(-1)
    ref = hardware_weight(0).abs().sum(-1)  # calibration read right after programming
    errors = []
    for k in range(1, len(read_scales)):
        w = hardware_weight(k)
        s_abs, s_wu = w.abs().sum(-1), (w * weighted_u).sum(-1)
        s_sq = (w * w).sum(-1) if importance is None else (importance * w * w).sum(-1)
        if compensation == "column":
            alpha = torch.where(s_abs > 0, ref / s_abs, torch.ones_like(s_abs))
        elif compensation == "layer":
            total = s_abs.sum(-1, keepdim=True)
            alpha = torch.where(total > 0, ref.sum(-1, keepdim=True) / total, torch.ones_like(total))
        else:
            alpha = torch.ones_like(s_abs)
        errors.append((alpha * alpha * s_sq - 2.0 * alpha * s_wu + sum_uu) / rows)
    return torch.stack(errors, dim=1).clamp_min(0.0)


def resolve_compute(compute: str | torch.device | None) -> torch.device:
    if isinstance(compute, torch.device):
        compute = str(compute)
    return torch.device(compute_device(compute or "cpu"))


class TNMSE:
    """TNMSE of populations of strategies on one weight sample with fixed draws (one seed).

    >>> objective = TNMSE(default_sample(), "pcm")
    >>> result = objective.evaluate(baseline("lsp-first", Cell((1, 2))))

    Parameters
    ----------
    sample
        The weights to score on.
    device
        A `DeviceModel` or a name/file for `get_device`.
    times_s
        Seconds after programming at which the error is averaged.
    seed
        Seed of the shared draws (programming, drift, reads).
    compensation
        Drift-compensation scope: `column` (one α per column of the sample), `layer` (one α
        for the whole sample) or `none` (`validate.SAMPLE_COMPENSATION_SCOPES`); `all` is read
        as `layer`.
    compute
        Torch device of the computation: `cpu`, `cuda` or `cuda:N`.
    compile
        Fuse the kernel with `torch.compile`: True, False or `auto` (where a compiler works).
    chunk
        Strategies per kernel call.

    Raises
    ------
    WeightprogError
        For an unknown device or compensation scope, bad times, or an unavailable compute device.
    """

    def __init__(self, sample: WeightSample, device: DeviceModel | str = "pcm",
                 times_s: Sequence[float] = DEFAULT_TIMES_S, seed: int = 0,
                 compensation: str = "column", compute: str | torch.device | None = "cpu",
                 compile: bool | str = "auto", chunk: int = 64):
        compensation = compensation_scope(compensation, allowed=SAMPLE_COMPENSATION_SCOPES)
        self.device = get_device(device)
        self.times_s = check_times(times_s)
        self.seed, self.compensation, self.chunk = int(seed), compensation, int(chunk)
        self.compute = resolve_compute(compute)
        self.set_sample(sample, self.seed)
        self.drift_logs = tuple(self.device.drift_log(t) for t in self.times_s)
        self.read_scales = tuple(self.device.read_scale(t) for t in (0.0,) + self.times_s)
        self._kernel = self._build_kernel(compile)

    def set_sample(self, sample: WeightSample, seed: int) -> None:
        """Score on another sample with fresh draws, reusing the compiled kernel.

        Parameters
        ----------
        sample
            The new weights (any number of columns).
        seed
            Seed of the new draws.
        """
        self.sample, self.seed = sample, int(seed)
        self.u = sample.u.to(self.compute, torch.float32)
        self.importance = None if sample.importance is None else sample.importance.to(self.compute, torch.float32)
        self._draws: dict[int, Draws] = {}

    def _build_kernel(self, compile: bool | str) -> Callable:
        def kernel(table, signed, index, frac, negative, u, z_prog, z_nu, z_read, u_stuck, importance):
            return column_errors(table, signed, index, frac, negative, u,
                                 Draws(z_prog, z_nu, z_read, u_stuck), device=self.device,
                                 drift_logs=self.drift_logs, read_scales=self.read_scales,
                                 compensation=self.compensation, importance=importance)
        self.compiled = compile is True or (compile == "auto" and compile_available())
        if not self.compiled:
            return kernel
        return torch.compile(kernel, dynamic=False)

    def draws(self, devices: int) -> Draws:
        if devices not in self._draws:
            c, r = self.u.shape
            self._draws[devices] = Draws.make(devices, c, r, len(self.read_scales), self.seed, self.compute)
        return self._draws[devices]

    def per_column(self, grid: torch.Tensor, conductances: torch.Tensor, significance: torch.Tensor,
                   beta: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Per-column errors of a population given as tensors (what the search calls).

        Parameters
        ----------
        grid
            (D,) normalised weights of the tables' rows.
        conductances
            (B, D, 2P) target tables, µS.
        significance
            (B, P) significance factors.
        beta
            (B,) µS of W_hw per unit weight.
        grad
            Eager and differentiable in the tables (for gradient polishing) instead of chunked
            under no_grad.

        Returns
        -------
        torch.Tensor
            (B, T, C) errors (on the CPU unless `grad`).
        """
        conductances = conductances.to(self.compute, torch.float32)
        signed = torch.repeat_interleave(significance.to(conductances), 2, dim=-1)
        signed = signed * torch.tensor([1.0, -1.0], device=self.compute).repeat(signed.shape[-1] // 2)
        signed = signed / beta.to(conductances).reshape(-1, 1)
        index, frac, negative = interpolation_weights(grid.to(self.compute, torch.float64), self.u)
        draws = self.draws(conductances.shape[-1])
        args = (index, frac, negative, self.u, draws.z_prog, draws.z_nu, draws.z_read, draws.u_stuck,
                self.importance)
        if grad:  # eager and differentiable (the polish)
            return column_errors(conductances, signed, *args[:4], draws, device=self.device,
                                 drift_logs=self.drift_logs, read_scales=self.read_scales,
                                 compensation=self.compensation, importance=self.importance)
        with torch.no_grad():
            out = [self._kernel(table, sig, *args)[:n]
                   for table, sig, n in chunks(conductances, signed, self.chunk, pad=self.compiled)]
        return torch.cat(out).cpu()

    def evaluate(self, strategy: Strategy) -> TNMSEResult:
        """Per-column errors of each strategy of a batch.

        Parameters
        ----------
        strategy
            One strategy or a population, within the device's range.

        Returns
        -------
        TNMSEResult

        Raises
        ------
        WeightprogError
            When a target conductance lies outside the device range.
        """
        strategy.check_range(self.device.g_min, self.device.g_max)
        errors = self.per_column(strategy.grid, strategy.conductances, strategy.significance, strategy.beta)
        return TNMSEResult(list(strategy.names), self.times_s, errors)

    def __call__(self, strategy: Strategy) -> torch.Tensor:
        """(B,) TNMSE of each strategy in the batch: `evaluate(strategy).mean`."""
        return self.evaluate(strategy).mean


def chunks(tables: torch.Tensor, signed: torch.Tensor, size: int, pad: bool):
    """(tables, signed factors, candidates) per chunk of a population; with `pad` the last chunk is
    filled up to `size` by repeating its last candidate, so a compiled kernel sees one shape."""
    for start in range(0, tables.shape[0], size):
        table, sig = tables[start:start + size], signed[start:start + size]
        n = table.shape[0]
        if pad and n < size:
            table = torch.cat([table, table[-1:].expand(size - n, -1, -1)])
            sig = torch.cat([sig, sig[-1:].expand(size - n, -1)])
        yield table.contiguous(), sig.contiguous(), n


_COMPILE_OK: bool | None = None


def compile_available() -> bool:
    """torch.compile needs a working C++ compiler on CPU; fall back to eager mode without one.
    WEIGHTPROG_COMPILE=0 turns it off (short runs, where compiling costs more than it saves)."""
    global _COMPILE_OK
    if os.environ.get("WEIGHTPROG_COMPILE", "1") == "0":
        return False
    if _COMPILE_OK is None:
        try:
            f = torch.compile(lambda x: torch.exp(x) * 2.0, dynamic=False)
            _COMPILE_OK = bool(torch.allclose(f(torch.ones(4)), torch.exp(torch.ones(4)) * 2))
        except Exception as exc:  # noqa: BLE001 - any compiler failure means eager
            warnings.warn(f"torch.compile unavailable ({type(exc).__name__}); using eager mode", stacklevel=2)
            _COMPILE_OK = False
    return _COMPILE_OK


def rescore(strategy: Strategy, values: torch.Tensor, device: DeviceModel | str = "pcm",
            times_s: Sequence[float] = DEFAULT_TIMES_S, blocks: int = 10, size: int = 10_240,
            rows: int = 512, seed: int = 1_000, *, compensation: str = "column",
            compute: str | torch.device | None = "cpu", compile: bool | str = "auto",
            chunk: int = 64, importance: torch.Tensor | None = None) -> TNMSEResult:
    """Honest numbers: `blocks` fresh samples of `size` weights, each with fresh draws.

    Parameters
    ----------
    strategy
        The strategies to score.
    values
        Normalised weights in [−1, 1] to draw the samples from.
    device
        A `DeviceModel` or a name/file for `get_device`.
    times_s
        Seconds after programming.
    blocks
        Number of fresh samples (block b uses seed `seed + b` for the sample and the draws).
    size, rows
        Weights per sample and per column.
    seed
        Seed of the first block.
    compensation, compute, compile, chunk
        As for `TNMSE`.
    importance
        One importance per value, drawn with it (`sample_from_values`): the same weighting as the
        search's; None: every weight alike.

    Returns
    -------
    TNMSEResult
        The columns of every block together: `blocks · size / rows` columns.
    """
    objective = None
    results = []
    for b in range(blocks):
        sample = sample_from_values(values, size, rows, seed=seed + b, source="rescore", importance=importance)
        if objective is None:
            objective = TNMSE(sample, device, times_s, seed=seed + b, compensation=compensation,
                              compute=compute, compile=compile, chunk=chunk)
        else:
            objective.set_sample(sample, seed + b)
        results.append(objective.evaluate(strategy))
    return TNMSEResult.concat_columns(results)
