"""Weight samples of large networks without pooling every weight (issue 7, part 3).

`sample_from_values(pooled_values(...))` holds the pooled, normalised copy of every analog weight
(plus a permutation of all of them): several copies of a 100 M-weight model. Here the analog
tensors are streamed one at a time and only a bounded, uniform sample of their normalised values
is kept, with a chunked reservoir:

* after each tensor the kept values are a uniform sample without replacement of all weights seen
  so far (exact, not approximate): with N weights seen, k kept and a new tensor of n, the number
  taken from the new tensor is hypergeometric (n good, N bad, k drawn), that many are drawn
  uniformly from the new tensor and the rest of the reservoir is a uniform subset of the old one;
* a tensor is never copied whole: its per-column scale comes from amax/amin (no |w| copy), and
  only the chosen entries are gathered and normalised;
* the total need not be known in advance, so lazily loaded files (safetensors, mmap-ed torch
  files) stream tensor by tensor too.

When the model has at most `values_size` analog weights the result equals the pooled values
exactly, in the same order, so small models give the same sample as `sample_from_values`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import WeightprogError
from .sample import DEFAULT_ROWS, DEFAULT_SIZE, NORMALISE, WeightSample, analog_tensors, sample_from_values
from .weightfiles import SUFFIXES, load_state, missing, plain_arrays, read_error, state_dict_of

DEFAULT_VALUES_SIZE = 1 << 20
"""Normalised values kept for re-scoring (4 MiB of float32): 100 × the default search sample."""


@dataclass
class StreamedSample:
    """The search sample and the bounded pool of normalised values it was drawn from."""

    sample: WeightSample
    values: torch.Tensor
    """Uniform sample (without replacement) of every analog weight, normalised as deployed; at
    most `values_size` of them. Pass it to `optimize` for re-scoring."""
    total_weights: int
    """Analog weights seen in the model."""
    tensors: list[str]
    """Names of the analog tensors that were streamed, in order."""

    def __iter__(self):  # sample, values = sample_large(...)
        return iter((self.sample, self.values))


def _scale(w: torch.Tensor, normalise: str, where: str) -> torch.Tensor:
    """max |w| per output column (rows of the (out, -1) view) or of the whole tensor: one
    aminmax pass, no |w| copy. NaN and inf show up in the extremes, so they are caught here too."""
    m = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)
    low, high = torch.aminmax(m, dim=1) if normalise == "column" else torch.aminmax(m)
    if not (bool(torch.isfinite(low).all()) and bool(torch.isfinite(high).all())):
        bad = int((~torch.isfinite(w)).sum())
        raise WeightprogError(f"{where}: {bad} weights are NaN or inf")
    scale = torch.maximum(high, -low).to(torch.float32).reshape(-1)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _gather(w: torch.Tensor, index: np.ndarray, normalise: str, where: str) -> torch.Tensor:
    """Normalised values of the flat entries `index` (sorted) of one tensor."""
    scale = _scale(w, normalise, where)
    flat = w.reshape(-1)
    idx = torch.from_numpy(index.astype(np.int64, copy=False))
    per_row = flat.numel() // scale.numel()
    # index_select: plain indexing of a large tensor costs ~200× more here
    return flat.index_select(0, idx).to(torch.float32) / scale.index_select(0, idx // per_row)


def stream_values(tensors: Iterable[tuple[str, torch.Tensor]], values_size: int = DEFAULT_VALUES_SIZE,
                  seed: int = 0, normalise: str = "column", source: str = "weights"
                  ) -> tuple[torch.Tensor, int, list[str]]:
    """(values, total, names): a uniform `values_size` sample of the normalised weights of
    `tensors`, consumed one at a time (each tensor may be loaded lazily and dropped after).

    Work per tensor: one pass for its column scales, and O(values taken from it) for the rest.
    """
    if normalise not in NORMALISE:
        raise WeightprogError(f"normalise: use one of {', '.join(NORMALISE)}, got {normalise!r}")
    if int(values_size) < 1:
        raise WeightprogError(f"values_size: need at least 1, got {values_size}")
    k = int(values_size)
    rng = np.random.default_rng(seed)
    reservoir = torch.empty(k, dtype=torch.float32)
    seen, names = 0, []
    for name, w in tensors:
        w = w.detach()
        n = w.numel()
        if n == 0:
            continue
        names.append(name)
        where = f"{source}: {name}"
        filled = min(seen, k)
        if seen + n <= k:  # everything so far fits: keep all, in order
            reservoir[seen:seen + n] = _gather(w, np.arange(n), normalise, where)
        else:
            # the new reservoir is a uniform k-subset of the seen + n weights: m of them from this
            # tensor (hypergeometric), the other k - m a uniform subset of the old reservoir. The m
            # new values go to the empty slots and to (filled - (k - m)) uniformly chosen old ones.
            m = int(rng.hypergeometric(n, seen, k)) if seen else k
            drop = filled - (k - m)
            slots = np.concatenate([np.arange(filled, k), rng.choice(filled, drop, replace=False)]) \
                if drop > 0 else np.arange(filled, k)
            take = np.sort(rng.choice(n, m, replace=False))
            reservoir.index_copy_(0, torch.from_numpy(slots.astype(np.int64)), _gather(w, take, normalise, where))
        seen += n
    if seen == 0:
        raise WeightprogError(f"{source}: no analog weights found (floating-point tensors of ≥ 2 dimensions "
                              f"named *weight*, or any floating-point array in a .npy/.npz file)")
    return reservoir[:seen].clone() if seen < k else reservoir, seen, names


def sample_large(tensors: Iterable[tuple[str, torch.Tensor]] | torch.nn.Module | Mapping[str, torch.Tensor],
                 size: int = DEFAULT_SIZE, rows: int = DEFAULT_ROWS, seed: int = 0,
                 normalise: str = "column", values_size: int = DEFAULT_VALUES_SIZE,
                 source: str = "weights") -> StreamedSample:
    """Search sample and re-scoring values of a large model, streaming its analog tensors.

    `tensors` is a module (its analog weights, as `sample_from_module` takes them), a state dict
    (its analog tensors), or any iterable of (name, tensor) pairs (taken as they come, e.g. a lazy
    file reader). The values are a seeded uniform sample of at most `values_size` normalised
    weights; the search sample is drawn from them as `sample_from_values` does (same seed).

    >>> sample, values = sample_large(model, seed=0)
    >>> outcome = optimize(sample, values, "pcm", settings)
    """
    if isinstance(tensors, torch.nn.Module):
        tensors = analog_tensors(dict(tensors.named_parameters()))
    elif isinstance(tensors, Mapping):
        tensors = analog_tensors(tensors)
    values, total, names = stream_values(tensors, values_size, seed, normalise, source)
    sample = sample_from_values(values, size, rows, seed, source)
    return StreamedSample(sample, values, total, names)


def iter_file_tensors(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Analog tensors of a weights file, one at a time: safetensors files are read lazily, torch
    files are memory-mapped (`torch.load(mmap=True)`), so the file is never held in memory whole."""
    path = Path(path)
    missing(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightprogError(f"{path}: unsupported weights file; use one of {', '.join(SUFFIXES)}")
    if suffix == ".safetensors":
        from safetensors import safe_open

        try:
            handle = safe_open(str(path), framework="pt")
        except Exception as exc:  # noqa: BLE001 - a corrupt header is one line, not a traceback
            raise read_error(path, exc) from None
        with handle as f:
            for name in f.keys():  # noqa: SIM118 - a safetensors handle is not iterable
                try:
                    shape = f.get_slice(name).get_shape()
                    if len(shape) < 2:
                        continue
                    tensor = f.get_tensor(name)
                except Exception as exc:  # noqa: BLE001
                    raise read_error(path, exc) from None
                yield from analog_tensors({name: tensor})
                del tensor
        return
    if suffix in (".pt", ".pth", ".ckpt", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception:  # noqa: BLE001 - old (non-zip) files cannot be mmap-ed: load them whole
            obj = load_state(path)  # (its errors are one line naming the file)
        yield from analog_tensors(state_dict_of(obj, path))
        return
    state = load_state(path)  # .npz/.npy: numpy loads them whole anyway
    named = list(analog_tensors(state)) if suffix == ".npz" else []  # a .npy is one plain array
    yield from named or plain_arrays(state, path)


def sample_file(path: str | Path, size: int = DEFAULT_SIZE, rows: int = DEFAULT_ROWS, seed: int = 0,
                normalise: str = "column", values_size: int = DEFAULT_VALUES_SIZE) -> StreamedSample:
    """`sample_large` over a weights file, streamed tensor by tensor."""
    return sample_large(iter_file_tensors(path), size, rows, seed, normalise, values_size, source=str(path))


__all__ = ["StreamedSample", "stream_values", "sample_large", "sample_file", "iter_file_tensors",
           "DEFAULT_VALUES_SIZE"]
