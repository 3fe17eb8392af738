"""One strategy per layer (`optimize --per-layer`), each against the network-wide one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..devices import DeviceModel, get_device
from ..metric import rescore
from ..progress import ProgressCallback
from ..sample import sample_from_values
from ..scores import Score
from ..strategy import Strategy
from .run import OptimizeSettings, optimize


def _per_layer(progress: ProgressCallback | None, layer: str) -> ProgressCallback | None:
    """`progress` receiving a layer's search events named by the layer alone (its one search's
    cell label dropped; the phase after it is not reported); None stays None."""
    if progress is None:
        return None
    callback = progress
    return lambda event: callback(replace(event, path=(layer,))) if event.task == "search" else None


@dataclass(frozen=True)
class LayerResult:
    """One layer's own optimised strategy, scored beside the network-wide one on the layer."""

    name: str
    weights: int
    strategy: Strategy
    layer: Score
    """Re-scored TNMSE of the layer's own strategy on the layer's weights."""
    network: Score
    """Re-scored TNMSE of the network-wide strategy on the same weights and draws."""

    @property
    def file_stem(self) -> str:
        """The layer's name as a file name (`layers/<file_stem>.json`)."""
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in self.name)


def optimize_per_layer(layers: Sequence[tuple[str, torch.Tensor]], network_strategy: Strategy,
                       device: DeviceModel | str, settings: OptimizeSettings, normalise: str = "column",
                       progress: ProgressCallback | None = None) -> list[LayerResult]:
    """One strategy per layer, each searched on that layer's own weight distribution (with the
    network-wide strategy's cell), re-scored against the network-wide strategy on the layer.

    Parameters
    ----------
    layers
        (name, weight tensor) of each layer.
    network_strategy
        The network-wide strategy; its cell is kept for every layer.
    device
        A device model or its name.
    settings
        The search's settings (the cell and `bound` are overridden per layer).
    normalise
        How a layer's weights are normalised (`column`, …; see `sample.normalise_matrix`).
    progress
        Receives each layer's `search` events (`Event`), named by the layer.

    Returns
    -------
    list of LayerResult
    """
    from ..sample import normalise_matrix  # local: only per-layer runs need it

    device = get_device(device)
    cell = network_strategy.cell()
    layer_settings = replace(settings, significance=cell, pairs=cell.pairs, bound=False)
    out = []
    for name, tensor in layers:
        values = normalise_matrix(tensor.detach().to(torch.float32), normalise)
        sample = sample_from_values(values, seed=settings.seed, source=name)
        run = optimize(sample, values, device, layer_settings, progress=_per_layer(progress, name))
        both = Strategy.stack([run.strategy, network_strategy])
        scored = rescore(both, values, device, settings.times_s, blocks=settings.rescore_blocks,
                         size=sample.size, rows=sample.u.shape[1], seed=settings.seed + 2000,
                         compensation=settings.compensation, compute=settings.compute, compile=False)
        out.append(LayerResult(name, values.numel(), replace(run.strategy, names=[f"optimised:{name}"]),
                               Score.of(scored, 0), Score.of(scored, 1)))
    return out
