"""Optional crossbar periphery, as forward hooks: input DAC, output ADC, additive output noise.

* DAC: inputs quantised to signed `dac_bits` levels in ±r_in, r_in a per-layer percentile of
  |input| calibrated on data (the digital run); beyond it inputs clip.
* ADC: the matrix-vector output (before the digital bias) quantised to `adc_bits` levels in
  ±r_out, r_out a per-layer percentile of |output| from the same run; beyond it outputs clip.
* Output noise: Gaussian, std = `output_noise` × r_out, added before the ADC.

Linear, Conv and GPT-2 Conv1D get all three. For RNN/LSTM/GRU and MultiheadAttention the matrix
products happen inside the module's own kernel, so only the module inputs go through the DAC
(the recurrent state and the per-projection outputs are not reachable by hooks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TypeVar, cast

import torch
from torch import nn

from ..errors import WeightprogError
from .discover import AnalogWeight

T = TypeVar("T")
_FULL_KINDS = ("linear", "conv", "conv1d-t")
_SAMPLES_PER_CALL = 1 << 16   # |x| values kept per forward call for the percentile
_SAMPLES_MAX = 1 << 22        # torch.quantile handles at most 16M values


@dataclass(frozen=True)
class Periphery:
    """Converters and noise between the digital model and the crossbars (`PRESETS` has the named ones).

    Parameters
    ----------
    dac_bits, adc_bits
        Input (DAC) and output (ADC) resolution, 2 … 24 bits, or None for none.
    output_noise
        Std of additive output noise as a fraction of the layer's output range.
    input_percentile, output_percentile
        Percentile of |x| in the calibration run that sets each layer's input and output range.
    name
        Its name in reports.

    Raises
    ------
    WeightprogError
        For bits, noise or percentiles out of range.
    """

    dac_bits: int | None = None
    adc_bits: int | None = None
    output_noise: float = 0.0
    """Std of additive output noise as a fraction of the layer's output range (1/127 ≈ one 8-bit step)."""
    input_percentile: float = 99.99
    output_percentile: float = 99.99
    name: str = "custom"

    def __post_init__(self):
        for field, bits in (("dac_bits", self.dac_bits), ("adc_bits", self.adc_bits)):
            if bits is not None and not (isinstance(bits, int) and 2 <= bits <= 24):
                raise WeightprogError(f"periphery: {field} must be an integer from 2 to 24 or None, got {bits!r}")
        if not self.output_noise >= 0:
            raise WeightprogError(f"periphery: output_noise must be >= 0, got {self.output_noise!r}")
        for field in ("input_percentile", "output_percentile"):
            if not 0 < getattr(self, field) <= 100:
                raise WeightprogError(f"periphery: {field} must be in (0, 100]")

    @property
    def is_ideal(self) -> bool:
        """No converters and no output noise: the model runs on the programmed weights alone."""
        return self.dac_bits is None and self.adc_bits is None and self.output_noise == 0

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "ideal": Periphery(name="ideal"),
    "standard": Periphery(dac_bits=8, adc_bits=8, output_noise=1 / 127, name="standard"),
    # the converters of `standard` without its output noise, which alone takes MiniLM to chance
    # and PTB from perplexity 152 to 162 even on ideal devices (docs/RESULTS.md)
    "io8": Periphery(dac_bits=8, adc_bits=8, output_noise=0.0, name="io8"),
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


def quantise(x: torch.Tensor, bound: float, bits: int) -> torch.Tensor:
    """Signed uniform quantisation to 2^(bits−1)−1 levels each side of 0 in ±bound, clipping beyond.

    Parameters
    ----------
    x
        Values to quantise.
    bound
        The range ±bound (> 0).
    bits
        Resolution, including the sign.

    Returns
    -------
    torch.Tensor
        The quantised values, x's shape.
    """
    levels = 2 ** (bits - 1) - 1
    step = bound / levels
    return (x / step).round().clamp(-levels, levels) * step


def _modules(weights: list[AnalogWeight]) -> list[tuple[nn.Module, str]]:
    """Each module carrying analog weights once, with its kind."""
    seen, out = set(), []
    for w in weights:
        if id(w.module) not in seen:
            seen.add(id(w.module))
            out.append((w.module, w.kind))
    return out


def _bias_view(module: nn.Module, kind: str, out: torch.Tensor) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return None
    if kind == "conv":  # nn.Conv1d/2d/3d; torch's stubs type module attributes as Tensor | Module
        spatial = len(cast(tuple[int, ...], module.kernel_size))
        return bias.view((-1,) + (1,) * spatial)
    return bias


def _analog_inputs(kind: str, args: tuple) -> int:
    """How many leading positional inputs go through the DAC (MHA: query, key, value)."""
    return min(3 if kind == "mha" else 1, len(args))


@contextmanager
def _hooks(weights: list[AnalogWeight], pre, post) -> Iterator[None]:
    handles = []
    # Hooks must see every projection: the fused transformer fast path would bypass them.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for module, kind in _modules(weights):
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


@dataclass
class Ranges:
    """Calibrated per-module input and output bounds.

    Parameters
    ----------
    inputs, outputs
        Bound of |x| per module, keyed by `id(module)`.
    """

    inputs: dict[int, float]
    outputs: dict[int, float]


def calibrate(weights: list[AnalogWeight], periphery: Periphery, run: Callable[[], T]) -> tuple[T, Ranges]:
    """Call `run()` (a digital evaluation) with recording hooks; return (run's result, Ranges).

    Parameters
    ----------
    weights
        The analog weights whose modules are recorded.
    periphery
        Gives the percentiles that set the ranges.
    run
        Runs the model digitally (e.g. the user's evaluation).

    Returns
    -------
    tuple
        What `run` returned, and the calibrated `Ranges`.
    """
    ins: dict[int, list] = {}
    outs: dict[int, list] = {}

    def pre(module, kind):
        def hook(_, args):
            for x in args[:_analog_inputs(kind, args)]:
                if isinstance(x, torch.Tensor):
                    _keep(ins.setdefault(id(module), []), x)
        return hook

    def post(module, kind):
        def hook(_, args, out):
            bias = _bias_view(module, kind, out)
            _keep(outs.setdefault(id(module), []), out if bias is None else out - bias)
        return hook

    with _hooks(weights, pre, post):
        result = run()
    ranges = Ranges({k: _percentile(v, periphery.input_percentile) for k, v in ins.items()},
                    {k: _percentile(v, periphery.output_percentile) for k, v in outs.items()})
    return result, ranges


@contextmanager
def attached(weights: list[AnalogWeight], periphery: Periphery, ranges: Ranges | None,
             generator: torch.Generator | None = None) -> Iterator[None]:
    """Run the model through the periphery inside the block (nothing is attached when ideal).

    Parameters
    ----------
    weights
        The analog weights whose modules get the converters and noise.
    periphery
        The periphery.
    ranges
        From `calibrate` (needed unless the periphery is ideal).
    generator
        Source of the output noise.

    Raises
    ------
    WeightprogError
        For a non-ideal periphery without ranges.
    """
    if periphery.is_ideal:
        yield
        return
    if ranges is None:
        raise WeightprogError("periphery: calibrate input/output ranges before attaching a non-ideal periphery")

    def pre(module, kind):
        bound = ranges.inputs.get(id(module))

        def hook(_, args):
            if periphery.dac_bits is None or bound is None:
                return None
            n = _analog_inputs(kind, args)
            return tuple(quantise(x, bound, periphery.dac_bits) if i < n and isinstance(x, torch.Tensor)
                         and x.is_floating_point() else x for i, x in enumerate(args))
        return hook

    def post(module, kind):
        bound = ranges.outputs.get(id(module))

        def hook(_, args, out):
            if bound is None:
                return None
            bias = _bias_view(module, kind, out)
            y = out if bias is None else out - bias
            if periphery.output_noise > 0:
                y = y + periphery.output_noise * bound * torch.randn(
                    y.shape, generator=generator, device=y.device, dtype=y.dtype)
            if periphery.adc_bits is not None:
                y = quantise(y, bound, periphery.adc_bits)
            return y if bias is None else y + bias
        return hook

    with _hooks(weights, pre, post):
        yield
