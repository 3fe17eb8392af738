"""Built-in analytic devices: the reference PCM model, its low-drift variant, and an ideal device.

PCM numbers: the published statistical model of IBM doped-GST PCM (Nandakumar et al., ICECS 2019;
Joshi et al., Nat. Commun. 2020), as tabulated in docs/MODEL.md §3.1. The low-drift device is a stand-in
for the paper's Fig. 5 "alternative device", not its table: IBM aihwkit's custom-drift example (drift
linear in G between 0, 10 and 25 µS) with its top point and g_max at 30 µS (docs/MODEL.md §3.2).
"""

from __future__ import annotations

import torch

from .base import DeviceModel, piecewise_linear

_R_FLOOR = 1e-7


class PCMDevice(DeviceModel):
    """Reference PCM: g_max 25 µS, t0 20 s, t_read 250 ns; curves in r = g/g_max."""

    name = "pcm"
    kind = "pcm"

    def __init__(self, g_max: float = 25.0, t0: float = 20.0, t_read: float = 2.5e-7):
        super().__init__(g_min=0.0, g_max=g_max, t0=t0, t_read=t_read)

    def _r(self, g: torch.Tensor) -> torch.Tensor:
        return (g / self.g_max).clamp_min(_R_FLOOR)

    def programming_std(self, g):
        r = g / self.g_max
        return (0.26348 + 1.9650 * r - 1.1731 * r * r) * (self.g_max / 25.0)

    def drift_mean(self, g):
        return (-0.0155 * torch.log(self._r(g)) + 0.0244).clamp(0.049, 0.1)

    def drift_std(self, g):
        return (-0.0125 * torch.log(self._r(g)) - 0.0059).clamp(0.008, 0.045)

    def read_q(self, g):
        return (0.0088 / torch.pow(self._r(g), 0.65).clamp_min(1e-3)).clamp_max(0.2)


class LowDriftPCMDevice(PCMDevice):
    """docs/MODEL.md §3.2: a stand-in for the paper's second device, aihwkit's custom-drift example at
    30 µS: larger range and lower average drift."""

    name = "pcm-lowdrift"
    kind = "pcm-lowdrift"
    DRIFT_G = (0.0, 10.0, 30.0)
    NU_MEAN = (0.08, 0.05, 0.03)
    NU_STD = (0.03, 0.02, 0.01)

    def __init__(self):
        super().__init__(g_max=30.0)

    def drift_mean(self, g):
        return piecewise_linear(g, self.DRIFT_G, self.NU_MEAN)

    def drift_std(self, g):
        return piecewise_linear(g, self.DRIFT_G, self.NU_STD)


class IdealDevice(DeviceModel):
    """Programs exactly, never drifts, reads without noise (g_max 25 µS)."""

    name = "ideal"
    kind = "ideal"

    def __init__(self, g_max: float = 25.0):
        super().__init__(g_min=0.0, g_max=g_max)

    def programming_std(self, g):
        return torch.zeros_like(g)

    drift_mean = drift_std = read_q = programming_std
