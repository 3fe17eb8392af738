"""The periphery attached to a model: converters, output noise and input scaling as forward hooks, with
ranges calibrated (`calibration.calibrate`) or, in hardware-aware training, tracked (`Tracking`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F

from ..errors import WeightprogError
from . import crossbar as xb
from . import fused
from . import noise as output_noise
from .calibration import Clipping, Ranges
from .discover import AnalogWeight
from .periphery import Periphery, quantise


class Tracking:
    """Ranges tracked while a model trains, instead of calibrated (pass it to `attached`).

    Each bound (input per layer; output per layer, tile or column as the periphery's `output_range`
    says, per input tile where they are digitised apart) is a moving average of the batch's max |x|:
    it starts at the first batch's and moves by (1 − `momentum`) toward each later one while
    `training()` is true, and stays put otherwise. Output noise is added only while training, as
    hardware-aware training does it (Joshi et al., Nat. Commun. 2020).

    Parameters
    ----------
    training
        Whether the model trains now (asked at every forward).
    momentum
        Weight of the previous bound in the moving average, in [0, 1).
    tile_cols, tile_rows
        Outputs and inputs of a crossbar tile, for per-tile ranges and digitised input tiles.
    """

    def __init__(self, training: Callable[[], bool] = lambda: True, momentum: float = 0.99,
                 tile_cols: int = 512, tile_rows: int = 512) -> None:
        self.training, self.momentum = training, momentum
        self.tile_cols, self.tile_rows = tile_cols, tile_rows

    def scalar(self, table: dict[int, float], key: int, peak: float) -> float:
        """The bound of `key` in `table` after a batch whose max |x| is `peak` (updated in place).

        Parameters
        ----------
        table
            Bounds by key (`Ranges.inputs` or `Ranges.outputs`).
        key
            `id` of the module, or of the weight of a recurrent product.
        peak
            This batch's max |x|.

        Returns
        -------
        float
        """
        bound = table.setdefault(key, peak)
        if self.training():
            bound = table[key] = max(self.momentum * bound + (1 - self.momentum) * peak, 1e-8)
        return bound

    def tensor(self, table: dict[int, torch.Tensor], key: int, peak: torch.Tensor) -> torch.Tensor:
        """`scalar` for bounds per column (`Ranges.columns`): `peak` holds this batch's max |x| of each.

        Parameters
        ----------
        table, key
            As `scalar`'s.
        peak
            This batch's max |x| per column (or per input tile and column).

        Returns
        -------
        torch.Tensor
        """
        bound = table.setdefault(key, peak.clamp_min(1e-8))
        if self.training():
            bound = table[key] = (self.momentum * bound + (1 - self.momentum) * peak).clamp_min(1e-8)
        return bound


@contextmanager
def attached(weights: list[AnalogWeight], periphery: Periphery, ranges: Ranges | None,
             generator: torch.Generator | None = None, clipping: Clipping | None = None,
             tracking: Tracking | None = None) -> Iterator[None]:
    """Run the model through the periphery inside the block (nothing is attached when ideal).

    The quantisers pass gradients straight through (`quantise`) and the dynamic input scales are
    constants to autograd, so a model also trains through the periphery (hardware-aware training,
    with `tracking`).

    Parameters
    ----------
    weights
        The analog weights whose modules get the converters and noise.
    periphery
        The periphery.
    ranges
        From `calibrate` with the same periphery (needed unless the periphery is ideal); with
        `tracking`, the ranges tracked so far (may start empty), updated in place.
    generator
        Source of the output noise.
    clipping
        Counts the outputs the ADC clips, per module (None: not counted).
    tracking
        Track the ranges on the data that passes (training) instead of using calibrated ones.

    Raises
    ------
    WeightprogError
        For a non-ideal periphery without ranges, or without the per-column ranges its
        `output_range` needs.
    """
    if periphery.is_ideal:
        yield
        return
    if ranges is None:
        raise WeightprogError("periphery: calibrate input/output ranges before attaching a non-ideal periphery")
    if tracking is None and periphery.output_range != "layer" and any(k not in ranges.columns for k in ranges.outputs):
        raise WeightprogError(f"periphery: output_range={periphery.output_range!r} needs ranges calibrated "
                              f"with that periphery (per-column ranges are missing)")
    h = PeripheryHooks(weights, periphery, ranges, generator, clipping, tracking)
    with xb.hooks(weights, h.pre, h.post, h.replace):
        yield


class PeripheryHooks:
    """The forward hooks `attached` puts on a model's analog modules, and the state they share:
    the input scales a pre hook hands to its post hook, the ranges (calibrated, or tracked and
    updated in place), and whether tracked ranges move (not while a recurrent module runs on the
    ranges of its whole sequence). Arguments as `attached`'s; `ranges` checked there."""

    def __init__(self, weights: list[AnalogWeight], periphery: Periphery, ranges: Ranges,
                 generator: torch.Generator | None, clipping: Clipping | None, tracking: Tracking | None) -> None:
        self.periphery, self.ranges, self.generator = periphery, ranges, generator
        self.clipping, self.tracking = clipping, tracking
        self.per_column = periphery.output_range != "layer"
        self.split = tracking is not None and periphery.input_tiles == "digitised"
        # calibrated ranges moved once onto the weights' device and dtype, not at every product
        where = weights[0].param
        self.columns = {} if tracking is not None else {
            k: v.to(device=where.device, dtype=where.dtype) for k, v in ranges.columns.items()}
        self.scales: dict[int, torch.Tensor] = {}
        self.moving = tracking is not None

    # --- hook factories (crossbar.hooks calls them once per module) ----------------------------
    def pre(self, module: torch.nn.Module, kind: str) -> Callable:
        """The DAC before the module: its analog inputs quantised (and scaled, if dynamic)."""
        return lambda _, args: self.inputs(module, kind, args)

    def post(self, module: torch.nn.Module, kind: str) -> Callable:
        """Output noise and the ADC after the module (its input tiles recorded first, if split)."""
        if self.split:
            self.cut(id(module), xb.module_cuts(module, kind, cast(Tracking, self.tracking).tile_rows))
        return lambda _, args, out: self.outputs(module, kind, args, out)

    def replace(self, module: torch.nn.Module, kind: str) -> Callable | None:
        """The forward that stands in for the module's own, or None (hooked instead): a recurrent
        module run product by product (`recurrent="products"`); a Linear or convolution through an
        ADC, as its product without the bias, the ADC and the bias after it in one kernel (`direct`),
        where the hook would take the bias back off the module's output and add it again; a layer
        whose input tiles are digitised apart, as its tiles' products (`crossbar.tile_products`) and
        one ADC over them (`fused.adc_tiles`), where hooks would add those to the module's own
        product."""
        if kind == "rnn":
            if self.periphery.recurrent != "products":
                return None
            return lambda *args, **kwargs: self.sequence(module, args, kwargs)
        key = id(module)
        cuts = self.ranges.splits.get(key)
        if (self.tracking is not None or kind not in ("linear", "conv") or self.periphery.adc_bits is None
                or key not in self.ranges.outputs or (cuts is not None and not self.per_column)):
            return None
        own = module.forward

        def forward(*args, **kwargs):
            if kwargs:
                return self.outputs(module, kind, args, own(*args, **kwargs))
            if cuts is None:
                return self.direct(module, kind, args[0])
            parts = xb.tile_products(module, kind, args[0], cuts)
            if parts is None:
                return self.outputs(module, kind, args, own(*args))
            return self.tiles(module, kind, parts)
        return forward

    # --- what the hooks do ---------------------------------------------------------------------
    def inputs(self, module: torch.nn.Module, kind: str, args: tuple) -> tuple | None:
        periphery = self.periphery
        if periphery.dac_bits is None and not periphery.dynamic:
            return None
        n = xb.analog_inputs(kind, args)
        analog = [i for i, x in enumerate(args[:n]) if isinstance(x, torch.Tensor) and x.is_floating_point()]
        bound = None if periphery.dynamic else self.input_bound(id(module), [args[i] for i in analog])
        if bound is None and not periphery.dynamic:
            return None
        return tuple(self.dac(module, kind, x, i == 0, bound) if i in analog else x for i, x in enumerate(args))

    def dac(self, module: torch.nn.Module, kind: str, x: torch.Tensor, first: bool,
            bound: float | None) -> torch.Tensor:
        periphery, key = self.periphery, id(module)
        if not periphery.dynamic:
            return quantise(x, cast(float, bound), periphery.dac_bits) if periphery.dac_bits is not None else x
        if first and kind in xb.FULL_KINDS and periphery.dac_bits is not None and fused.usable(x):
            done = fused.dac(x, xb.scale_dims(module, kind, x), periphery.dac_bits)
            if done is not None:
                self.scales[key] = done[1]
                return done[0]
        scale = xb.input_scale(module, kind, x)
        scaled = x / scale
        if periphery.dac_bits is not None:
            scaled = quantise(scaled, 1.0, periphery.dac_bits)
        if first and kind in xb.FULL_KINDS:  # the crossbar sees the scaled input; undone after the ADC
            self.scales[key] = scale
            return scaled
        return scaled * scale  # RNN/MHA: the module's own kernel computes on the digital value

    def outputs(self, module: torch.nn.Module, kind: str, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        key, ranges = id(module), self.ranges
        scale = self.scales.pop(key, None)
        if self.tracking is None and key not in ranges.outputs and scale is None:
            return None
        bias = xb.bias_view(module, kind, out)
        y = out if bias is None else out - bias
        channel = xb.channel_dim(module, kind, out)
        cuts = ranges.splits.get(key)
        if cuts is not None and self.per_column:  # each input tile's partial sum digitised apart
            parts = xb.partials(module, kind, args[0], cuts, y)
            self.track(key, y, parts, channel)
            bounds = self.column_bounds(key, y)
            y = self.digitised(parts, [xb.per_column(module, kind, b, out) for b in bounds], key)
        elif key in ranges.outputs or self.tracking is not None:
            self.track(key, y, [y], channel)
            bound: float | torch.Tensor = ranges.outputs[key]
            if self.per_column:
                bound = xb.per_column(module, kind, self.column_bounds(key, y), out)
            y, scale = self.adc(y, bound, key, scale), None  # the scale restored by the ADC step
        if scale is not None:
            y = y * scale
        return y if bias is None else y + bias

    def direct(self, module: torch.nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
        """A layer's output from its product without the bias: noise and ADC (clipping counted), the
        input scale restored, the bias added, as `outputs` does on the module's own output."""
        key = id(module)
        y = xb.unbiased(module, kind, x)
        bound: float | torch.Tensor = self.ranges.outputs[key]
        if self.per_column:
            bound = xb.per_column(module, kind, self.column_bounds(key, y), y)
        return self.adc(y, bound, key, self.scales.pop(key, None), xb.bias_view(module, kind, y))

    def tiles(self, module: torch.nn.Module, kind: str, parts: list[torch.Tensor]) -> torch.Tensor:
        """A layer's output from its input tiles' partial sums: noise and ADC per tile (clipping
        counted), the tiles added, the input scale restored, the bias added."""
        key, periphery = id(module), self.periphery
        scale = self.scales.pop(key, None)
        bounds = self.column_bounds(key, parts[0])  # (tiles, columns)
        shape = [1] * (parts[0].dim() + 1)  # each tile's ranges stacked first
        shape[0], shape[1 + xb.channel_dim(module, kind, parts[0])] = bounds.shape
        bound = bounds.view(shape)
        seed = output_noise.seed(self.generator, parts[0].device) if periphery.output_noise > 0 else None
        y, clipped = fused.adc_tiles(parts, seed, None if seed is None else periphery.output_noise * bound, bound,
                                     cast(int, periphery.adc_bits), scale)
        if self.clipping is not None:
            self.clipping.add(key, int(clipped), len(parts) * parts[0].numel())
        bias = xb.bias_view(module, kind, y)
        return y if bias is None else y + bias

    def sequence(self, module: torch.nn.Module, args: tuple, kwargs: dict):
        tracking = self.tracking
        if tracking is not None and tracking.training():
            # the whole sequence's peaks move the ranges once, as one batch of a layer does; then
            # every step runs on them (per step, h₀ = 0 and the first steps would set them)
            seen: dict[int, list] = {}
            with torch.no_grad():
                xb.recurrent_forward(module, args, kwargs, lambda weight, x: self.record(seen, weight, x))
            for key, (x_peak, peak, columns) in seen.items():
                if not self.periphery.dynamic:
                    tracking.scalar(self.ranges.inputs, key, x_peak)
                self.move(key, peak, columns)
            self.moving = False
        try:
            return xb.recurrent_forward(module, args, kwargs, self.product, self.steps)
        finally:
            self.moving = tracking is not None

    def fused_product(self, weight: torch.Tensor, x: torch.Tensor) -> bool:
        """Whether x @ weightᵀ through the crossbar can be one kernel call (`fused.product`): dynamic
        input scales, both converters, per-column ranges, the inputs in one tile, not tracking."""
        periphery = self.periphery
        return (self.tracking is None and periphery.dynamic and periphery.dac_bits is not None
                and periphery.adc_bits is not None and self.per_column and self.product_cuts(weight) is None
                and fused.usable(x, any_size=True))

    def steps(self, mode: str, weight: torch.Tensor, bias: torch.Tensor | None, gi: torch.Tensor, h: torch.Tensor,
              c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """A recurrent direction's steps (`crossbar.Steps`) in blocks of `fused.STEP_BLOCK`, each one
        kernel call, or None (step by step): the same operations as `product` and `crossbar.cell` per
        step and the same noise seeds, drawn in step order; the gates' round-off may differ (~1e-7)."""
        if not (fused.blocks_pay(gi) and self.fused_product(weight, h)):
            return None
        periphery, key = self.periphery, id(weight)
        bound = self.column_bounds(key, h)
        noise_bound = periphery.output_noise * bound if periphery.output_noise > 0 else None
        hs = []
        for first in range(0, gi.shape[0], fused.STEP_BLOCK):
            block = gi[first:first + fused.STEP_BLOCK]
            seeds = None if noise_bound is None else output_noise.seeds(self.generator, h.device, (block.shape[0],))
            done = fused.recurrent_block(mode, block, h, c, weight, bias, seeds, noise_bound, bound,
                                         cast(int, periphery.dac_bits), cast(int, periphery.adc_bits))
            if done is None:  # compiling failed on the first block: step by step from the start
                return None
            hs.append(done[0])
            h, c = done[1], done[2]
            if self.clipping is not None:
                self.clipping.add(key, int(done[3]), block.numel())
        return torch.cat(hs), h, c

    def product(self, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x @ weightᵀ on a crossbar: DAC, the analogue product, noise and ADC, scale restored."""
        periphery, key = self.periphery, id(weight)
        if self.fused_product(weight, x):
            bound = self.column_bounds(key, x)
            seed = output_noise.seed(self.generator, x.device) if periphery.output_noise > 0 else None
            done = fused.product(x, weight, seed, None if seed is None else periphery.output_noise * bound, bound,
                                 cast(int, periphery.dac_bits), cast(int, periphery.adc_bits))
            if done is not None:
                if self.clipping is not None:
                    self.clipping.add(key, int(done[1]), done[0].numel())
                return done[0]
        scale = xb.last_dim_scale(x) if periphery.dynamic else None
        if scale is not None:
            x = x / scale
        if periphery.dac_bits is not None:
            x = quantise(x, 1.0 if scale is not None else cast(float, self.input_bound(key, [x])), periphery.dac_bits)
        cuts = self.product_cuts(weight)
        if cuts is not None:  # each input tile's partial sum digitised apart
            parts = [F.linear(x[..., a:b], weight[:, a:b]) for a, b in cuts]
            self.track(key, None, parts, -1)
            y = self.digitised(parts, list(self.column_bounds(key, x)), key)
        else:
            y = F.linear(x, weight)
            self.track(key, y, [y], -1)
            return self.adc(y, self.column_bounds(key, y) if self.per_column else self.ranges.outputs[key], key, scale)
        return y * scale if scale is not None else y

    def record(self, seen: dict[int, list], weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x @ weightᵀ digitally, keeping the max |input| and the output peaks (`output_peaks`) in `seen`."""
        scale = xb.last_dim_scale(x) if self.periphery.dynamic else None
        scaled = x / scale if scale is not None else x
        cuts = self.product_cuts(weight) or [(0, x.shape[-1])]
        parts = [F.linear(scaled[..., a:b], weight[:, a:b]) for a, b in cuts]
        peak, columns = self.output_peaks(None, parts, -1)
        kept = seen.setdefault(id(weight), [0.0, 0.0, None])
        kept[0], kept[1] = max(kept[0], float(x.abs().max())), max(kept[1], peak)
        if columns is not None:
            kept[2] = columns if kept[2] is None else torch.maximum(kept[2], columns)
        y = sum(parts[1:], parts[0])
        return y * scale if scale is not None else y

    # --- converters and ranges -----------------------------------------------------------------
    def adc(self, y: torch.Tensor, bound: float | torch.Tensor, key: int,
            scale: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Output noise (not while tracking and not training), then the ADC (clipping counted), on the
        analogue output `y`; then times the input `scale` and plus the digital `bias`, if any."""
        periphery, clipping, tracking = self.periphery, self.clipping, self.tracking
        seed = None
        if periphery.output_noise > 0 and (tracking is None or tracking.training()):
            seed = output_noise.seed(self.generator, y.device)
        if periphery.adc_bits is not None and isinstance(bound, torch.Tensor) and fused.usable(y):
            done = fused.adc(y, seed, None if seed is None else periphery.output_noise * bound, bound,
                             periphery.adc_bits, scale, bias)
            if done is not None:
                if clipping is not None:
                    clipping.add(key, int(done[1]), y.numel())
                return done[0]
        if seed is not None:  # in place: y + noise·bound, one temporary
            y = output_noise.like(y, seed).mul_(periphery.output_noise * bound).add_(y)
        if periphery.adc_bits is not None:
            if clipping is not None:  # count_nonzero: a summed bool tensor would be cast to int64 first
                clipping.add(key, int(torch.count_nonzero(y.abs() > bound)), y.numel())
            y = quantise(y, bound, periphery.adc_bits)
        y = y if scale is None else y * scale
        return y if bias is None else y + bias

    def digitised(self, parts: list[torch.Tensor], bounds: list[torch.Tensor], key: int) -> torch.Tensor:
        """The input tiles' partial sums, each through its own ADC (in order), added digitally."""
        y = self.adc(parts[0], bounds[0], key)
        for part, bound in zip(parts[1:], bounds[1:]):
            y = y + self.adc(part, bound, key)
        return y

    def input_bound(self, key: int, xs: list[torch.Tensor]) -> float | None:
        """The DAC range of `key`'s inputs `xs` (calibrated, or tracked on them)."""
        if self.tracking is not None and xs and self.moving:
            return self.tracking.scalar(self.ranges.inputs, key, max(float(x.detach().abs().max()) for x in xs))
        return self.ranges.inputs.get(key)

    def column_bounds(self, key: int, like: torch.Tensor) -> torch.Tensor:
        """`key`'s per-column (or per input tile and column) ranges on `like`'s device and dtype."""
        bounds = self.ranges.columns[key] if self.tracking is not None else self.columns[key]
        if bounds.device != like.device or bounds.dtype != like.dtype:
            bounds = bounds.to(device=like.device, dtype=like.dtype)
        return bounds

    def output_peaks(self, y: torch.Tensor | None, parts: list[torch.Tensor],
                     channel: int) -> tuple[float, torch.Tensor | None]:
        """max |output| (`y`, None: the sum of `parts`), and per column of what each ADC digitises (`parts`:
        `[y]`, or the partial sums of the input tiles) when the ranges are per column or tile."""
        full = y if y is not None else sum(parts[1:], parts[0])
        if not self.per_column:
            return float(full.detach().abs().max()), None
        tile_cols = cast(Tracking, self.tracking).tile_cols
        peaks = [xb.peaks(part, channel, self.periphery.output_range, tile_cols) for part in parts]
        return float(full.detach().abs().max()), torch.stack(peaks) if len(parts) > 1 else peaks[0]

    def track(self, key: int, y: torch.Tensor | None, parts: list[torch.Tensor], channel: int) -> None:
        """With `tracking`: update `key`'s output ranges from its output (see `output_peaks`)."""
        if self.tracking is not None and self.moving:
            self.move(key, *self.output_peaks(y, parts, channel))

    def move(self, key: int, peak: float, columns: torch.Tensor | None) -> None:
        """Move `key`'s tracked output ranges toward this batch's peaks."""
        tracking = cast(Tracking, self.tracking)
        tracking.scalar(self.ranges.outputs, key, peak)
        if columns is not None:
            tracking.tensor(self.ranges.columns, key, columns)

    def cut(self, key: int, cuts: list[tuple[int, int]]) -> None:
        """With `tracking` and digitised input tiles: record the input tiles of `key`."""
        if self.split and len(cuts) > 1:
            self.ranges.splits[key] = cuts

    def product_cuts(self, weight: torch.Tensor) -> list[tuple[int, int]] | None:
        """The input tiles of a recurrent product digitised apart (cut when first seen, with `tracking`)."""
        if self.split and id(weight) not in self.ranges.splits:
            self.cut(id(weight), xb.input_cuts(weight.shape[1], cast(Tracking, self.tracking).tile_rows))
        return self.ranges.splits.get(id(weight))
