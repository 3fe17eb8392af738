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
(`crossbar.recurrent_forward`) with each matrix product through the periphery. docs/NN.md "Periphery".

Hardware-aware training attaches the same hooks (`attach.attached` with `attach.Tracking`): the quantisers have a
straight-through gradient and the ranges are tracked on the training batches instead of calibrated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import cast

import torch

from ..errors import WeightprogError
from ..validate import number

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
    # and PTB (Adam-trained) from perplexity 151 to 159 even on ideal devices (docs/NN.md's table)
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
        # in place on the quotient: one temporary instead of four (the same values)
        return torch.div(x, step).round_().clamp_(-levels, levels).mul_(step)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def output_noise_periphery(output_noise: float) -> Periphery:
    """The periphery of the older `--output-noise` option (8-bit DAC and ADC, that output noise).

    Parameters
    ----------
    output_noise : float
        Output noise std as a fraction of the output range, in [0, 1].

    Returns
    -------
    Periphery
        `standard` for 1/127, `io8` for 0, otherwise `standard` with that noise.
    """
    number(output_noise, "output_noise", minimum=0, maximum=1)
    for name in ("standard", "io8"):
        if PRESETS[name].output_noise == output_noise:
            return PRESETS[name]
    return replace(PRESETS["standard"], output_noise=output_noise, name=f"standard-noise-{output_noise:g}")
