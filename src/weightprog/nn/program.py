"""Programming every analog weight of a model once, and swapping its reads into the model.

One realisation = one `ProgrammedModel`: the device state of every analog weight (no per-device
Python objects). Reading at a time writes α·ŵ(t) into the parameters' own storage, in place;
`WeightSwap` keeps one copy of the original weights and puts them back afterwards, so there is no
copy of the model per time point or realisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from ..devices import DeviceModel, get_device
from ..hardware import Mapping, ProgrammedTensor
from ..strategy import Strategy
from . import fused
from . import noise as counter_noise
from .discover import AnalogWeight

ReadOut = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`read_out(read, weight) -> read`: a read-out in place of the mapping's (`Limit.read_out`)."""


class WeightSwap:
    """Holds the original analog weights while programmed reads are swapped in.

    Parameters
    ----------
    weights
        The analog weights; a copy of each is kept.
    """

    def __init__(self, weights: list[AnalogWeight]):
        self.weights = weights
        self.originals = [w.param.detach().clone() for w in weights]

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the original weights back into the parameters."""
        for w, original in zip(self.weights, self.originals):
            w.param.copy_(original)

    def __enter__(self) -> WeightSwap:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


class ProgrammedModel:
    """One programming realisation of all analog weights of a model.

    Parameters
    ----------
    weights
        The analog weights (`find_analog_weights`), holding their original values.
    strategy, device, mapping, generator
        As for `weightprog.hardware.ProgrammedTensor`, which programs each weight.
    """

    def __init__(self, weights: list[AnalogWeight], strategy: Strategy, device: DeviceModel | str = "pcm",
                 mapping: Mapping = Mapping(), generator: torch.Generator | None = None):
        self.weights, self.device, self.mapping = weights, get_device(device), mapping
        self.tensors = [ProgrammedTensor(w.matrix(), strategy, self.device, mapping, generator, name=w.name)
                        for w in weights]

    @torch.no_grad()
    def write(self, t_s: float, generator: torch.Generator | None = None,
              read_out: ReadOut | None = None) -> torch.Tensor:
        """Read every weight at `t_s` (fresh read noise) and write it into the model, which must
        hold the original weights.

        Parameters
        ----------
        t_s
            Seconds after programming.
        generator
            Source of the read noise.
        read_out
            `read_out(read, weight)` replaces each read (the limit's oracle scale per column,
            `Limit.read_out`); None: the read as the mapping compensates it.

        Returns
        -------
        torch.Tensor
            (L,) Σ(α·ŵ − w)² of each weight (float64).
        """
        errors = []
        compiled = self.state_devices >= fused.MIN_NUMEL
        for w, programmed in zip(self.weights, self.tensors):
            read = _read(programmed, t_s, generator, compiled)
            if read_out is not None:
                read = read_out(read, w.matrix())
            diff = read.to(torch.float64, copy=True).sub_(w.matrix())  # one temporary; summed as a dot product
            errors.append(torch.dot(diff.view(-1), diff.view(-1)))
            w.write(read)
        return torch.stack(errors).cpu()  # one device-to-host copy for all weights

    @contextmanager
    def applied(self, t_s: float, swap: WeightSwap, generator: torch.Generator | None = None,
                read_out: ReadOut | None = None) -> Iterator[torch.Tensor]:
        """The model runs on the weights read at `t_s` inside the block, which gets each weight's
        squared error Σ(α·ŵ − w)²; the originals come back after.

        Parameters
        ----------
        t_s
            Seconds after programming.
        swap
            Holds the originals to restore.
        generator
            Source of the read noise.
        read_out
            Replaces each read (`write`).

        Yields
        ------
        torch.Tensor
            (L,) Σ(α·ŵ − w)² of each weight (float64).
        """
        try:
            yield self.write(t_s, generator, read_out)
        finally:
            swap.restore()

    @property
    def state_devices(self) -> int:
        """Devices of all weights: a network's read repays compiling where they are many, each
        tensor's read compiled however small (ResNet-32: 34 tensors, none above `fused.MIN_NUMEL`)."""
        return sum(t.state.g_prog.numel() for t in self.tensors)

    @property
    def state_bytes(self) -> int:
        """Bytes held per realisation: device state (programmed conductance, drift exponent,
        read-noise coefficient) plus the tile mask, scales and compensation references."""
        extra = 0
        for t in self.tensors:
            for x in (t.mask, t.w_max, t.reference):
                extra += 0 if x is None else x.numel() * x.element_size()
        return sum(t.state_bytes for t in self.tensors) + extra


def _read(programmed: ProgrammedTensor, t_s: float, generator: torch.Generator | None,
          any_size: bool = False) -> torch.Tensor:
    """`programmed.read(t_s)` with the read noise from one seed of `generator` (`noise.gaussian`) and
    the read in one fused pass (`fused.device_read`, compiled however small the tensor where
    `any_size`); a device with a read law of its own (a subclass overriding `DeviceModel.read`)
    reads itself."""
    device, state = programmed.device, programmed.state
    if type(device).read is not DeviceModel.read:
        return programmed.read(t_s, generator)
    seed = counter_noise.seed(generator, state.g_prog.device)
    w = fused.device_read(state.g_prog, state.nu, state.q, programmed.factors, programmed.mask,
                          device.drift_log(float(t_s)), device.read_scale(float(t_s)), seed, any_size)
    return programmed.finish(w)
