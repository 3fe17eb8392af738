"""The periphery's element-wise chains as single fused CPU kernels (`torch.compile`).

Eager, each step of the DAC (input scale, quantiser) and of the ADC (output noise, clip count,
quantiser, scale restored) is a pass over the tensor, and on a CPU these passes cost more than the
layer's own product; fused, each chain is one pass. The kernels do the same operations in the same
order as the eager code in `attach`, so they give the same values (tests compare them), the output
noise included (`noise`: counter-based, computed inside the ADC kernel from one seed drawn from
the run's generator, instead of a separate `torch.randn` pass). Used outside autograd on large CPU
tensors, and on a recurrent layer's many small step products (`product`); other small tensors do
not repay the compilation (seconds, once per process and shape rank). A recurrent layer's steps run
`STEP_BLOCK` at a time in one call (`recurrent_block`: each step's product, ADC and gates), since
each compiled call costs ~0.1–0.2 ms on a CPU, more than a 10 × 200 step's own work. Where compiling
fails (no C++ compiler) everything stays eager.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable

import torch

from .. import aot
from . import crossbar as xb
from . import noise as output_noise

MIN_NUMEL = 1 << 18
"""Smallest tensor the fused kernels are used for."""

_broken: list[str] = []


def usable(x: torch.Tensor, any_size: bool = False) -> bool:
    """Whether `x` goes through the fused kernels (`any_size`: also below `MIN_NUMEL`, for calls
    made so often that their count of operations, not their size, is the cost)."""
    return (not _broken and x.device.type == "cpu" and (any_size or x.numel() >= MIN_NUMEL)
            and not (torch.is_grad_enabled() and x.requires_grad))


def _dac(x: torch.Tensor, dims: tuple[int, ...], levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    scale = x.abs().amax(dim=dims, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    step = 1.0 / levels
    return ((x / scale) / step).round().clamp(-levels, levels) * step, scale


def _adc(y: torch.Tensor, seed: torch.Tensor | None, noise_bound: torch.Tensor | None, bound: torch.Tensor,
         levels: int, scale: torch.Tensor | None,
         bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if seed is not None and noise_bound is not None:
        y = output_noise.like(y, seed) * noise_bound + y
    step = bound / levels
    q = (y / step).round().clamp(-levels, levels) * step
    q = q if scale is None else q * scale
    return (q if bias is None else q + bias), (y.abs() > bound).sum()


def _adc_tiles(parts: list[torch.Tensor], seed: torch.Tensor | None, noise_bound: torch.Tensor | None,
               bound: torch.Tensor, levels: int, scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    # tile t's noise is that of index t·numel + i of the tiles stacked first, one seed for all
    digitised = [_adc(y, None if seed is None else seed + t * y.numel(),
                      None if noise_bound is None else noise_bound[t], bound[t], levels, None)
                 for t, y in enumerate(parts)]
    total, clipped = digitised[0]
    for q, k in digitised[1:]:
        total, clipped = total + q, clipped + k
    return (total if scale is None else total * scale), clipped


def _product(x: torch.Tensor, weight: torch.Tensor, seed: torch.Tensor | None, noise_bound: torch.Tensor | None,
             bound: torch.Tensor, dac_levels: int, adc_levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    xq, scale = _dac(x, (x.dim() - 1,), dac_levels)
    return _adc(torch.nn.functional.linear(xq, weight), seed, noise_bound, bound, adc_levels, scale)


def _device_read(g_prog: torch.Tensor, nu: torch.Tensor, q: torch.Tensor, factors: torch.Tensor,
                 mask: torch.Tensor, drift_log: torch.Tensor, read_scale: torch.Tensor,
                 seed: torch.Tensor) -> torch.Tensor:
    # the compiled read. g_prog, nu, q: (N, 2P). Each device k of all N weights is read in turn
    # (strided loads) and the weights' sums built up in the loop: a sum over a last dimension of
    # 2P = 2–4 would leave the vector units idle (~25 % slower). Device k of weight i keeps the
    # normal of (…, 2P)'s index i·2P + k, so the values are `_whole_read`'s.
    devices = g_prog.shape[1]
    index = torch.arange(g_prog.shape[0], device=g_prog.device, dtype=torch.int32) * devices
    total = mask.new_zeros(())
    for k in range(devices):
        z = output_noise.gaussian_at(index + k, seed, g_prog.dtype)
        g = (torch.exp(nu[:, k] * -drift_log) * g_prog[:, k] * (1.0 + q[:, k] * read_scale * z)).clamp(min=0.0)
        total = total + g * factors[k]
    return total * mask


def _whole_read(g_prog: torch.Tensor, nu: torch.Tensor, q: torch.Tensor, factors: torch.Tensor,
                mask: torch.Tensor, drift_log: torch.Tensor, read_scale: torch.Tensor,
                seed: torch.Tensor) -> torch.Tensor:
    # the eager read: each operation once over all devices (`_device_read`'s loop would be 2P times
    # as many small operations)
    z = output_noise.gaussian(g_prog, seed)
    g = (torch.exp(nu * -drift_log) * g_prog * (1.0 + q * read_scale * z)).clamp(min=0.0)
    return (g * factors).sum(-1) * mask


def device_read(g_prog: torch.Tensor, nu: torch.Tensor, q: torch.Tensor, factors: torch.Tensor, mask: torch.Tensor,
                drift_log: float, read_scale: float, seed: torch.Tensor, any_size: bool = False) -> torch.Tensor:
    """Σₖ fₖ·Gₖ(t) per weight, masked: the devices' law read (`DeviceModel.read`: drift, Gaussian
    read noise, clamped at 0; the noise `noise.gaussian(g_prog, seed)`) and combined with the
    strategy's `factors`, in one pass over the device state where `usable` (eager, a network's read
    is a dozen passes over 4 devices per weight),
    else the same formula eagerly. `g_prog`, `nu`, `q`: (…, 2P); `mask`: (…); `any_size`: compiled
    below `MIN_NUMEL` too (a network whose read as a whole repays the compilation)."""
    law = (torch.tensor(drift_log, dtype=g_prog.dtype, device=g_prog.device),
           torch.tensor(read_scale, dtype=g_prog.dtype, device=g_prog.device), seed)
    if usable(g_prog, any_size):
        rows = [x.reshape(-1, x.shape[-1]) for x in (g_prog, nu, q)]
        done = _call(_device_read, *rows, factors, mask.reshape(-1), *law)
        if done is not None:
            return done.view(mask.shape)
    return _whole_read(g_prog, nu, q, factors, mask, *law)


STEP_BLOCK = 5
"""Recurrent steps per `recurrent_block` call. Unrolled in the compiled graph, so its compile time
grows with it (~15 s for 1 step, ~20–60 s for 5 on this project's 2-core VM, once per shape and
process unless torch's cache has it), while its cost per step falls (PTB's 2 × 200 LSTM, 35 steps of
10 streams: 12 ms one step a call, 6 ms five, 5.5 ms torch's own digital LSTM)."""

MIN_BLOCK_OUTPUTS = 4096
"""Smallest recurrent step product (streams × gate rows) run in blocks: smaller layers do not repay
the block's compilation."""


def _recurrent_block(mode: str, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, weight: torch.Tensor,
                     bias: torch.Tensor | None, seeds: torch.Tensor | None, live: torch.Tensor,
                     noise_bound: torch.Tensor | None, bound: torch.Tensor, dac_levels: int,
                     adc_levels: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    hs, cs, clipped = [], [], live.new_zeros(())
    for t in range(gi.shape[0]):
        gh, k = _product(h, weight, None if seeds is None else seeds[t], noise_bound, bound, dac_levels, adc_levels)
        h, c = xb.cell(mode, gi[t], gh + bias if bias is not None else gh, h, c)
        hs.append(h)
        if c is not None:  # an LSTM's cell state: the last live step's is wanted
            cs.append(c)
        clipped = clipped + k * live[t]  # padded steps (live 0) are not counted
    return torch.stack(hs), (torch.stack(cs) if cs else None), clipped


@functools.cache
def _compiled(fn: Callable, dynamic: bool) -> Callable:
    return torch.compile(fn, dynamic=dynamic)


def _call(fn: Callable, *args, dynamic: bool = True):
    """`fn` by its library built ahead of time where this process uses them (`aot`), else compiled
    (`dynamic`: one graph for all shapes of a rank); None (from then on) where compiling fails."""
    if aot.enabled():
        done = aot.run(fn, args, dynamic)
        if done is not None:
            return done
    try:
        return _compiled(fn, dynamic)(*args)
    except Exception as e:  # no compiler, unsupported platform: the eager path is always there
        _broken.append(repr(e))
        warnings.warn(f"periphery: fused kernels unavailable, running eager ({type(e).__name__})", stacklevel=3)
        return None


def compiling_seconds() -> float | None:
    """Seconds this process has spent in `torch.compile` so far (tracing, compiling, loading from
    torch's cache), from torch's own record of it; None where that record is not there (it is
    torch's internal bookkeeping, not a public interface). Nothing has compiled before dynamo is
    imported, and importing it to ask would cost a second."""
    utils = sys.modules.get("torch._dynamo.utils")
    if utils is None:
        return 0.0
    metrics = getattr(utils, "compilation_time_metrics", None)  # another torch version: None
    return None if metrics is None else float(sum(metrics.get("_compile.compile_inner", [])))


def _flat_tail(y: torch.Tensor, *others: torch.Tensor | None) -> int:
    """How many trailing dimensions of `y` (≥ 2, else 0) every one of `others` (aligned to `y` from
    the right, as broadcasting aligns them) has size 1 in, and which are laid out as one in memory:
    those can be one dimension (a view). A kernel's innermost loop runs over the last dimension with
    the vector width, the rest of it scalar: a convolution's 7–28-wide rows leave most of each row
    to the scalar tail (ResNet-32's ADC 1.5× slower than over the flattened H·W)."""
    k = y.dim() - 1  # the first dimension stays (a kernel needs an outer loop)
    for t in others:
        if t is None or t.numel() == 1:
            continue
        ones = 0
        for size in reversed(t.shape):
            if size != 1:
                break
            ones += 1
        k = min(k, ones)
    while k >= 2 and any(y.stride(i) != y.stride(i + 1) * y.shape[i + 1] for i in range(y.dim() - k, y.dim() - 1)):
        k -= 1
    return k if k >= 2 else 0


def _flattened(y: torch.Tensor, *others: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """`y` and the tensors that broadcast against it with their last `_flat_tail` dimensions as one
    (views; as they were where none can be): element i keeps its index, so its noise, and the values
    stay the same."""
    k = _flat_tail(y, *others)
    if not k:
        return y, list(others)
    return y.view(y.shape[:y.dim() - k] + (-1,)), [
        t if t is None or t.numel() == 1 or t.dim() <= k else t.reshape(t.shape[:t.dim() - k] + (1,)) for t in others]


def dac(x: torch.Tensor, dims: tuple[int, ...], bits: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x scaled by its max |x| over `dims` and quantised to `bits`, that scale), or None."""
    return _call(_dac, x, dims, 2 ** (bits - 1) - 1)


def adc(y: torch.Tensor, seed: torch.Tensor | None, noise_bound: torch.Tensor | None, bound: torch.Tensor,
        bits: int, scale: torch.Tensor | None, bias: torch.Tensor | None = None
        ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(y + noise·noise_bound quantised to `bits` in ±bound, times `scale`, plus `bias`; the count of
    its values beyond ±bound), or None. The noise is `noise.like(y, seed)` (none for a None seed)."""
    flat, (nb, b, s, bi) = _flattened(y, noise_bound, bound, scale, bias)
    done = _call(_adc, flat, seed, nb, b, 2 ** (bits - 1) - 1, s, bi)
    return None if done is None else (done[0].view(y.shape), done[1])


def product(x: torch.Tensor, weight: torch.Tensor, seed: torch.Tensor | None, noise_bound: torch.Tensor | None,
            bound: torch.Tensor, dac_bits: int, adc_bits: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """x @ weightᵀ through the crossbar in one kernel call: each row of x scaled by its max |x| and
    quantised (`dac`), the product, then `adc` with the scale restored; or None. For the small
    products of a recurrent layer's steps, where each eager operation costs more than its work."""
    return _call(_product, x, weight, seed, noise_bound, bound, 2 ** (dac_bits - 1) - 1, 2 ** (adc_bits - 1) - 1)


def adc_tiles(parts: list[torch.Tensor], seed: torch.Tensor | None, noise_bound: torch.Tensor | None,
              bound: torch.Tensor, bits: int, scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`adc` of input tiles' partial sums (one tensor per tile, of one shape and layout; one noise
    seed for all; `bound`, `noise_bound`: each tile's, stacked first), the digitised tiles added,
    then times `scale`; with the count of clipped values. Fused where `usable`, else the same
    operations eagerly."""
    levels = 2 ** (bits - 1) - 1
    done = None
    first = parts[0]
    if usable(first, any_size=True) and len(parts) * first.numel() >= MIN_NUMEL:
        flat, (nb, b, s) = _flattened(first, noise_bound, bound, scale)
        if all(p.stride() == first.stride() for p in parts):
            done = _call(_adc_tiles, [p.view(flat.shape) for p in parts], seed, nb, b, levels, s)
        else:
            done = _call(_adc_tiles, parts, seed, noise_bound, bound, levels, scale)
        done = None if done is None else (done[0].view(first.shape), done[1])
    return done if done is not None else _adc_tiles(parts, seed, noise_bound, bound, levels, scale)


def blocks_pay(gi: torch.Tensor) -> bool:
    """Whether a recurrent direction with input products `gi` (steps, streams, gate rows) runs in blocks."""
    return gi.dim() == 3 and gi.shape[0] >= STEP_BLOCK and gi.shape[1] * gi.shape[2] >= MIN_BLOCK_OUTPUTS


@functools.cache
def _live(steps: int) -> torch.Tensor:
    """1 for a block's live steps, 0 for its padding (made once per length: read, never written)."""
    return torch.tensor([1] * steps + [0] * (STEP_BLOCK - steps), dtype=torch.int64)


def recurrent_block(mode: str, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, weight: torch.Tensor,
                    bias: torch.Tensor | None, seeds: torch.Tensor | None, noise_bound: torch.Tensor | None,
                    bound: torch.Tensor, dac_bits: int, adc_bits: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor] | None:
    """Up to `STEP_BLOCK` recurrent steps in one kernel call: per step `product(h, weight)` (with
    `seeds[t]`'s output noise), `bias`, and `crossbar.cell`. `gi`: the steps' input products in step
    order. Returns (the steps' h stacked, the last h, the last c, the count of clipped outputs) or
    None. A shorter block is padded to `STEP_BLOCK` (one graph per shape, not per length)."""
    n = gi.shape[0]
    pad = STEP_BLOCK - n
    live = _live(n)
    if pad:
        gi = torch.cat([gi, gi.new_zeros((pad,) + gi.shape[1:])])
        seeds = None if seeds is None else torch.cat([seeds, seeds.new_zeros(pad)])
    done = _call(_recurrent_block, mode, gi, h, c, weight, bias, seeds, live, noise_bound, bound,
                 2 ** (dac_bits - 1) - 1, 2 ** (adc_bits - 1) - 1, dynamic=False)  # fixed shapes: a faster graph
    if done is None:
        return None
    hs, cs, clipped = done
    return hs[:n], hs[n - 1], None if cs is None else cs[n - 1], clipped
