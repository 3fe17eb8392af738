"""A device with some of its properties scaled: `pcm:programming=4,read=4`.

For matching another simulator's settings (noise ×4), and for asking which device improvement
pays (drift ×0.5). The laws stay those of devices/base.py; only the curves are multiplied
(σ_p, μ_ν, σ_ν, Q) and, for `g_max`, the range is stretched with every curve read at the
correspondingly scaled conductance: the curves keep their shape over the wider range while the
programming error stays the same in µS, so more range buys precision (Q is relative already).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .. import validate
from ..errors import WeightprogError
from .base import DeviceModel


@dataclass(frozen=True)
class Scales:
    """Multipliers of a device's properties (1 = unchanged)."""

    programming: float = 1.0
    drift_mean: float = 1.0
    drift_std: float = 1.0
    read: float = 1.0
    g_max: float = 1.0

    def __post_init__(self):
        for f in fields(self):  # a zero range is no device; zero noise or drift is a valid ideal
            bounds = {"above": 0.0} if f.name == "g_max" else {"minimum": 0.0}
            object.__setattr__(self, f.name, validate.number(getattr(self, f.name), f"device scale {f.name}",
                                                             **bounds))

    @classmethod
    def parse(cls, text: str, where: str = "device") -> Scales:
        """`programming=4,read=4` (keys: programming, drift_mean, drift_std, read, g_max)."""
        allowed = [f.name for f in fields(cls)]
        values: dict[str, float] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in allowed:
                raise WeightprogError(f"{where}: scale {item.strip()!r} is not KEY=FACTOR with KEY one of "
                                      f"{', '.join(allowed)}{validate.nearest(key, allowed)}")
            if key in values:
                raise WeightprogError(f"{where}: scale {key} given twice")
            try:
                values[key] = float(value)
            except ValueError:
                raise WeightprogError(f"{where}: scale {key}={value!r} is not a number") from None
        return cls(**values)

    def label(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self)
                        if getattr(self, f.name) != 1.0)


class ScaledDevice(DeviceModel):
    """`base` with its curves multiplied by `scales`; same stuck probabilities and time constants."""

    kind = "scaled"

    def __init__(self, base: DeviceModel, scales: Scales):
        self.base, self.scales = base, scales
        self.name = f"{base.name}:{scales.label()}" if scales.label() else base.name
        super().__init__(g_min=base.g_min * scales.g_max, g_max=base.g_max * scales.g_max, t0=base.t0,
                         t_read=base.t_read, p_stuck_min=base.p_stuck_min, p_stuck_max=base.p_stuck_max)

    def _at_base(self, g: torch.Tensor) -> torch.Tensor:
        return g if self.scales.g_max == 1.0 else g / self.scales.g_max

    def programming_std(self, g):
        return self.base.programming_std(self._at_base(g)) * self.scales.programming

    def drift_mean(self, g):
        return self.base.drift_mean(self._at_base(g)) * self.scales.drift_mean

    def drift_std(self, g):
        return self.base.drift_std(self._at_base(g)) * self.scales.drift_std

    def read_q(self, g):
        return self.base.read_q(self._at_base(g)) * self.scales.read

    def describe(self) -> dict:
        return {**super().describe(), "base": self.base.describe(),
                "scales": {f.name: getattr(self.scales, f.name) for f in fields(self.scales)}}
