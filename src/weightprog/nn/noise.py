"""Counter-based noise for the network path: the periphery's additive output noise (`like`) and
the devices' read noise (`gaussian`).

Each ADC call draws one 31-bit seed from the run's generator; the noise of output element i is
then a function of (seed, i) alone: a 32-bit integer hash of seed + i (Wellons' "lowbias32"),
whose four bytes are four independent uniforms on 0…255, summed and scaled to zero mean and unit
variance (Irwin–Hall with n = 4: kurtosis 2.7 instead of 3, bounded at ±3.46 σ, where a Gaussian
exceeds that bound with probability 5·10⁻⁴). It is a handful of integer operations per element,
so inside the fused ADC kernel (`fused.adc`) it costs about half of what `torch.randn` does on a
CPU (a serial Mersenne Twister plus Box–Muller: 385 ms against 531 ms of convolutions in one
ResNet-32 pass, benchmarks/RESULTS.md),
and the eager path computes the same values bit for bit, on any device. A read of a weight
tensor's devices draws one seed the same way, and device i gets a Gaussian from two such hashes.
"""

from __future__ import annotations

import math

import torch

_SCALE = 1.0 / math.sqrt(4 * (256 * 256 - 1) / 12)
"""1 / std of a sum of four uniforms on 0…255."""


def seed(generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """One seed for one ADC call's noise, from the run's generator (a 0-d int32 tensor on `device`)."""
    return seeds(generator, device, ())


def seeds(generator: torch.Generator | None, device: torch.device, shape: tuple[int, ...]) -> torch.Tensor:
    """Seeds of that shape in one draw: on a CPU generator the same values, in order, as that many
    `seed` calls (a recurrent block's steps draw theirs at once)."""
    where = generator.device if generator is not None else torch.device("cpu")
    drawn = torch.randint(0, 2 ** 31 - 1, shape, generator=generator, device=where, dtype=torch.int32)
    return drawn.to(device)


def _hash(h: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int32, traced into the fused kernel (`_eager` does the same in place): the
    multiplies wrap, the right shifts are masked to act as unsigned shifts."""
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * 0x7FEB352D
    h = h ^ ((h >> 15) & 0x1FFFF)
    h = h * -0x7B935975  # 0x846CA68B as a signed 32-bit integer
    return h ^ ((h >> 16) & 0xFFFF)


def like(y: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-variance noise of y's shape, dtype and device, element i from (seed, i)."""
    if not torch.compiler.is_compiling():
        return _eager(y, seed)
    counter = torch.arange(y.numel(), device=y.device, dtype=torch.int32).view(y.shape)
    h = _hash(counter + seed)
    total = (h & 255) + ((h >> 8) & 255) + ((h >> 16) & 255) + ((h >> 24) & 255)
    return (total.to(y.dtype) - 510.0) * _SCALE


def _eager(y: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """`like`'s values in half the eager operations: in place, and the four bytes summed as bytes."""
    h = torch.arange(y.numel(), device=y.device, dtype=torch.int32).add_(seed)
    h.bitwise_xor_(h >> 16 & 0xFFFF).mul_(0x7FEB352D)
    h.bitwise_xor_(h >> 15 & 0x1FFFF).mul_(-0x7B935975)
    h.bitwise_xor_(h >> 16 & 0xFFFF)
    total = h.view(torch.uint8).view(-1, 4).sum(-1, dtype=torch.int32)
    return total.to(y.dtype).sub_(510.0).mul_(_SCALE).view(y.shape)


_SECOND = 0x2545F491
"""Mixed into a first hash to give an element its second, independent one (`gaussian`)."""


def gaussian(y: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of y's shape, dtype and device, element i from (seed, i): Box–Muller on
    two uniforms of 24 bits each, from lowbias32 of seed + i and of that hash again (so |z| ≤ 5.8,
    where a Gaussian goes beyond with probability 8·10⁻⁹). For the devices' read noise, whose law
    (docs/MODEL.md) is Gaussian; traced into the fused read (`fused.device_read`), and the same
    formula eagerly elsewhere (equal to a few float32 ulps: log and cos round differently)."""
    counter = torch.arange(y.numel(), device=y.device, dtype=torch.int32).view(y.shape)
    return gaussian_at(counter, seed, y.dtype)


def gaussian_at(counter: torch.Tensor, seed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`gaussian`'s normal of each element index in `counter` (int32), in `dtype`: the fused read
    takes a weight's devices apart, so it gives each device its index in the (…, 2P) state."""
    first = _hash(counter + seed)
    second = _hash(first ^ _SECOND)
    u1 = (((first >> 8) & 0xFFFFFF).to(dtype) + 1.0) * (1.0 / (1 << 24))  # (0, 1]: log(u1) is finite
    u2 = ((second >> 8) & 0xFFFFFF).to(dtype) * (1.0 / (1 << 24))
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
