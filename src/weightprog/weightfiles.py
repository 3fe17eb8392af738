"""Reading a network's weights from files, safely: no code from the file is ever run.

`.pt/.pth/.ckpt/.bin` via `torch.load(weights_only=True)` (a state dict, or a checkpoint holding one
under `state_dict` / `model_state_dict` / `model`), `.safetensors`, `.npz` (one array per name) and
`.npy` (one array).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .errors import WeightprogError

SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npz", ".npy")


def _state_dict_of(obj, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return {"weight": obj}
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                return obj[key]
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightprogError(f"{path}: no tensors found (expected a state dict or a checkpoint with 'state_dict')")


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Name -> tensor for every array in a weights file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise WeightprogError(f"{path}: weights file not found")
    if suffix not in SUFFIXES:
        raise WeightprogError(f"{path}: unsupported weights file; use one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file
            return dict(load_file(str(path)))
        if suffix == ".npy":
            return {"weight": torch.from_numpy(np.load(path, allow_pickle=False))}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: torch.from_numpy(data[k]) for k in data.files}
        return dict(_state_dict_of(torch.load(path, map_location="cpu", weights_only=True), path))
    except WeightprogError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise WeightprogError(f"{path}: cannot read weights ({first})") from None
