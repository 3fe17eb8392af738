"""The device interface: program target conductances, then read them at times after programming.

Every device follows the laws of docs/MODEL.md §2; a device only supplies its curves (programming
std, drift-exponent mean and std, read-noise coefficient Q, each a function of conductance):

    g_prog = max(0, g_T + σ_p(g_T)·z1)                 once per programming (then stuck devices)
    ν      = |μ_ν(g_T) + σ_ν(g_T)·z2|
    g(t)   = max(0, g_d + g_d·Q(g_prog)·c(t)·z3),  g_d = g_prog·((t + t0)/t0)^−ν,
    c(t)   = sqrt(ln((t + t0 + t_read)/(2·t_read)))      z3 fresh on every read

Q is evaluated at the programmed conductance g_prog: the 1/f noise depends on the state the device
is in, not on the state it was aimed at (as in IBM aihwkit's PCM noise model; with Q at g_T the
read noise of low-conductance devices came out up to 20 % too large, docs/VALIDATION.md). Curves are pure
element-wise torch expressions with Python-float constants, so they run on any compute device and
fuse under `torch.compile`. Random draws are arguments (common random numbers) or come from a
caller's generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import torch

from ..errors import WeightprogError


@dataclass
class DeviceState:
    """Programmed devices: what stays fixed between reads."""

    g_prog: torch.Tensor
    """Programmed conductance right after programming, µS."""
    nu: torch.Tensor
    """Drift exponent of each device."""
    q: torch.Tensor
    """Read-noise coefficient of each device, Q(g_prog)."""


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def piecewise_linear(x: torch.Tensor, xs: Sequence[float], ys: Sequence[float]) -> torch.Tensor:
    """Linear interpolation in a table, constant beyond its ends.

    Written as a sum of clamped segments rather than a search, so it is one fused element-wise
    expression (fast under torch.compile, differentiable, any compute device).
    """
    out = torch.full_like(x, float(ys[0]))
    for k in range(len(xs) - 1):
        width = xs[k + 1] - xs[k]
        if width <= 0:
            continue
        slope = (ys[k + 1] - ys[k]) / width
        if slope != 0.0:
            out = out + slope * (x.clamp(xs[k], xs[k + 1]) - xs[k])
    return out


class DeviceModel:
    """A stochastic memory device. Subclasses supply the four curves; the laws are shared.

    Parameters
    ----------
    g_min, g_max
        Conductance range the device is programmed in, µS (0 ≤ g_min < g_max).
    t0
        Drift reference time, s: g_d = g_prog·((t + t0)/t0)^−ν.
    t_read
        Read duration, s, in the 1/f read-noise growth c(t).
    p_stuck_min, p_stuck_max
        Probabilities that a device is stuck at g_min or g_max.

    Raises
    ------
    WeightprogError
        For a range, times or probabilities outside these bounds.
    """

    name: str = "device"
    kind: str = "device"

    def __init__(self, g_min: float = 0.0, g_max: float = 25.0, t0: float = 20.0,
                 t_read: float = 2.5e-7, p_stuck_min: float = 0.0, p_stuck_max: float = 0.0):
        if not (math.isfinite(g_min) and math.isfinite(g_max) and 0 <= g_min < g_max):
            raise WeightprogError(f"device {self.name}: need 0 <= g_min < g_max, got {g_min}, {g_max}")
        if not (t0 > 0 and t_read > 0):
            raise WeightprogError(f"device {self.name}: t0 and t_read must be > 0")
        if not (p_stuck_min >= 0 and p_stuck_max >= 0 and p_stuck_min + p_stuck_max <= 1):
            raise WeightprogError(f"device {self.name}: stuck probabilities must be in [0, 1]")
        self.g_min, self.g_max = float(g_min), float(g_max)
        self.t0, self.t_read = float(t0), float(t_read)
        self.p_stuck_min, self.p_stuck_max = float(p_stuck_min), float(p_stuck_max)

    # --- the curves (element-wise in the target conductance, µS) -------------------------------
    def programming_std(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def drift_mean(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def drift_std(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def read_q(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- time factors ------------------------------------------------------------------------
    @overload
    def drift_log(self, t_s: float) -> float: ...

    @overload
    def drift_log(self, t_s: torch.Tensor) -> torch.Tensor: ...

    def drift_log(self, t_s: float | torch.Tensor) -> float | torch.Tensor:
        """ln((t + t0)/t0): the drift factor is exp(−ν·drift_log(t)).

        Parameters
        ----------
        t_s
            Seconds after programming (a float or a tensor).

        Returns
        -------
        float or torch.Tensor
            Of the same kind and shape as `t_s`.
        """
        if isinstance(t_s, torch.Tensor):
            return torch.log((t_s + self.t0) / self.t0)
        return math.log((t_s + self.t0) / self.t0)

    @overload
    def read_scale(self, t_s: float) -> float: ...

    @overload
    def read_scale(self, t_s: torch.Tensor) -> torch.Tensor: ...

    def read_scale(self, t_s: float | torch.Tensor) -> float | torch.Tensor:
        """sqrt(ln((t + t0 + t_read)/(2·t_read))): the 1/f read-noise growth with time, for
        seconds after programming `t_s` (a float or a tensor; the result of the same kind and shape,
        as for `drift_log`)."""
        if isinstance(t_s, torch.Tensor):
            return torch.sqrt(torch.log((t_s + self.t0 + self.t_read) / (2 * self.t_read)))
        return math.sqrt(math.log((t_s + self.t0 + self.t_read) / (2 * self.t_read)))

    @property
    def has_stuck(self) -> bool:
        """Whether any device can be stuck (p_stuck_min or p_stuck_max > 0)."""
        return self.p_stuck_min > 0 or self.p_stuck_max > 0

    # --- the laws ----------------------------------------------------------------------------
    def program(self, g_target: torch.Tensor, z_prog: torch.Tensor | None = None,
                z_nu: torch.Tensor | None = None, u_stuck: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> DeviceState:
        """Program devices to `g_target`. Draws default to `generator`'s.

        Parameters
        ----------
        g_target
            Target conductances, µS, any shape.
        z_prog, z_nu
            Standard normals of the programming error and the drift exponent (shape of
            `g_target`); drawn from `generator` when None.
        u_stuck
            Uniforms deciding stuck devices (only with stuck probabilities); drawn when None.
        generator
            Source of the draws not given.

        Returns
        -------
        DeviceState
            The programmed conductances, drift exponents and read-noise coefficients.
        """
        g = g_target
        z_prog = randn_like(g, generator) if z_prog is None else z_prog
        z_nu = randn_like(g, generator) if z_nu is None else z_nu
        g_prog = (g + self.programming_std(g) * z_prog).clamp_min(0.0)
        if self.has_stuck:
            if u_stuck is None:
                u_stuck = torch.rand(g.shape, generator=generator, device=g.device, dtype=g.dtype)
            g_prog = self.apply_stuck(g_prog, u_stuck)
        nu = (self.drift_mean(g) + self.drift_std(g) * z_nu).abs()
        return DeviceState(g_prog=g_prog, nu=nu, q=self.read_q(g_prog))

    def apply_stuck(self, g_prog: torch.Tensor, u_stuck: torch.Tensor) -> torch.Tensor:
        """A device stuck at g_min (u < p_min) or g_max (u > 1 − p_max); it still drifts and is read."""
        g_prog = torch.where(u_stuck < self.p_stuck_min, torch.full_like(g_prog, self.g_min), g_prog)
        return torch.where(u_stuck > 1.0 - self.p_stuck_max, torch.full_like(g_prog, self.g_max), g_prog)

    def read(self, state: DeviceState, t_s: float | torch.Tensor, z_read: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Read the devices at `t_s` seconds after programming (0 = right after).

        Parameters
        ----------
        state
            Programmed devices (`program`).
        t_s
            Seconds after programming: a scalar, or a 1-D tensor of T times.
        z_read
            Standard normals of the read noise (shape of the result); fresh from `generator`
            on every call when None.
        generator
            Source of the read noise.

        Returns
        -------
        torch.Tensor
            Read conductances, µS: the state's shape for a scalar time, (T, *state shape) for T times.
        """
        g_prog, nu, q = state.g_prog, state.nu, state.q
        drift_log: torch.Tensor | float
        scale: torch.Tensor | float
        if isinstance(t_s, torch.Tensor) and t_s.dim() > 0:
            view = (-1,) + (1,) * g_prog.dim()
            times = t_s.to(device=g_prog.device, dtype=g_prog.dtype)
            drift_log, scale = self.drift_log(times).view(view), self.read_scale(times).view(view)
        else:
            drift_log, scale = self.drift_log(float(t_s)), self.read_scale(float(t_s))
        # in-place chain: reads of whole networks are memory-bound, each temporary costs a pass
        g_d = torch.mul(nu, -drift_log).exp_().mul_(g_prog)
        noise = randn_like(g_d, generator) if z_read is None else z_read.clone()
        return noise.mul_(q).mul_(scale).add_(1.0).mul_(g_d).clamp_(min=0.0)

    def describe(self) -> dict:
        """A JSON-able summary for reports."""
        return {"name": self.name, "kind": self.kind, "g_min": self.g_min, "g_max": self.g_max,
                "t0": self.t0, "t_read": self.t_read,
                "p_stuck_min": self.p_stuck_min, "p_stuck_max": self.p_stuck_max}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, g_max={self.g_max})"
