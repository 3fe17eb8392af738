"""Weight samples: the normalised weights of a network, as they will be deployed (docs/MODEL.md §8).

Sampling the weights themselves weights every value by its density, which is the paper's error
importance. A sample is arranged as columns of `rows` weights (a crossbar tile's columns), so the
metric's drift compensation acts per column as in hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

from .choices import DEFAULT_ROWS, DEFAULT_SIZE
from .errors import WeightprogError

DATA_DIR = Path(__file__).parent / "data"
DISTRIBUTIONS = {
    "default": "default_weights.npy",
}
NORMALISE = ("column", "tensor")


@dataclass
class WeightSample:
    """Normalised weights arranged as crossbar columns: what the metrics score strategies on.

    Parameters
    ----------
    u
        (columns, rows) normalised weights in [−1, 1].
    source
        Where the weights came from (named in error messages and reports).
    importance
        (columns, rows) each weight's importance, mean 1 over the weights it was drawn from: its
        error counts by it (`--weighting fisher`); None: every weight alike.
    """

    u: torch.Tensor
    """(columns, rows) normalised weights in [−1, 1]."""
    source: str = "array"
    importance: torch.Tensor | None = None
    """(columns, rows) each weight's importance (mean 1 over all the weights), or None: all alike."""

    @property
    def size(self) -> int:
        """Number of weights in the sample."""
        return self.u.numel()

    def values(self) -> torch.Tensor:
        """The weights as one flat tensor (columns one after another)."""
        return self.u.reshape(-1)

    def flat_importance(self) -> torch.Tensor | None:
        """The importance as one flat tensor aligned with `values()` (None: all alike)."""
        return None if self.importance is None else self.importance.reshape(-1)


def check_importance(importance: torch.Tensor, values: torch.Tensor, source: str) -> torch.Tensor:
    """Per-weight importance, checked (one finite, non-negative number per value, not all zero)
    and scaled to mean 1, so an importance-weighted mean of errors is Σ I·e / Σ I.

    Raises
    ------
    WeightprogError
        Another number of values, NaN or inf, a negative value, or all zero.
    """
    importance = importance.detach().reshape(-1).to(torch.float32)
    if importance.numel() != values.numel():
        raise WeightprogError(f"{source}: {importance.numel()} importances for {values.numel()} weights")
    check_finite(importance, source)
    if bool((importance < 0).any()):
        raise WeightprogError(f"{source}: importances must be non-negative")
    mean = importance.double().mean()
    if not mean > 0:
        raise WeightprogError(f"{source}: every weight has zero importance (a loss that does not depend on the "
                              f"analog weights?)")
    return (importance / mean).to(torch.float32)


def normalise_matrix(w: torch.Tensor, unit: str = "column") -> torch.Tensor:
    """u = w / max|w| per output column (dim 0, conv kernels flattened) or per tensor."""
    if unit not in NORMALISE:
        raise WeightprogError(f"normalise: use one of {', '.join(NORMALISE)}, got {unit!r}")
    m = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)
    scale = m.abs().amax(dim=1, keepdim=True) if unit == "column" else m.abs().amax()
    return (m / torch.where(scale > 0, scale, torch.ones_like(scale))).reshape(-1)


def check_finite(w: torch.Tensor, where: str) -> None:
    if not torch.isfinite(w).all():
        bad = int((~torch.isfinite(w)).sum())
        raise WeightprogError(f"{where}: {bad} weights are NaN or inf")


def analog_tensors(state: Mapping[str, torch.Tensor]) -> Iterable[tuple[str, torch.Tensor]]:
    """Matrix-like weights (≥ 2-D, name ending in 'weight' or an RNN 'weight_ih/hh'), skipping
    embeddings and norms, which stay digital."""
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.dim() < 2 or not tensor.is_floating_point():
            continue
        last = name.rsplit(".", 1)[-1]
        lowered = name.lower()
        if not (last.startswith("weight") or last.endswith("_weight")):
            continue
        if "embed" in lowered or "norm" in lowered:
            continue
        yield name, tensor


def pooled_values(tensors: Iterable[tuple[str, torch.Tensor]], normalise: str = "column",
                  source: str = "weights") -> torch.Tensor:
    """All analog weights, each tensor normalised as deployed, in one flat tensor.

    Streams tensor by tensor: only the normalised values of one tensor exist beside the pool.
    """
    pooled = []
    for name, w in tensors:
        w = w.detach().to(torch.float32)
        check_finite(w, f"{source}: {name}")
        pooled.append(normalise_matrix(w, normalise))
    if not pooled:
        raise WeightprogError(f"{source}: no analog weights found (floating-point tensors of ≥ 2 dimensions "
                              f"named *weight*; a plain array of weights: sample_from_array)")
    return torch.cat(pooled)


def sample_from_tensors(tensors: Iterable[tuple[str, torch.Tensor]], size: int = DEFAULT_SIZE,
                        rows: int = DEFAULT_ROWS, seed: int = 0, normalise: str = "column",
                        source: str = "weights") -> WeightSample:
    """Normalise each tensor as deployed, pool them, and draw `size` weights (seeded).

    Parameters
    ----------
    tensors
        (name, tensor) pairs of the analog weights (e.g. `analog_tensors(state_dict)`).
    size
        Weights in the sample; a multiple of `rows`.
    rows
        Weights per column (a crossbar column's length).
    seed
        Seed of the draw.
    normalise
        `column`: each tensor divided by max |w| of each output (row of its (out, −1) view);
        `tensor`: by max |w| of the whole tensor.
    source
        Name of the weights in error messages and reports.

    Returns
    -------
    WeightSample
        (size / rows, rows) normalised weights.

    Raises
    ------
    WeightprogError
        No analog weights, NaN or inf among them, all zero, or `size` not a multiple of `rows`.
    """
    return sample_from_values(pooled_values(tensors, normalise, source), size, rows, seed, source)


def sample_from_values(values: torch.Tensor, size: int = DEFAULT_SIZE, rows: int = DEFAULT_ROWS,
                       seed: int = 0, source: str = "array",
                       importance: torch.Tensor | None = None) -> WeightSample:
    """Draw `size` of already normalised weights into columns of `rows` (with replacement only
    when there are fewer weights than asked for).

    Parameters
    ----------
    values
        Normalised weights in [−1, 1], any shape.
    size
        Weights in the sample; a multiple of `rows`.
    rows
        Weights per column.
    seed
        Seed of the draw.
    source
        Name of the weights in error messages and reports.
    importance
        One importance per value, drawn with it (`check_importance`); None: every weight alike.

    Returns
    -------
    WeightSample
        (size / rows, rows) weights drawn from `values`.

    Raises
    ------
    WeightprogError
        No weights, NaN or inf, values outside [−1, 1], all zero, `size` not a multiple of `rows`,
        or a bad importance.
    """
    values = values.reshape(-1).to(torch.float32)
    check_finite(values, source)
    if values.numel() == 0:
        raise WeightprogError(f"{source}: no weights")
    if values.abs().max() > 1 + 1e-6:
        raise WeightprogError(f"{source}: normalised weights must lie in [-1, 1]")
    if not bool(values.any()):
        raise WeightprogError(f"{source}: every weight is 0; there is nothing to program (an untrained or "
                              f"zero-initialised model?)")
    if size % rows:
        raise WeightprogError(f"sample size {size} must be a multiple of rows ({rows})")
    gen = torch.Generator().manual_seed(seed)
    if values.numel() >= size:
        pick = torch.randperm(values.numel(), generator=gen)[:size]
    else:
        pick = torch.randint(values.numel(), (size,), generator=gen)
    drawn = None
    if importance is not None:  # scaled over all the values, not the draw: the sample stays unbiased
        drawn = check_importance(importance, values, f"{source}: importance")[pick].reshape(size // rows, rows)
    return WeightSample(values[pick].reshape(size // rows, rows).clamp(-1, 1), source, drawn)


def load_distribution(name: str = "default") -> torch.Tensor:
    """The normalised weights of a built-in distribution (docs/MODEL.md §8).

    Parameters
    ----------
    name
        A key of `DISTRIBUTIONS` (`default`: the paper's proxy weight distribution).

    Returns
    -------
    torch.Tensor
        (N,) float32 normalised weights in [−1, 1].
    """
    if name not in DISTRIBUTIONS:
        raise WeightprogError(f"distribution: unknown {name!r}; use one of {', '.join(DISTRIBUTIONS)}")
    return torch.from_numpy(np.load(DATA_DIR / DISTRIBUTIONS[name]).astype(np.float32))


def default_sample(size: int = DEFAULT_SIZE, rows: int = DEFAULT_ROWS, seed: int = 0) -> WeightSample:
    """A sample of the built-in `default` distribution (`load_distribution`).

    Parameters
    ----------
    size
        Weights in the sample; a multiple of `rows`.
    rows
        Weights per column.
    seed
        Seed of the draw.

    Returns
    -------
    WeightSample
        (size / rows, rows) normalised weights, source `default`.
    """
    return sample_from_values(load_distribution("default"), size, rows, seed, source="default")


def sample_from_module(module: torch.nn.Module, size: int = DEFAULT_SIZE, rows: int = DEFAULT_ROWS,
                       seed: int = 0, normalise: str = "column", source: str = "weights") -> WeightSample:
    """A sample of a torch module's analog weights (`analog_tensors` of its parameters).

    Parameters
    ----------
    module
        The model; its matrix-like `*weight` parameters are the analog weights (embeddings and
        norms stay digital).
    size, rows, seed, normalise, source
        As for `sample_from_tensors`.

    Returns
    -------
    WeightSample
        (size / rows, rows) normalised weights.
    """
    return sample_from_tensors(analog_tensors(dict(module.named_parameters())), size, rows, seed, normalise, source)


def sample_from_array(array: ArrayLike, normalise: str = "tensor", source: str = "array",
                      size: int = DEFAULT_SIZE, rows: int = DEFAULT_ROWS, seed: int = 0) -> WeightSample:
    """A sample of one array of weights: any shape ((N,) is a plain sample of weights), normalised
    as one tensor (default) or per output column (dim 0); floating point only.

    Parameters
    ----------
    array
        The weights (a numpy array or anything `np.asarray` takes), floating point.
    normalise
        `tensor`: divided by max |w| of the whole array; `column`: by max |w| of each output (dim 0).
    source, size, rows, seed
        As for `sample_from_values`.

    Returns
    -------
    WeightSample
        (size / rows, rows) normalised weights.

    Raises
    ------
    WeightprogError
        A non-floating-point array, NaN or inf, or the errors of `sample_from_values`.
    """
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise WeightprogError(f"{source}: dtype {array.dtype}; weights must be a floating-point array")
    w = torch.as_tensor(array, dtype=torch.float32)
    check_finite(w, source)
    return sample_from_values(normalise_matrix(w, normalise), size, rows, seed, source)
