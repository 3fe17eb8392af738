"""Optional crossbar periphery, as forward hooks: input DAC, output ADC, additive output noise.

* Input scaling `static`: inputs quantised to signed `dac_bits` levels in ±r_in, r_in a per-layer
  percentile of |input| calibrated on data (the digital run); beyond it inputs clip.
  `dynamic` (noise management "abs-max", as IBM's chips and aihwkit do it): each input vector is
  divided by its own max |x| before the DAC (so it spans ±1 and never clips), and the digitised
  output is multiplied back by that scale after the ADC. The vector is the last dimension of a
  Linear / Conv1D input; for a convolution the whole sample (an approximation of per-patch
  scaling: every patch of a sample shares one scale).
* ADC: the matrix-vector output (before the digital bias; with dynamic scaling, of the scaled
  input) quantised to `adc_bits` levels in ±r_out, r_out a percentile of |output| from the same
  run, one per layer, per output tile (the mapping's `tile_cols` outputs, cut evenly as the
  crossbar mapping cuts them) or per column (output feature); beyond it outputs clip, and the
  clipped fraction is counted (`Clipping`).
* Output noise: Gaussian, std = `output_noise` × r_out of that output (the layer's, tile's or
  column's range), added before the ADC.
* Input tiles `digitised`: a layer wider than a tile's rows has each input tile's partial sum
  noised and digitised on its own (its own ranges), the partial sums added digitally.

Linear, Conv and GPT-2 Conv1D get all of it. For RNN/LSTM/GRU and MultiheadAttention the matrix
products happen inside the module's own kernel, so only the module inputs go through the DAC;
with `recurrent="products"` an RNN/LSTM/GRU is instead run step by step in torch ops
(`_recurrent_forward`) with each matrix product through the periphery. docs/NN.md "Periphery".

Hardware-aware training attaches the same hooks (`attached` with `Tracking`): the quantisers have a
straight-through gradient and the ranges are tracked on the training batches instead of calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..errors import WeightprogError
from .discover import AnalogWeight

T = TypeVar("T")
_FULL_KINDS = ("linear", "conv", "conv1d-t")
_SAMPLES_PER_CALL = 1 << 16   # |x| values kept per forward call for the percentile
_SAMPLES_MAX = 1 << 22        # torch.quantile handles at most 16M values
_ROWS_PER_CALL = 256          # at least this many output vectors kept per call for per-column ranges
_TOP = 256                    # largest |outputs| kept per column for per-column and per-tile ranges

CHOICES: dict[str, tuple[str, ...]] = {
    "input_scaling": ("static", "dynamic"),
    "output_range": ("layer", "tile", "column"),
    "recurrent": ("inputs", "products"),
    "input_tiles": ("summed", "digitised"),
}
"""Allowed values of the Periphery's choice fields (the first is the default)."""


@dataclass(frozen=True)
class Periphery:
    """Converters and noise between the digital model and the crossbars (`PRESETS` has the named ones).

    Parameters
    ----------
    dac_bits, adc_bits
        Input (DAC) and output (ADC) resolution, 2 … 24 bits including the sign, or None for none.
    output_noise
        Std of additive output noise as a fraction of the output range it is added to.
    input_percentile, output_percentile
        Percentile of |x| in the calibration run that sets the input and output ranges.
    name
        Its name in reports.
    input_scaling
        `static` (one calibrated input range per layer) or `dynamic` (each input vector scaled by
        its own max |x| before the DAC, undone after the ADC): `CHOICES`.
    output_range
        One calibrated ADC range per `layer`, per output `tile` or per `column`: `CHOICES`.
    recurrent
        RNN/LSTM/GRU: `inputs` (only the module's input passes the DAC, as hooks reach it) or
        `products` (the module runs step by step in torch ops and every matrix product, input and
        recurrent, passes DAC, noise and ADC like a Linear layer): `CHOICES`.
    input_tiles
        A layer with more inputs than a tile has rows: `summed` (one analogue sum over all inputs
        reaches the ADC) or `digitised` (each input tile's partial sum gets its own noise, ADC and
        range, and the partial sums are added digitally, as chips do): `CHOICES`. `digitised`
        needs per-tile or per-column ranges.

    Raises
    ------
    WeightprogError
        For bits, noise, percentiles or choices out of range.
    """

    dac_bits: int | None = None
    adc_bits: int | None = None
    output_noise: float = 0.0
    """Std of additive output noise as a fraction of the output's range (1/127 ≈ one 8-bit step)."""
    input_percentile: float = 99.99
    output_percentile: float = 99.99
    name: str = "custom"
    input_scaling: str = "static"
    output_range: str = "layer"
    recurrent: str = "inputs"
    input_tiles: str = "summed"

    def __post_init__(self):
        for name, bits in (("dac_bits", self.dac_bits), ("adc_bits", self.adc_bits)):
            if bits is not None and not (isinstance(bits, int) and 2 <= bits <= 24):
                raise WeightprogError(f"periphery: {name} must be an integer from 2 to 24 or None, got {bits!r}")
        if not self.output_noise >= 0:
            raise WeightprogError(f"periphery: output_noise must be >= 0, got {self.output_noise!r}")
        for name in ("input_percentile", "output_percentile"):
            if not 0 < getattr(self, name) <= 100:
                raise WeightprogError(f"periphery: {name} must be in (0, 100]")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise WeightprogError(f"periphery: {name} must be one of {', '.join(allowed)}, "
                                      f"got {getattr(self, name)!r}")
        if self.input_tiles == "digitised" and self.output_range == "layer":
            raise WeightprogError("periphery: input_tiles='digitised' needs output_range 'tile' or 'column'")

    @property
    def is_ideal(self) -> bool:
        """No converters and no output noise: the model runs on the programmed weights alone."""
        return self.dac_bits is None and self.adc_bits is None and self.output_noise == 0

    @property
    def dynamic(self) -> bool:
        """Whether input vectors are scaled by their own max |x| (`input_scaling="dynamic"`)."""
        return self.input_scaling == "dynamic"

    def to_dict(self) -> dict:
        return asdict(self)


_AIHWKIT_NOISE = 0.06 / 12
"""aihwkit's default output noise (0.06) relative to its default output bound (12): 0.5 % of the range."""

PRESETS = {
    "ideal": Periphery(name="ideal"),
    "standard": Periphery(dac_bits=8, adc_bits=8, output_noise=1 / 127, name="standard"),
    # the converters of `standard` without its output noise, which alone takes MiniLM to chance
    # and PTB from perplexity 152 to 162 even on ideal devices (docs/RESULTS.md)
    "io8": Periphery(dac_bits=8, adc_bits=8, output_noise=0.0, name="io8"),
    # as IBM's chips and aihwkit run tiles (docs/NN.md "Periphery"): abs-max input scaling, 7-bit DAC
    # and 9-bit ADC (aihwkit inp_res 1/(2^7−2), out_res 1/(2^9−2)), noise 0.5 % of the range
    "chip": Periphery(dac_bits=7, adc_bits=9, output_noise=_AIHWKIT_NOISE, name="chip",
                      input_scaling="dynamic", output_range="column", recurrent="products",
                      input_tiles="digitised"),
    "chip-tile": Periphery(dac_bits=7, adc_bits=9, output_noise=_AIHWKIT_NOISE, name="chip-tile",
                           input_scaling="dynamic", output_range="tile", recurrent="products",
                           input_tiles="digitised"),
    # `standard`'s converters and noise (8/8 bits, 1/127 of the range), run the way chips run them
    "chip-8bit": Periphery(dac_bits=8, adc_bits=8, output_noise=1 / 127, name="chip-8bit",
                           input_scaling="dynamic", output_range="column", recurrent="products",
                           input_tiles="digitised"),
}


def get_periphery(spec: str | Periphery | None) -> Periphery:
    """A periphery from a preset name (`PRESETS`), as is, or `ideal` for None.

    Parameters
    ----------
    spec
        A preset name, a `Periphery`, or None.

    Returns
    -------
    Periphery

    Raises
    ------
    WeightprogError
        For an unknown preset.
    """
    if spec is None:
        return PRESETS["ideal"]
    if isinstance(spec, Periphery):
        return spec
    if spec not in PRESETS:
        raise WeightprogError(f"periphery: unknown preset {spec!r}; use one of {', '.join(PRESETS)}")
    return PRESETS[spec]


def quantise(x: torch.Tensor, bound: float | torch.Tensor, bits: int) -> torch.Tensor:
    """Signed uniform quantisation to 2^(bits−1)−1 levels each side of 0 in ±bound, clipping beyond.

    Parameters
    ----------
    x
        Values to quantise.
    bound
        The range ±bound (> 0): a number, or a tensor that broadcasts against `x` (one per column).
    bits
        Resolution, including the sign.

    Returns
    -------
    torch.Tensor
        The quantised values, x's shape. The gradient passes straight through (the identity, as
        hardware-aware training takes it), so that a model trains through the converters.
    """
    return cast(torch.Tensor, _Quantise.apply(x, bound, bits))


class _Quantise(torch.autograd.Function):
    """`quantise`'s values with a straight-through gradient (identity, also where it clips)."""

    @staticmethod
    def forward(ctx, x, bound, bits):
        levels = 2 ** (bits - 1) - 1
        step = bound / levels
        return (x / step).round().clamp(-levels, levels) * step

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def _modules(weights: list[AnalogWeight]) -> list[tuple[nn.Module, str]]:
    """Each module carrying analog weights once, with its kind."""
    seen, out = set(), []
    for w in weights:
        if id(w.module) not in seen:
            seen.add(id(w.module))
            out.append((w.module, w.kind))
    return out


def _spatial(module: nn.Module) -> int:
    """Spatial dimensions of a convolution (torch's stubs type module attributes as Tensor | Module)."""
    return len(cast(tuple[int, ...], module.kernel_size))


def _channel_dim(module: nn.Module, kind: str, out: torch.Tensor) -> int:
    """The output-feature (column) dimension of a module's output."""
    return out.dim() - _spatial(module) - 1 if kind == "conv" else out.dim() - 1


def _per_column(module: nn.Module, kind: str, values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """One value per output feature, viewed to broadcast against `out`."""
    if kind == "conv":
        return values.view((-1,) + (1,) * _spatial(module))
    return values


def _bias_view(module: nn.Module, kind: str, out: torch.Tensor) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return None
    return _per_column(module, kind, bias, out)


def _input_scale(module: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """max |x| of each input vector (kept dims; 1 for an all-zero vector): the last dimension, or
    each sample of a convolution (all dims after the batch one)."""
    if kind != "conv":
        return _last_dim_scale(x)
    batched = x.dim() == _spatial(module) + 2
    scale = x.detach().abs().amax(dim=tuple(range(1 if batched else 0, x.dim())), keepdim=True)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _last_dim_scale(x: torch.Tensor) -> torch.Tensor:
    """max |x| over the last dimension (kept; 1 for an all-zero vector)."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _input_cuts(inputs: int, tile_rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each input tile: as few tiles of at most `tile_rows` as fit, cut evenly."""
    width = -(-inputs // -(-inputs // tile_rows))
    return [(a, min(a + width, inputs)) for a in range(0, inputs, width)]


def _module_cuts(module: nn.Module, kind: str, tile_rows: int) -> list[tuple[int, int]]:
    """Input tiles of a module's product: cuts of the input features (Linear, Conv1D), or of a
    convolution's input channels (its in·k crossbar rows cut at channel boundaries, as many tiles as
    the rows need); a grouped convolution is one tile (not split)."""
    weight = cast(torch.Tensor, module.weight)
    if kind == "linear":
        return _input_cuts(weight.shape[1], tile_rows)
    if kind == "conv1d-t":
        return _input_cuts(weight.shape[0], tile_rows)
    channels = weight.shape[1]
    if cast(int, module.groups) != 1:
        return [(0, channels)]
    tiles = -(-weight[0].numel() // tile_rows)
    return _input_cuts(channels, -(-channels // tiles))


def _partial(module: nn.Module, kind: str, x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """The module's product (no bias) over inputs a:b only: one input tile's partial sum."""
    weight = cast(torch.Tensor, module.weight)
    if kind == "linear":
        return F.linear(x[..., a:b], weight[:, a:b])
    if kind == "conv1d-t":
        return x[..., a:b] @ weight[a:b]
    channel = x.dim() - _spatial(module) - 1
    conv = cast(Callable[..., torch.Tensor], module._conv_forward)
    return conv(x.narrow(channel, a, b - a), weight[:, a:b], None)


def _analog_inputs(kind: str, args: tuple) -> int:
    """How many leading positional inputs go through the DAC (MHA: query, key, value)."""
    return min(3 if kind == "mha" else 1, len(args))


Product = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`product(weight, x)`: x @ weightᵀ on a crossbar (through the periphery, or recorded)."""


def _recurrent_forward(module: nn.Module, args: tuple, kwargs: dict, product: Product):
    """What an RNN/LSTM/GRU module returns for these inputs, computed step by step in torch ops
    with every matrix product (input and recurrent, each layer and direction) done by `product`.

    Raises
    ------
    WeightprogError
        For packed sequences or an LSTM with projections.
    """
    rnn = cast(nn.RNNBase, module)
    x = args[0]
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    if isinstance(x, PackedSequence) or int(getattr(rnn, "proj_size", 0)):
        raise WeightprogError("periphery: recurrent='products' supports RNN/LSTM/GRU without packed sequences "
                              "or LSTM projections; use recurrent='inputs'")
    lstm, gru = rnn.mode == "LSTM", rnn.mode == "GRU"
    batched = x.dim() == 3
    if not batched:
        x = x.unsqueeze(1)
    elif rnn.batch_first:
        x = x.transpose(0, 1)
    dirs, size = 2 if rnn.bidirectional else 1, rnn.hidden_size
    zeros = x.new_zeros(rnn.num_layers * dirs, x.shape[1], size)
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (zeros, zeros if lstm else None)
    if not batched and hx is not None:
        h0, c0 = h0.unsqueeze(1), (c0.unsqueeze(1) if c0 is not None else None)
    act = torch.tanh if rnn.mode != "RNN_RELU" else torch.relu
    h_n, c_n = [], []
    layer_in = x
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
            b_ih = getattr(rnn, "bias_ih" + suffix) if rnn.bias else None
            b_hh = getattr(rnn, "bias_hh" + suffix) if rnn.bias else None
            gi = product(w_ih, layer_in)
            gi = gi + b_ih if b_ih is not None else gi
            h = h0[layer * dirs + d]
            c = c0[layer * dirs + d] if c0 is not None else None
            seq: list[torch.Tensor] = [h] * x.shape[0]
            for t in (range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])):
                gh = product(w_hh, h)
                gh = gh + b_hh if b_hh is not None else gh
                if c is not None:  # LSTM
                    i, f, g, o = (gi[t] + gh).chunk(4, -1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                elif gru:
                    (ir, iz, in_), (hr, hz, hn) = gi[t].chunk(3, -1), gh.chunk(3, -1)
                    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                    h = (1 - z) * torch.tanh(in_ + r * hn) + z * h
                else:
                    h = act(gi[t] + gh)
                seq[t] = h
            outs.append(torch.stack(seq))
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, -1) if dirs == 2 else outs[0]
        if rnn.training and rnn.dropout > 0 and layer < rnn.num_layers - 1:
            layer_in = F.dropout(layer_in, rnn.dropout)
    out, hidden = layer_in, torch.stack(h_n)
    cell = torch.stack(cast(list[torch.Tensor], c_n)) if lstm else None
    if not batched:
        out, hidden = out.squeeze(1), hidden.squeeze(1)
        cell = cell.squeeze(1) if cell is not None else None
    elif rnn.batch_first:
        out = out.transpose(0, 1)
    return out, ((hidden, cell) if lstm else hidden)


@contextmanager
def _hooks(weights: list[AnalogWeight], pre, post, recurrent=None) -> Iterator[None]:
    """Attach `pre`/`post` hook factories (and `recurrent`, a forward-hook factory with kwargs that
    replaces the pre hook of RNN/LSTM/GRU modules when given) for the block."""
    handles = []
    # Hooks must see every projection: the fused transformer fast path would bypass them.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for module, kind in _modules(weights):
            if kind == "rnn" and recurrent is not None:
                handles.append(module.register_forward_hook(recurrent(module), with_kwargs=True))
                continue
            handles.append(module.register_forward_pre_hook(pre(module, kind)))
            if kind in _FULL_KINDS:
                handles.append(module.register_forward_hook(post(module, kind)))
        yield
    finally:
        for h in handles:
            h.remove()
        torch.backends.mha.set_fastpath_enabled(fastpath)


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
        width = 1 if unit == "column" else _tile_width(cols, tile_cols)
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
            for i, x in enumerate(args[:_analog_inputs(kind, args)]):
                if isinstance(x, torch.Tensor):
                    _keep(ins.setdefault(id(module), []), x)
                    if i == 0 and periphery.dynamic and kind in _FULL_KINDS and x.is_floating_point():
                        scales[id(module)] = _input_scale(module, kind, x)
        return hook

    def post(module, kind):
        cuts = _module_cuts(module, kind, tile_rows) if split else []

        def hook(_, args, out):
            bias = _bias_view(module, kind, out)
            y = out if bias is None else out - bias
            scale = scales.pop(id(module), None)
            if scale is not None:
                y = y / scale
            _keep(outs.setdefault(id(module), []), y)
            if len(cuts) > 1:
                with torch.no_grad():
                    keep_parts(id(module), cuts, lambda a, b: _partial(module, kind, args[0], a, b), scale,
                               _channel_dim(module, kind, out))
            elif per_column:
                rows.setdefault(id(module), _Columns()).add(y, _channel_dim(module, kind, out))
        return hook

    def record(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        key = id(weight)
        _keep(ins.setdefault(key, []), x)
        y = F.linear(x, weight)
        scale = _last_dim_scale(x) if periphery.dynamic else None
        scaled = y / scale if scale is not None else y
        _keep(outs.setdefault(key, []), scaled)
        cuts = _input_cuts(weight.shape[1], tile_rows) if split else []
        if len(cuts) > 1:
            keep_parts(key, cuts, lambda a, b: F.linear(x[..., a:b], weight[:, a:b]), scale, y.dim() - 1)
        elif per_column:
            rows.setdefault(key, _Columns()).add(scaled, scaled.dim() - 1)
        return y

    def recurrent(module):
        def hook(_, args, kwargs, out):  # recorded on a step-by-step rerun; the module's own output is kept
            with torch.no_grad():
                _recurrent_forward(module, args, kwargs, record)
        return hook

    with _hooks(weights, pre, post, recurrent if periphery.recurrent == "products" else None):
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


def _tile_width(cols: int, tile_cols: int) -> int:
    """Columns per output tile: as few tiles of at most `tile_cols` as fit, cut evenly (as the mapping does)."""
    return -(-cols // -(-cols // tile_cols))


def _peaks(y: torch.Tensor, channel: int, unit: str, tile_cols: int) -> torch.Tensor:
    """(columns,) max |y| of each column (`unit="column"`), or of each output tile repeated over its columns."""
    rows = y.detach().abs().movedim(channel, -1)
    peak = rows.reshape(-1, rows.shape[-1]).amax(0)
    if unit == "column":
        return peak
    cols, width = peak.numel(), _tile_width(peak.numel(), tile_cols)
    return torch.cat([peak[a:a + width].max().expand(min(width, cols - a)) for a in range(0, cols, width)])


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
    per_column = periphery.output_range != "layer"
    if tracking is None and per_column and any(k not in ranges.columns for k in ranges.outputs):
        raise WeightprogError(f"periphery: output_range={periphery.output_range!r} needs ranges calibrated "
                              f"with that periphery (per-column ranges are missing)")
    split = tracking is not None and periphery.input_tiles == "digitised"
    scales: dict[int, torch.Tensor] = {}
    moving = [tracking is not None]  # False while a recurrent module runs on the ranges of its whole sequence

    def input_bound(key: int, xs: list[torch.Tensor]) -> float | None:
        """The DAC range of `key`'s inputs `xs` (calibrated, or tracked on them)."""
        if tracking is not None and xs and moving[0]:
            return tracking.scalar(ranges.inputs, key, max(float(x.detach().abs().max()) for x in xs))
        return ranges.inputs.get(key)

    def output_peaks(y: torch.Tensor | None, parts: list[torch.Tensor],
                     channel: int) -> tuple[float, torch.Tensor | None]:
        """max |output| (`y`, None: the sum of `parts`), and per column of what each ADC digitises (`parts`:
        `[y]`, or the partial sums of the input tiles) when the ranges are per column or tile."""
        full = y if y is not None else sum(parts[1:], parts[0])
        if not per_column:
            return float(full.detach().abs().max()), None
        peaks = [_peaks(part, channel, periphery.output_range, cast(Tracking, tracking).tile_cols) for part in parts]
        return float(full.detach().abs().max()), torch.stack(peaks) if len(parts) > 1 else peaks[0]

    def move(key: int, peak: float, columns: torch.Tensor | None) -> None:
        """Move `key`'s tracked output ranges toward this batch's peaks."""
        cast(Tracking, tracking).scalar(ranges.outputs, key, peak)
        if columns is not None:
            cast(Tracking, tracking).tensor(ranges.columns, key, columns)

    def track(key: int, y: torch.Tensor | None, parts: list[torch.Tensor], channel: int) -> None:
        """With `tracking`: update `key`'s output ranges from its output (see `output_peaks`)."""
        if tracking is not None and moving[0]:
            move(key, *output_peaks(y, parts, channel))

    def cut(key: int, cuts: list[tuple[int, int]]) -> None:
        """With `tracking` and digitised input tiles: record the input tiles of `key`."""
        if split and len(cuts) > 1:
            ranges.splits[key] = cuts

    def pre(module, kind):
        key = id(module)

        def dac(x: torch.Tensor, first: bool, bound: float | None) -> torch.Tensor:
            if not periphery.dynamic:
                return quantise(x, cast(float, bound), periphery.dac_bits) if periphery.dac_bits is not None else x
            scale = _input_scale(module, kind, x)
            scaled = x / scale
            if periphery.dac_bits is not None:
                scaled = quantise(scaled, 1.0, periphery.dac_bits)
            if first and kind in _FULL_KINDS:  # the crossbar sees the scaled input; undone after the ADC
                scales[key] = scale
                return scaled
            return scaled * scale  # RNN/MHA: the module's own kernel computes on the digital value

        def hook(_, args):
            if periphery.dac_bits is None and not periphery.dynamic:
                return None
            n = _analog_inputs(kind, args)
            analog = [i for i, x in enumerate(args[:n]) if isinstance(x, torch.Tensor) and x.is_floating_point()]
            bound = None if periphery.dynamic else input_bound(key, [args[i] for i in analog])
            if bound is None and not periphery.dynamic:
                return None
            return tuple(dac(x, i == 0, bound) if i in analog else x for i, x in enumerate(args))
        return hook

    def post(module, kind):
        key = id(module)
        if split:
            cut(key, _module_cuts(module, kind, cast(Tracking, tracking).tile_rows))

        def hook(_, args, out):
            scale = scales.pop(key, None)
            if tracking is None and key not in ranges.outputs and scale is None:
                return None
            bias = _bias_view(module, kind, out)
            y = out if bias is None else out - bias
            channel = _channel_dim(module, kind, out)
            cuts = ranges.splits.get(key)
            if cuts is not None and per_column:  # each input tile's partial sum digitised apart
                parts = [_partial(module, kind, args[0], a, b) for a, b in cuts]
                track(key, y, parts, channel)
                bounds = ranges.columns[key].to(device=y.device, dtype=y.dtype)
                y = sum((adc(part, _per_column(module, kind, bounds[j], out), key) for j, part in enumerate(parts)),
                        torch.zeros_like(y))
            elif key in ranges.outputs or tracking is not None:
                track(key, y, [y], channel)
                bound: float | torch.Tensor = ranges.outputs[key]
                if per_column:
                    bound = _per_column(module, kind, ranges.columns[key].to(device=y.device, dtype=y.dtype), out)
                y = adc(y, bound, key)
            if scale is not None:
                y = y * scale
            return y if bias is None else y + bias
        return hook

    def adc(y: torch.Tensor, bound: float | torch.Tensor, key: int) -> torch.Tensor:
        """Output noise (not while tracking and not training), then the ADC (clipping counted), on the
        analogue output `y`."""
        if periphery.output_noise > 0 and (tracking is None or tracking.training()):
            y = y + periphery.output_noise * bound * torch.randn(
                y.shape, generator=generator, device=y.device, dtype=y.dtype)
        if periphery.adc_bits is not None:
            if clipping is not None:
                clipping.add(key, int((y.abs() > bound).sum()), y.numel())
            y = quantise(y, bound, periphery.adc_bits)
        return y

    def product(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x @ weightᵀ on a crossbar: DAC, the analogue product, noise and ADC, scale restored."""
        key = id(weight)
        scale = _last_dim_scale(x) if periphery.dynamic else None
        if scale is not None:
            x = x / scale
        if periphery.dac_bits is not None:
            x = quantise(x, 1.0 if scale is not None else cast(float, input_bound(key, [x])), periphery.dac_bits)
        cuts = product_cuts(weight)
        if cuts is not None:  # each input tile's partial sum digitised apart
            parts = [F.linear(x[..., a:b], weight[:, a:b]) for a, b in cuts]
            track(key, None, parts, -1)
            bounds = ranges.columns[key].to(device=x.device, dtype=x.dtype)
            y = sum((adc(part, bounds[j], key) for j, part in enumerate(parts)),
                    torch.zeros(x.shape[:-1] + (weight.shape[0],), device=x.device, dtype=x.dtype))
        else:
            y = F.linear(x, weight)
            track(key, y, [y], -1)
            bound = ranges.columns[key].to(device=y.device, dtype=y.dtype) if per_column else ranges.outputs[key]
            y = adc(y, bound, key)
        return y * scale if scale is not None else y

    def product_cuts(weight: torch.Tensor) -> list[tuple[int, int]] | None:
        """The input tiles of a recurrent product digitised apart (cut when first seen, with `tracking`)."""
        if split and id(weight) not in ranges.splits:
            cut(id(weight), _input_cuts(weight.shape[1], cast(Tracking, tracking).tile_rows))
        return ranges.splits.get(id(weight))

    def recurrent(module):
        def hook(_, args, kwargs, out):
            if tracking is not None and tracking.training():
                # the whole sequence's peaks move the ranges once, as one batch of a layer does; then
                # every step runs on them (per step, h₀ = 0 and the first steps would set them)
                seen: dict[int, list] = {}
                with torch.no_grad():
                    _recurrent_forward(module, args, kwargs, lambda weight, x: record(seen, weight, x))
                for key, (x_peak, peak, columns) in seen.items():
                    if not periphery.dynamic:
                        tracking.scalar(ranges.inputs, key, x_peak)
                    move(key, peak, columns)
                moving[0] = False
            try:
                return _recurrent_forward(module, args, kwargs, product)
            finally:
                moving[0] = tracking is not None
        return hook

    def record(seen: dict[int, list], weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x @ weightᵀ digitally, keeping the max |input| and the output peaks (`output_peaks`) in `seen`."""
        scale = _last_dim_scale(x) if periphery.dynamic else None
        scaled = x / scale if scale is not None else x
        cuts = product_cuts(weight) or [(0, x.shape[-1])]
        parts = [F.linear(scaled[..., a:b], weight[:, a:b]) for a, b in cuts]
        peak, columns = output_peaks(None, parts, -1)
        kept = seen.setdefault(id(weight), [0.0, 0.0, None])
        kept[0], kept[1] = max(kept[0], float(x.abs().max())), max(kept[1], peak)
        if columns is not None:
            kept[2] = columns if kept[2] is None else torch.maximum(kept[2], columns)
        y = sum(parts[1:], parts[0])
        return y * scale if scale is not None else y

    with _hooks(weights, pre, post, recurrent if periphery.recurrent == "products" else None):
        yield
