"""Reading a network's weights from files, safely: no code from the file is ever run.

`.pt/.pth/.ckpt/.bin` via `torch.load(weights_only=True)` (a state dict, or a checkpoint holding one
under `state_dict` / `model_state_dict` / `model`, as Lightning and training loops save them),
`.safetensors` (Hugging Face), `.npz` (one array per name) and `.npy` (one array). The library
(`load_state`) and the CLI (`largescale.iter_file_tensors`) read files by these same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .errors import WeightprogError

SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npz", ".npy")


NESTED_KEYS = ("state_dict", "model_state_dict", "model")
"""Keys under which checkpoints (Lightning, training loops) keep the model's state dict."""


def state_dict_of(obj, path: str | Path) -> Mapping[str, torch.Tensor]:
    """The state dict of what a torch file held: a plain state dict, a checkpoint holding one under
    `state_dict` / `model_state_dict` / `model`, or a single tensor."""
    if isinstance(obj, torch.Tensor):
        return {"weight": obj}
    if isinstance(obj, Mapping):
        for key in NESTED_KEYS:
            if isinstance(obj.get(key), Mapping):
                return state_dict_of(obj[key], path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightprogError(f"{path}: no tensors found (expected a state dict, or a checkpoint with "
                          f"{', '.join(repr(k) for k in NESTED_KEYS)})")


def read_error(path: str | Path, exc: Exception) -> WeightprogError:
    """One line for a weights file a reader could not parse, saying what the file is not."""
    text = str(exc).strip()
    first = (text.splitlines() or [type(exc).__name__])[0][:160]
    suffix = Path(path).suffix.lower()
    if "Weights only load failed" in text or "UnpicklingError" in type(exc).__name__:
        return WeightprogError(f"{path}: not a file of plain tensors (it holds other Python objects, or is not a "
                               f"torch file); weightprog never runs code from a file: save model.state_dict()")
    if suffix in (".pt", ".pth", ".ckpt", ".bin"):
        return WeightprogError(f"{path}: not a readable torch file (truncated or corrupt: {first})")
    if suffix == ".safetensors":
        return WeightprogError(f"{path}: not a readable safetensors file (truncated or corrupt: {first})")
    if suffix in (".npy", ".npz"):  # numpy's own words advise allow_pickle, never to be followed here
        return WeightprogError(f"{path}: not a numpy {suffix} file of numbers (not numpy's format, or it holds "
                               f"Python objects); save it with numpy.save of a float array")
    return WeightprogError(f"{path}: cannot read weights ({first})")


def missing(path: Path) -> None:
    """One line where a weights path is not a file: a folder, or nothing there."""
    if path.is_dir():
        raise WeightprogError(f"{path}: is a folder; --weights takes a weights file ({', '.join(SUFFIXES)})")
    if not path.is_file():
        raise WeightprogError(f"{path}: weights file not found")


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Name -> tensor for every array in a weights file."""
    path = Path(path)
    suffix = path.suffix.lower()
    missing(path)
    if suffix not in SUFFIXES:
        raise WeightprogError(f"{path}: unsupported weights file; use one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file
            return dict(load_file(str(path)))
        if suffix == ".npy":
            return {"weight": _from_numpy(np.load(path, allow_pickle=False), path, "array")}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: _from_numpy(data[k], path, k) for k in data.files}
        return dict(state_dict_of(torch.load(path, map_location="cpu", weights_only=True), path))
    except WeightprogError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear line
        raise read_error(path, exc) from None


def _from_numpy(array: np.ndarray, path: Path, name: str) -> torch.Tensor:
    if array.dtype.kind not in "fiubc":  # strings, dates, records: torch cannot hold them at all
        raise WeightprogError(f"{path}: {name} has dtype {array.dtype}; weights must be a floating-point "
                              f"array (float16, float32 or float64)")
    return torch.from_numpy(array)


def plain_arrays(state: Mapping[str, torch.Tensor], path: str | Path) -> list[tuple[str, torch.Tensor]]:
    """The arrays of a .npy/.npz file as weights: every floating-point array, a vector ((N,), (N, 1)
    or (1, N)) taken as one tensor normalised as a whole; other dtypes named in the error."""
    out, skipped = [], []
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            skipped.append(f"{name} has dtype {str(tensor.dtype).removeprefix('torch.')}")
        elif tensor.numel() == 0 or tensor.dim() == 0:
            skipped.append(f"{name} has shape {tuple(tensor.shape)}")
        else:
            vector = tensor.dim() == 1 or (tensor.dim() == 2 and 1 in tensor.shape)
            out.append((name, tensor.reshape(-1) if vector else tensor))
    if not out:
        raise WeightprogError(f"{path}: no weights ({'; '.join(skipped)}); weights must be a floating-point "
                              f"array (float16, float32 or float64) of at least one value")
    return out
