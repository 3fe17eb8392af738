"""Shared pieces of the reference workloads: workload record, checkpoints, data errors."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightprogError

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MANIFEST = CHECKPOINT_DIR / "manifest.json"
VARIANTS = ("fp", "hwa")


@dataclass
class Workload:
    """What `get_workload` returns, also unpackable as (model, evaluate_fn, metadata)."""
    model: nn.Module
    evaluate_fn: Callable[[nn.Module], float]
    metadata: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.model, self.evaluate_fn, self.metadata))


def missing_data(what: str, install: str, detail: str = "") -> WeightprogError:
    extra = f" ({detail})" if detail else ""
    return WeightprogError(f"{what} not found{extra}; install it with: {install}")


def checkpoint_path(name: str, variant: str) -> Path:
    return CHECKPOINT_DIR / f"{name}-{variant}.safetensors"


def read_manifest() -> dict:
    if not MANIFEST.exists():
        return {}
    try:
        return json.loads(MANIFEST.read_text())
    except json.JSONDecodeError as exc:
        raise WeightprogError(f"{MANIFEST}: not valid JSON ({exc})") from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(name: str, variant: str, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The committed fp16 state dict of a workload variant, as float32 (sha256-checked)."""
    from safetensors.torch import load_file
    if variant not in VARIANTS:
        raise WeightprogError(f"variant: use one of {', '.join(VARIANTS)}, got {variant!r}")
    p = Path(path) if path is not None else checkpoint_path(name, variant)
    if not p.exists():
        raise WeightprogError(f"checkpoint {p} not found; train it with: "
                              f"weightprog train {name} --variant {variant}")
    entry = read_manifest().get(p.name)
    if path is None and entry is not None and entry.get("sha256") != sha256(p):
        raise WeightprogError(f"checkpoint {p}: sha256 does not match manifest.json")
    return {k: v.float() for k, v in load_file(str(p)).items()}


def checkpoint_entry(name: str, variant: str) -> dict | None:
    return read_manifest().get(checkpoint_path(name, variant).name)


def env_path(var: str, default: str) -> Path:
    return Path(os.environ.get(var) or default)


def subset(n: int | None, total: int) -> int:
    if n is None:
        return total
    if n < 1:
        raise WeightprogError(f"eval_size: need >= 1, got {n}")
    return min(int(n), total)
