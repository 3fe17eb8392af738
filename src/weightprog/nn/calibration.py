"""The periphery's ranges, calibrated on a digital run (percentiles of |input| and |output| per layer,
tile or column), and the ADC clipping counted while the periphery is attached."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import torch
import torch.nn.functional as F

from . import crossbar as xb
from .discover import AnalogWeight
from .periphery import Periphery

T = TypeVar("T")


_SAMPLES_PER_CALL = 1 << 16   # |x| values kept per forward call for the percentile


_SAMPLES_MAX = 1 << 22        # torch.quantile handles at most 16M values


_ROWS_PER_CALL = 256          # at least this many output vectors kept per call for per-column ranges


_TOP = 256                    # largest |outputs| kept per column for per-column and per-tile ranges


def _keep(samples: list, x: torch.Tensor) -> None:
    flat = x.detach().abs().reshape(-1)
    stride = max(1, flat.numel() // _SAMPLES_PER_CALL)
    samples.append(flat[::stride].float().cpu())


def _percentile(samples: list, q: float) -> float:
    values = torch.cat(samples) if samples else torch.zeros(1)
    if values.numel() > _SAMPLES_MAX:
        values = values[:: -(-values.numel() // _SAMPLES_MAX)]
    bound = float(torch.quantile(values, q / 100.0))
    return bound if bound > 0 else float(values.max()) or 1.0


class _Columns:
    """|output| per column in the calibration run: each column's `_TOP` largest values exactly (enough
    for a 99.99th percentile of up to ~2.5M outputs per column or tile), and a strided sample of the
    output vectors for percentiles deeper than that."""

    def __init__(self) -> None:
        self.top: torch.Tensor | None = None
        self.count = 0
        self.sample: list[torch.Tensor] = []

    def add(self, y: torch.Tensor, channel: int) -> None:
        rows = y.detach().abs().movedim(channel, -1)
        rows = rows.reshape(-1, rows.shape[-1]).float()
        self.count += rows.shape[0]
        keep = max(_ROWS_PER_CALL, _SAMPLES_PER_CALL // rows.shape[1])
        self.sample.append(rows[:: max(1, rows.shape[0] // keep)].cpu())
        both = rows if self.top is None else torch.cat([self.top.to(rows.device), rows])
        self.top = both.topk(min(_TOP, both.shape[0]), dim=0).values.cpu()

    def bounds(self, q: float, unit: str, tile_cols: int, fallback: float) -> torch.Tensor:
        """(columns,) the q-th percentile of |output| per column, or per output tile repeated over its
        columns (tiles cut the columns evenly into as few groups of at most `tile_cols` as fit, as the
        crossbar mapping does); as torch.quantile interpolates. A column or tile without nonzero
        outputs gets `fallback`."""
        top = cast(torch.Tensor, self.top)
        cols = top.shape[1]
        width = 1 if unit == "column" else xb.tile_width(cols, tile_cols)
        bounds = torch.empty(cols)
        sample = None
        for a in range(0, cols, width):
            rank = (self.count * min(width, cols - a) - 1) * (1 - q / 100.0)  # from the top, as quantile's
            lo, hi = math.floor(rank), math.ceil(rank)
            if hi < top.shape[0]:  # every value above the percentile is among the columns' largest
                best = top[:, a:a + width].reshape(-1).sort(descending=True).values
                bounds[a:a + width] = float(best[lo] + (best[hi] - best[lo]) * (rank - lo))
            else:
                if sample is None:
                    sample = torch.cat(self.sample)
                    sample = sample[:: -(-sample.numel() // _SAMPLES_MAX)]
                bounds[a:a + width] = float(torch.quantile(sample[:, a:a + width].reshape(-1), q / 100.0))
        peak = top[0]
        if unit != "column":
            peak = torch.cat([top[0, a:a + width].max().expand(min(width, cols - a)) for a in range(0, cols, width)])
        bounds = torch.where(bounds > 0, bounds, peak)
        return torch.where(bounds > 0, bounds, torch.full_like(bounds, fallback))


@dataclass
class Ranges:
    """Calibrated per-module input and output bounds.

    Parameters
    ----------
    inputs, outputs
        Bound of |x| per module (the layer's), keyed by `id(module)`.
    columns
        (output features,) bound per column, or per output tile repeated over its columns, keyed
        by `id(module)` (only for a periphery whose `output_range` is `tile` or `column`); with
        digitised input tiles, (input tiles, output features).
    splits
        The input tiles (start, stop) of each module whose partial sums are digitised apart.
    """

    inputs: dict[int, float]
    outputs: dict[int, float]
    columns: dict[int, torch.Tensor] = field(default_factory=dict)
    splits: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerClipping:
    """How many outputs of one layer the ADC clipped.

    Parameters
    ----------
    layer
        The module's name.
    outputs
        Outputs digitised (all realisations and times).
    clipped
        Of those, how many were beyond the ADC range (and clipped to it).
    """

    layer: str
    outputs: int
    clipped: int

    @property
    def fraction(self) -> float:
        """Clipped / digitised (0 when nothing was digitised)."""
        return self.clipped / self.outputs if self.outputs else 0.0

    def to_dict(self) -> dict:
        return {"layer": self.layer, "outputs": self.outputs, "clipped": self.clipped, "fraction": self.fraction}


class Clipping:
    """Counts ADC clipping per layer while a periphery is attached (pass it to `attached`)."""

    def __init__(self) -> None:
        self._counts: dict[int, list[int]] = {}

    def add(self, key: int, clipped: int, outputs: int) -> None:
        """Count `clipped` of `outputs` digitised outputs of one matrix product.

        Parameters
        ----------
        key
            `id` of the analog module, or of the weight for a recurrent module's products.
        clipped, outputs
            Outputs beyond the ADC range, and outputs digitised.
        """
        count = self._counts.setdefault(key, [0, 0])
        count[0] += clipped
        count[1] += outputs

    def layers(self, weights: list[AnalogWeight]) -> list[LayerClipping]:
        """One entry per counted module (or recurrent weight) of `weights`, in their order.

        Parameters
        ----------
        weights
            The analog weights the periphery was attached to.

        Returns
        -------
        list of LayerClipping
        """
        names: dict[int, str] = {}
        for w in weights:
            names.setdefault(id(w.module), w.module_name or "(model)")
            names.setdefault(id(w.param), w.name)
        return [LayerClipping(names[k], self._counts[k][1], self._counts[k][0]) for k in names if k in self._counts]


def _recording(module: torch.nn.Module, record: Callable) -> Callable:
    """A recurrent module's own forward (its output kept), its products also recorded by `record` on
    a step-by-step rerun."""
    own = module.forward

    def forward(*args, **kwargs):
        out = own(*args, **kwargs)
        with torch.no_grad():
            xb.recurrent_forward(module, args, kwargs, record)
        return out
    return forward


def calibrate(weights: list[AnalogWeight], periphery: Periphery, run: Callable[[], T],
              tile_cols: int = 512, tile_rows: int = 512) -> tuple[T, Ranges]:
    """Call `run()` (a digital evaluation) with recording hooks; return (run's result, Ranges).

    The run itself is unchanged. With dynamic input scaling, the output ranges are those of the
    outputs of the scaled inputs (each output divided by its input vector's max |x|).

    Parameters
    ----------
    weights
        The analog weights whose modules are recorded.
    periphery
        Gives the percentiles, the input scaling and the output-range unit.
    run
        Runs the model digitally (e.g. the user's evaluation).
    tile_cols
        Outputs per crossbar tile (the mapping's `tile_cols`), for `output_range="tile"`.
    tile_rows
        Inputs per crossbar tile (the mapping's `tile_rows`), for `input_tiles="digitised"`.

    Returns
    -------
    tuple
        What `run` returned, and the calibrated `Ranges`.
    """
    ins: dict[int, list] = {}
    outs: dict[int, list] = {}
    rows: dict[int, _Columns] = {}
    parts: dict[int, list[_Columns]] = {}
    splits: dict[int, list[tuple[int, int]]] = {}
    scales: dict[int, torch.Tensor] = {}
    per_column = periphery.output_range != "layer"
    split = periphery.input_tiles == "digitised"

    def keep_parts(key: int, cuts: list[tuple[int, int]], partial: Callable[[int, int], torch.Tensor],
                   scale: torch.Tensor | None, channel: int) -> None:
        splits[key] = cuts
        columns = parts.setdefault(key, [_Columns() for _ in cuts])
        for record_j, (a, b) in zip(columns, cuts):
            y = partial(a, b)
            record_j.add(y / scale if scale is not None else y, channel)

    def pre(module, kind):
        def hook(_, args):
            for i, x in enumerate(args[:xb.analog_inputs(kind, args)]):
                if isinstance(x, torch.Tensor):
                    _keep(ins.setdefault(id(module), []), x)
                    if i == 0 and periphery.dynamic and kind in xb.FULL_KINDS and x.is_floating_point():
                        scales[id(module)] = xb.input_scale(module, kind, x)
        return hook

    def post(module, kind):
        cuts = xb.module_cuts(module, kind, tile_rows) if split else []

        def hook(_, args, out):
            bias = xb.bias_view(module, kind, out)
            y = out if bias is None else out - bias
            scale = scales.pop(id(module), None)
            if scale is not None:
                y = y / scale
            _keep(outs.setdefault(id(module), []), y)
            if len(cuts) > 1:
                with torch.no_grad():
                    keep_parts(id(module), cuts, lambda a, b: xb.partial(module, kind, args[0], a, b), scale,
                               xb.channel_dim(module, kind, out))
            elif per_column:
                rows.setdefault(id(module), _Columns()).add(y, xb.channel_dim(module, kind, out))
        return hook

    def record(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        key = id(weight)
        _keep(ins.setdefault(key, []), x)
        y = F.linear(x, weight)
        scale = xb.last_dim_scale(x) if periphery.dynamic else None
        scaled = y / scale if scale is not None else y
        _keep(outs.setdefault(key, []), scaled)
        cuts = xb.input_cuts(weight.shape[1], tile_rows) if split else []
        if len(cuts) > 1:
            keep_parts(key, cuts, lambda a, b: F.linear(x[..., a:b], weight[:, a:b]), scale, y.dim() - 1)
        elif per_column:
            rows.setdefault(key, _Columns()).add(scaled, scaled.dim() - 1)
        return y

    products = periphery.recurrent == "products"
    with xb.hooks(weights, pre, post,
                  lambda module, kind: _recording(module, record) if products and kind == "rnn" else None):
        result = run()
    ranges = Ranges({k: _percentile(v, periphery.input_percentile) for k, v in ins.items()},
                    {k: _percentile(v, periphery.output_percentile) for k, v in outs.items()})
    for k, v in rows.items():
        ranges.columns[k] = v.bounds(periphery.output_percentile, periphery.output_range, tile_cols,
                                     ranges.outputs[k])
    for k, cols in parts.items():
        ranges.columns[k] = torch.stack([c.bounds(periphery.output_percentile, periphery.output_range, tile_cols,
                                                  ranges.outputs[k]) for c in cols])
        ranges.splits[k] = splits[k]
    return result, ranges
