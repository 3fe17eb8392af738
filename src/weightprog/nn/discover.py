"""Which weights of a torch model live on analogue crossbars.

Analog by default: `Linear`, `Conv1d/2d/3d` (grouped and depthwise too), every `weight_ih_l*`,
`weight_hh_l*` (and LSTM `weight_hr_l*`) of `RNN`/`LSTM`/`GRU` in both directions,
`MultiheadAttention` input projections (`in_proj_weight` or `q/k/v_proj_weight`; its `out_proj`
is a `Linear`), and Hugging Face GPT-2 style `Conv1D` (found by class name; its weight is stored
in × out, so it is transposed to out × in for the crossbar). Embeddings, norms, biases, transposed
convolutions and anything else stay digital. A weight tied to an embedding stays digital too,
since programming it would change the embedding.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import WeightprogError

KINDS = ("linear", "conv", "rnn", "mha", "conv1d-t")
"""conv1d-t is the GPT-2 `Conv1D` whose weight is stored transposed (in × out)."""

_PLAIN_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RNN_PREFIXES = ("weight_ih_l", "weight_hh_l", "weight_hr_l")
_MHA_SEPARATE = ("q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass(eq=False)
class AnalogWeight:
    """One weight tensor mapped to crossbars.

    Parameters
    ----------
    name
        Full parameter name.
    module_name
        Name of the module that owns it (`''` for the model itself).
    module
        That module.
    attr
        The parameter's attribute name on the module.
    kind
        One of `KINDS`.
    param
        The parameter itself (written in place by `write`).
    """

    name: str
    """Full parameter name, e.g. `encoder.layers.0.self_attn.in_proj_weight`."""
    module_name: str
    module: nn.Module
    attr: str
    kind: str
    param: torch.Tensor

    @property
    def transposed(self) -> bool:
        """Whether the parameter is stored inputs × outputs (GPT-2 `Conv1D`)."""
        return self.kind == "conv1d-t"

    def matrix(self) -> torch.Tensor:
        """The weight as the crossbar sees it: outputs first (conv kernels are flattened later)."""
        w = self.param.detach()
        return w.t() if self.transposed else w

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(outputs, inputs) of the crossbar matrix; conv: (out, in/groups · kernel)."""
        w = self.matrix()
        return w.shape[0], w.numel() // w.shape[0]

    @torch.no_grad()
    def write(self, w: torch.Tensor) -> None:
        """Copy a matrix-shaped tensor into the parameter's own storage (keeps views/aliases).

        Parameters
        ----------
        w
            The weights in `matrix()`'s shape and orientation.
        """
        self.param.copy_(w.t() if self.transposed else w)


def _candidates(module: nn.Module) -> Iterable[tuple[str, str]]:
    """(attribute, kind) of the analog weights a module owns directly."""
    if isinstance(module, nn.Linear):
        yield "weight", "linear"
    elif isinstance(module, _PLAIN_CONVS):
        yield "weight", "conv"
    elif isinstance(module, nn.RNNBase):
        for name, _ in module.named_parameters(recurse=False):
            if name.startswith(_RNN_PREFIXES):
                yield name, "rnn"
    elif isinstance(module, nn.MultiheadAttention):
        if module.in_proj_weight is not None:
            yield "in_proj_weight", "mha"
        else:
            for name in _MHA_SEPARATE:
                yield name, "mha"
    elif type(module).__name__ == "Conv1D" and isinstance(weight := getattr(module, "weight", None), torch.Tensor) \
            and weight.dim() == 2:
        yield "weight", "conv1d-t"


def _matches(patterns: Sequence[str], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


def _patterns(value, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    patterns = tuple(value)
    if not all(isinstance(p, str) for p in patterns):
        raise WeightprogError(f"{field}: patterns must be strings (module-name globs)")
    return patterns


def find_analog_weights(model: nn.Module, include: str | Sequence[str] | None = None,
                        exclude: str | Sequence[str] | None = None) -> list[AnalogWeight]:
    """The analog weights of `model`, in module order.

    `include`/`exclude` are shell-style globs matched against the module name (`layer1.*`) and
    the full parameter name (`lstm.weight_hh_l0*`); with `include` only matching weights are
    analog, `exclude` always wins.

    Parameters
    ----------
    model
        Any torch model: Linear, Conv1d/2d/3d, RNN/LSTM/GRU, MultiheadAttention and GPT-2 `Conv1D`
        weights are analog; embeddings (and weights tied to them), norms and biases stay digital.
    include, exclude
        A glob or a sequence of globs, or None.

    Returns
    -------
    list of AnalogWeight
        Each analog parameter once (shared parameters are not repeated).

    Raises
    ------
    WeightprogError
        When `model` is not a module, a pattern is not a string, or no analog weight is left.
    """
    if not isinstance(model, nn.Module):
        raise WeightprogError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
    seen: set[int] = set()
    found = []
    for module_name, module in model.named_modules():
        for attr, kind in _candidates(module):
            param = getattr(module, attr, None)
            if not isinstance(param, torch.Tensor) or isinstance(param, nn.parameter.UninitializedParameter):
                continue
            if param.dim() < 2 or not param.is_floating_point() or id(param) in seen or id(param) in embedded:
                continue
            full = f"{module_name}.{attr}" if module_name else attr
            if inc and not _matches(inc, module_name, full):
                continue
            if exc and _matches(exc, module_name, full):
                continue
            seen.add(id(param))
            found.append(AnalogWeight(full, module_name, module, attr, kind, param))
    if not found:
        hint = " (check the include/exclude patterns)" if inc or exc else ""
        raise WeightprogError(
            f"model: no analog layers found{hint}; supported are Linear, Conv1d/2d/3d, RNN/LSTM/GRU, "
            f"MultiheadAttention and GPT-2 Conv1D")
    return found
