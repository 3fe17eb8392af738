"""How a module's matrix products map onto crossbar operations, for the periphery's hooks: which
modules carry analog weights, their output channels and biases, input scales, input-tile cuts and
partial products, and RNN/LSTM/GRU run step by step so that each product is reachable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..errors import WeightprogError
from .discover import AnalogWeight

FULL_KINDS = ("linear", "conv", "conv1d-t")


def modules(weights: list[AnalogWeight]) -> list[tuple[nn.Module, str]]:
    """Each module carrying analog weights once, with its kind."""
    seen, out = set(), []
    for w in weights:
        if id(w.module) not in seen:
            seen.add(id(w.module))
            out.append((w.module, w.kind))
    return out


def spatial(module: nn.Module) -> int:
    """Spatial dimensions of a convolution (torch's stubs type module attributes as Tensor | Module)."""
    return len(cast(tuple[int, ...], module.kernel_size))


def channel_dim(module: nn.Module, kind: str, out: torch.Tensor) -> int:
    """The output-feature (column) dimension of a module's output."""
    return out.dim() - spatial(module) - 1 if kind == "conv" else out.dim() - 1


def per_column(module: nn.Module, kind: str, values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """One value per output feature, viewed to broadcast against `out`."""
    if kind == "conv":
        return values.view((-1,) + (1,) * spatial(module))
    return values


def bias_view(module: nn.Module, kind: str, out: torch.Tensor) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return None
    return per_column(module, kind, bias, out)


def input_scale(module: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """max |x| of each input vector (kept dims; 1 for an all-zero vector): the last dimension, or
    each sample of a convolution (all dims after the batch one)."""
    if kind != "conv":
        return last_dim_scale(x)
    scale = x.detach().abs().amax(dim=scale_dims(module, kind, x), keepdim=True)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def scale_dims(module: nn.Module, kind: str, x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions of one input vector of `input_scale`."""
    if kind != "conv":
        return (x.dim() - 1,)
    return tuple(range(1 if x.dim() == spatial(module) + 2 else 0, x.dim()))


def last_dim_scale(x: torch.Tensor) -> torch.Tensor:
    """max |x| over the last dimension (kept; 1 for an all-zero vector)."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def input_cuts(inputs: int, tile_rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each input tile: as few tiles of at most `tile_rows` as fit, cut evenly."""
    width = -(-inputs // -(-inputs // tile_rows))
    return [(a, min(a + width, inputs)) for a in range(0, inputs, width)]


def module_cuts(module: nn.Module, kind: str, tile_rows: int) -> list[tuple[int, int]]:
    """Input tiles of a module's product: cuts of the input features (Linear, Conv1D), or of a
    convolution's input channels (its in·k crossbar rows cut at channel boundaries, as many tiles as
    the rows need); a grouped convolution is one tile (not split)."""
    weight = cast(torch.Tensor, module.weight)
    if kind == "linear":
        return input_cuts(weight.shape[1], tile_rows)
    if kind == "conv1d-t":
        return input_cuts(weight.shape[0], tile_rows)
    channels = weight.shape[1]
    if cast(int, module.groups) != 1:
        return [(0, channels)]
    tiles = -(-weight[0].numel() // tile_rows)
    return input_cuts(channels, -(-channels // tiles))


def unbiased(module: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """A Linear's or convolution's product without its bias (what reaches the ADC)."""
    weight = cast(torch.Tensor, module.weight)
    if kind == "linear":
        return F.linear(x, weight)
    return cast(Callable[..., torch.Tensor], module._conv_forward)(x, weight, None)


def partial(module: nn.Module, kind: str, x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """The module's product (no bias) over inputs a:b only: one input tile's partial sum."""
    weight = cast(torch.Tensor, module.weight)
    if kind == "linear":
        return F.linear(x[..., a:b], weight[:, a:b])
    if kind == "conv1d-t":
        return x[..., a:b] @ weight[a:b]
    channel = x.dim() - spatial(module) - 1
    conv = cast(Callable[..., torch.Tensor], module._conv_forward)
    return conv(x.narrow(channel, a, b - a), weight[:, a:b], None)


def partials(module: nn.Module, kind: str, x: torch.Tensor, cuts: list[tuple[int, int]],
             full: torch.Tensor) -> list[torch.Tensor]:
    """Each input tile's partial sum of the module's product (no bias) `full`: all but the last
    computed, the last as `full` less the others (one product fewer; equal up to float round-off)."""
    parts = [partial(module, kind, x, a, b) for a, b in cuts[:-1]]
    return parts + [full - sum(parts[1:], parts[0])]


def tile_products(module: nn.Module, kind: str, x: torch.Tensor,
                  cuts: list[tuple[int, int]]) -> list[torch.Tensor] | None:
    """Every input tile's partial sum of the module's product (no bias), one tensor per tile, all of
    one shape and layout: as much arithmetic as the module's own product, where computing the
    module's product and then all but one tile apart costs up to twice that. A Linear's tiles in one
    batched matrix product (tiles narrower than the widest zero-padded); a convolution's one product
    per tile over its input channels (a grouped convolution does the same arithmetic, but a CPU runs
    it up to 2× slower: benchmarks/RESULTS.md). None for GPT-2's Conv1D: the caller takes `partials`."""
    weight = cast(torch.Tensor, module.weight)
    if kind == "conv":
        return [partial(module, kind, x, a, b) for a, b in cuts]
    if kind != "linear":
        return None
    width, tiles = max(b - a for a, b in cuts), len(cuts)
    xs = torch.stack([F.pad(x[..., a:b], (0, width - (b - a))) for a, b in cuts])
    ws = torch.stack([F.pad(weight[:, a:b], (0, width - (b - a))) for a, b in cuts])
    lead = x.shape[:-1]
    products = torch.bmm(xs.reshape(tiles, -1, width), ws.transpose(1, 2))
    return list(products.view(tiles, *lead, weight.shape[0]).unbind(0))


def analog_inputs(kind: str, args: tuple) -> int:
    """How many leading positional inputs go through the DAC (MHA: query, key, value)."""
    return min(3 if kind == "mha" else 1, len(args))


Product = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`product(weight, x)`: x @ weightᵀ on a crossbar (through the periphery, or recorded)."""


Steps = Callable[[str, torch.Tensor, "torch.Tensor | None", torch.Tensor, torch.Tensor, "torch.Tensor | None"],
                  "tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None"]
"""`steps(mode, w_hh, b_hh, gi, h, c)`: a whole direction's steps at once, `gi` its input products in
step order: (the step outputs stacked in that order, the last h, the last c), or None (then step by step)."""


def cell(mode: str, gi_t: torch.Tensor, gh: torch.Tensor, h: torch.Tensor,
         c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of an RNN (`RNN_TANH`, `RNN_RELU`), LSTM or GRU from its input product `gi_t` and
    recurrent product `gh`, biases included: the new (h, c) (c None but for an LSTM)."""
    if mode == "LSTM":
        i, f, g, o = (gi_t + gh).chunk(4, -1)
        c = torch.sigmoid(f) * cast(torch.Tensor, c) + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if mode == "GRU":
        (ir, iz, in_), (hr, hz, hn) = gi_t.chunk(3, -1), gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        return (1 - z) * torch.tanh(in_ + r * hn) + z * h, c
    return (torch.relu if mode == "RNN_RELU" else torch.tanh)(gi_t + gh), c


def recurrent_forward(module: nn.Module, args: tuple, kwargs: dict, product: Product, steps: Steps | None = None):
    """What an RNN/LSTM/GRU module returns for these inputs, computed step by step in torch ops
    with every matrix product (input and recurrent, each layer and direction) done by `product`,
    or each direction's steps by `steps` where it takes them.

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
    lstm = rnn.mode == "LSTM"
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
    h_n, c_n = [], []
    layer_in = x
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            c = c0[layer * dirs + d] if c0 is not None else None
            out, h, c = _direction(rnn, suffix, layer_in, h0[layer * dirs + d], c, bool(d), product, steps)
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, -1) if dirs == 2 else outs[0]
        if rnn.training and rnn.dropout > 0 and layer < rnn.num_layers - 1:
            layer_in = F.dropout(layer_in, rnn.dropout)
    out, hidden = layer_in, torch.stack(h_n)
    cell_n = torch.stack(cast(list[torch.Tensor], c_n)) if lstm else None
    if not batched:
        out, hidden = out.squeeze(1), hidden.squeeze(1)
        cell_n = cell_n.squeeze(1) if cell_n is not None else None
    elif rnn.batch_first:
        out = out.transpose(0, 1)
    return out, ((hidden, cell_n) if lstm else hidden)


def _direction(rnn: nn.RNNBase, suffix: str, layer_in: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
               reverse: bool, product: Product, steps: Steps | None):
    """One layer and direction over the sequence: (its outputs in time order, the last h, the last c)."""
    w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
    b_ih = getattr(rnn, "bias_ih" + suffix) if rnn.bias else None
    b_hh = getattr(rnn, "bias_hh" + suffix) if rnn.bias else None
    gi = product(w_ih, layer_in)
    gi = gi + b_ih if b_ih is not None else gi
    done = steps(rnn.mode, w_hh, b_hh, gi.flip(0) if reverse else gi, h, c) if steps is not None else None
    if done is not None:
        return (done[0].flip(0) if reverse else done[0]), done[1], done[2]
    seq: list[torch.Tensor] = [h] * gi.shape[0]
    for t in (range(gi.shape[0] - 1, -1, -1) if reverse else range(gi.shape[0])):
        gh = product(w_hh, h)
        h, c = cell(rnn.mode, gi[t], gh + b_hh if b_hh is not None else gh, h, c)
        seq[t] = h
    return torch.stack(seq), h, c


@contextmanager
def hooks(weights: list[AnalogWeight], pre, post, replace=None) -> Iterator[None]:
    """Attach `pre`/`post` hook factories for the block. `replace(module, kind)`, when given, may
    return a forward `(*args, **kwargs) -> output` that stands in for the module's own for the block
    (its pre hook still runs, its post hook is not attached; a recurrent module replaced gets no
    pre hook either): replaced, not hooked, where the module's own product would be discarded."""
    handles = []
    replaced: list[nn.Module] = []
    # Hooks must see every projection: the fused transformer fast path would bypass them.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for module, kind in modules(weights):
            forward = replace(module, kind) if replace is not None else None
            if forward is not None:
                module.forward = forward  # an instance attribute: Module.__call__ finds it first
                replaced.append(module)
                if kind == "rnn":
                    continue
            handles.append(module.register_forward_pre_hook(pre(module, kind)))
            if kind in FULL_KINDS and forward is None:
                handles.append(module.register_forward_hook(post(module, kind)))
        yield
    finally:
        for h in handles:
            h.remove()
        for module in replaced:
            del module.forward
        torch.backends.mha.set_fastpath_enabled(fastpath)


def tile_width(cols: int, tile_cols: int) -> int:
    """Columns per output tile: as few tiles of at most `tile_cols` as fit, cut evenly (as the mapping does)."""
    return -(-cols // -(-cols // tile_cols))


def peaks(y: torch.Tensor, channel: int, unit: str, tile_cols: int) -> torch.Tensor:
    """(columns,) max |y| of each column (`unit="column"`), or of each output tile repeated over its columns."""
    rows = y.detach().abs().movedim(channel, -1)
    peak = rows.reshape(-1, rows.shape[-1]).amax(0)
    if unit == "column":
        return peak
    cols, width = peak.numel(), tile_width(peak.numel(), tile_cols)
    return torch.cat([peak[a:a + width].max().expand(min(width, cols - a)) for a in range(0, cols, width)])
