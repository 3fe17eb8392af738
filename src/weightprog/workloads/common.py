"""Shared pieces of the reference workloads: workload record, checkpoints, data errors."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from ..choices import VARIANTS
from ..errors import WeightprogError
from ..nn.spec import ModelSpec

T = TypeVar("T")

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MANIFEST = CHECKPOINT_DIR / "manifest.json"


@dataclass
class Workload:
    """What `get_workload` returns, also unpackable as (model, evaluate_fn, metadata).

    Beside the test metric `evaluate_fn` (a number), a workload scores per example (`examples_fn`,
    aggregated by `aggregate`), on held-out data it is not tested on (`validate_fn`), and runs
    calibration inputs (`calibrate_fn`); `spec()` puts them together as a model spec.
    """
    model: nn.Module
    evaluate_fn: Callable[[nn.Module], float]
    metadata: dict = field(default_factory=dict)
    examples_fn: Callable[[nn.Module], torch.Tensor] | None = None
    """Per-example test values (1-D); `aggregate` of them is `evaluate_fn`'s metric."""
    validate_fn: Callable[[nn.Module], object] | None = None
    """Per-example values on held-out, non-test data (built on first use)."""
    calibrate_fn: Callable[[nn.Module], object] | None = None
    """Runs representative non-test inputs through the model (built on first use)."""
    aggregate: Callable[[torch.Tensor], float] | None = None
    """Per-example values -> the metric (None: the mean)."""
    losses_fn: Callable[[nn.Module], Iterable[torch.Tensor]] | None = None
    """Training losses of mini-batches of the calibration data (the spec's `loss`, for
    `--weighting fisher`; built on first use)."""

    def __iter__(self):
        return iter((self.model, self.evaluate_fn, self.metadata))

    def spec(self) -> ModelSpec:
        """The model spec: per-example test values, validate and calibrate, direction, name and loss."""
        return ModelSpec(self.model, self.examples_fn or self.evaluate_fn, self.validate_fn, self.calibrate_fn,
                         bool(self.metadata.get("higher_is_better", True)), self.aggregate,
                         self.metadata.get("metric"), self.losses_fn)


def lazy(build: Callable[[], Callable[[nn.Module], T]]) -> Callable[[nn.Module], T]:
    """A metric function whose data is loaded on its first call (validation and calibration data
    cost nothing to a caller that only tests)."""
    made: list[Callable[[nn.Module], T]] = []

    def run(model: nn.Module) -> T:
        if not made:
            made.append(build())
        return made[0](model)
    return run


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
