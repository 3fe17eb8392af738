"""The mapping report: which weights are analog, their crossbar matrices and tiles."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..hardware import Mapping
from .discover import AnalogWeight


@dataclass
class LayerMapping:
    """How one analog weight sits on crossbars.

    Parameters
    ----------
    name, kind
        The parameter's name and kind (`discover.KINDS`).
    shape
        The parameter's own shape.
    matrix
        (outputs, inputs) on the crossbar.
    tiles
        (output tiles, input tiles).
    weights
        Number of weights.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    """The parameter's own shape."""
    matrix: tuple[int, int]
    """(outputs, inputs) on the crossbar."""
    tiles: tuple[int, int]
    """(output tiles, input tiles)."""
    weights: int

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "matrix": list(self.matrix),
                "tiles": list(self.tiles), "weights": self.weights}


@dataclass
class MappingReport:
    """Which weights of a model are analog and how they sit on crossbars.

    Parameters
    ----------
    layers
        One entry per analog weight.
    mapping
        The crossbar mapping used.
    digital_params
        Parameters that stay digital.
    notes
        Remarks for the report.
    """

    layers: list[LayerMapping]
    mapping: Mapping
    digital_params: int
    """Parameters that stay digital (embeddings, norms, biases, unsupported layers)."""
    notes: list[str] = field(default_factory=list)

    @property
    def analog_weights(self) -> int:
        """Number of analog weights in all layers."""
        return sum(layer.weights for layer in self.layers)

    @property
    def tiles(self) -> int:
        """Number of tiles in all layers."""
        return sum(layer.tiles[0] * layer.tiles[1] for layer in self.layers)

    def to_dict(self) -> dict:
        m = self.mapping
        return {"tile_rows": m.tile_rows, "tile_cols": m.tile_cols, "normalise": m.normalise,
                "compensation": m.compensation, "compensation_reference": m.reference,
                "analog_weights": self.analog_weights,
                "digital_params": self.digital_params, "tiles": self.tiles,
                "layers": [layer.to_dict() for layer in self.layers]}

    def format(self) -> str:
        """A plain-text table, one analog weight per line, then the totals."""
        width = max(len("weight"), *(len(layer.name) for layer in self.layers))
        lines = [f"{'weight':<{width}}  {'kind':<8}  {'matrix (out x in)':>18}  {'tiles':>7}  {'weights':>10}"]
        for layer in self.layers:
            matrix = f"{layer.matrix[0]} x {layer.matrix[1]}"
            tiles = f"{layer.tiles[0]}x{layer.tiles[1]}"
            lines.append(f"{layer.name:<{width}}  {layer.kind:<8}  {matrix:>18}  {tiles:>7}  {layer.weights:>10,}")
        lines.append(f"{len(self.layers)} analog weights, {self.analog_weights:,} weights on {self.tiles} tiles of "
                     f"≤ {self.mapping.tile_rows} x {self.mapping.tile_cols}; {self.digital_params:,} "
                     f"parameters digital")
        return "\n".join(lines)


def layer_mapping(weight: AnalogWeight, mapping: Mapping) -> LayerMapping:
    out, inp = weight.matrix_shape
    tiles = (-(-out // mapping.tile_cols), -(-inp // mapping.tile_rows))
    return LayerMapping(weight.name, weight.kind, tuple(weight.param.shape), (out, inp), tiles, out * inp)


def mapping_report(model: nn.Module, weights: list[AnalogWeight], mapping: Mapping = Mapping()) -> MappingReport:
    """Describe how `weights` (from find_analog_weights) of `model` sit on crossbars.

    Parameters
    ----------
    model
        The model (its other parameters are counted as digital).
    weights
        Its analog weights.
    mapping
        Tile size and the rest of the crossbar mapping.

    Returns
    -------
    MappingReport
    """
    analog = {id(w.param) for w in weights}
    digital = sum(p.numel() for p in model.parameters() if id(p) not in analog)
    return MappingReport([layer_mapping(w, mapping) for w in weights], mapping, digital)
