"""`fmnist-resnet32`: CIFAR-style ResNet-32 (3 stages × 5 basic blocks, 16/32/64 channels) on
Fashion-MNIST (Debian package `dataset-fashion-mnist`), metric: test accuracy.

Images are used at their native 28 × 28 with one channel, normalised with the training set's mean
and std; the test metric uses the first `eval_size` test images (10,000 by default).
"""

from __future__ import annotations

import gzip
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightprogError
from . import training
from .common import Workload, checkpoint_entry, env_path, lazy, load_checkpoint, missing_data, subset
from .training import HWA, HWAConfig, previous_checkpoint, save_checkpoint, step_lr, train_step

NAME = "fmnist-resnet32"
METRIC = ("accuracy", True)
"""The metric and whether higher is better (the workload spec's `metric`, `higher_is_better`)."""
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_DIR = "WEIGHTPROG_FMNIST_DIR"
INSTALL = "apt-get install -y dataset-fashion-mnist (or set WEIGHTPROG_FMNIST_DIR to a folder of the IDX files)"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MEAN, STD = 0.2860, 0.3530
CLASSES = 10
VALIDATE_SIZE = 2_000
"""Images `validate` scores (the last of the training split: choices are never made on test images)."""
CALIBRATE_SIZE = 500
"""Images `calibrate` runs (the first of the training split)."""


def _open(folder: Path, stem: str):
    for name in (stem + ".gz", stem):
        p = folder / name
        if p.exists():
            return gzip.open(p, "rb") if name.endswith(".gz") else open(p, "rb")
    raise missing_data("Fashion-MNIST", INSTALL, f"no {stem}[.gz] in {folder}")


def _idx(folder: Path, stem: str, limit: int | None) -> np.ndarray:
    with _open(folder, stem) as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = magic & 0xFF
        if magic >> 8 != 0x08 or dims not in (1, 3):
            raise WeightprogError(f"Fashion-MNIST: {folder / stem} is not an IDX ubyte file")
        shape = struct.unpack(">" + "I" * dims, f.read(4 * dims))
        n = shape[0] if limit is None else min(limit, shape[0])
        count = n * int(np.prod(shape[1:], dtype=np.int64))
        data = np.frombuffer(f.read(count), dtype=np.uint8)
        if data.size != count:
            raise WeightprogError(f"Fashion-MNIST: {folder / stem} is truncated")
        return data.reshape((n,) + tuple(shape[1:]))


def load_fmnist(split: str = "test", limit: int | None = None, data_dir: str | Path | None = None):
    """(images (N,1,28,28) float normalised, labels (N,) long) of a split."""
    if split not in FILES:
        raise WeightprogError(f"Fashion-MNIST: split must be train or test, got {split!r}")
    folder = Path(data_dir) if data_dir is not None else env_path(ENV_DIR, DEFAULT_DIR)
    if not folder.is_dir():
        raise missing_data("Fashion-MNIST", INSTALL, f"folder {folder} does not exist")
    imgs, labels = FILES[split]
    x = torch.from_numpy(_idx(folder, imgs, limit).copy()).float().div_(255).sub_(MEAN).div_(STD)
    y = torch.from_numpy(_idx(folder, labels, limit).astype(np.int64))
    return x.unsqueeze(1), y


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:  # option B: 1×1 projection (analog too)
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) of He et al. 2016 for small images; n = 5 gives ResNet-32."""

    def __init__(self, n: int = 5, in_channels: int = 1, classes: int = CLASSES, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build_model() -> ResNetCifar:
    return ResNetCifar(n=5)


def make_examples(x: torch.Tensor, y: torch.Tensor, batch: int = 500):
    """Per-image correctness (1.0 or 0.0) of the model on (x, y)."""
    @torch.no_grad()
    def examples_fn(model: nn.Module) -> torch.Tensor:
        dev = next(model.parameters()).device
        parts = [(model(x[i:i + batch].to(dev)).argmax(1) == y[i:i + batch].to(dev)).double().cpu()
                 for i in range(0, len(y), batch)]
        return torch.cat(parts)
    return examples_fn


def make_eval(x: torch.Tensor, y: torch.Tensor, batch: int = 500):
    """Accuracy of the model on (x, y)."""
    examples = make_examples(x, y, batch)

    def evaluate_fn(model: nn.Module) -> float:
        return float(examples(model).mean())
    return evaluate_fn


def make_calibrate(x: torch.Tensor, batch: int = 500):
    """Runs the images `x` through the model (the periphery's ranges are recorded meanwhile)."""
    @torch.no_grad()
    def calibrate_fn(model: nn.Module) -> None:
        dev = next(model.parameters()).device
        for i in range(0, len(x), batch):
            model(x[i:i + batch].to(dev))
    return calibrate_fn


def make_loss(x: torch.Tensor, y: torch.Tensor):
    def loss_fn(model: nn.Module) -> torch.Tensor:
        dev = next(model.parameters()).device
        return F.cross_entropy(model(x.to(dev)), y.to(dev))
    return loss_fn


def make_losses(x: torch.Tensor, y: torch.Tensor, batch: int = 50):
    """Cross-entropy of each mini-batch of (x, y), with gradients (the spec's `loss`)."""
    loss = [make_loss(x[i:i + batch], y[i:i + batch]) for i in range(0, len(y), batch)]

    def losses_fn(model: nn.Module) -> Iterator[torch.Tensor]:
        return (fn(model) for fn in loss)
    return losses_fn


def get(variant: str = "fp", eval_size: int | None = None, split: str = "test", data_dir=None,
        checkpoint: bool | str = True, seed: int = 0, validate_size: int = VALIDATE_SIZE) -> Workload:
    available = 10_000 if split == "test" else 60_000
    x, y = load_fmnist(split, subset(eval_size, available), data_dir)
    torch.manual_seed(seed)
    model = build_model()
    entry = None
    if checkpoint:
        model.load_state_dict(load_checkpoint(NAME, variant, None if checkpoint is True else checkpoint))
        entry = checkpoint_entry(NAME, variant)
    model.eval()
    meta = {"name": NAME, "variant": variant, "metric": METRIC[0], "higher_is_better": METRIC[1],
            "eval_size": len(y), "available": available, "split": split, "loss_fn": make_loss(x[:256], y[:256]),
            "checkpoint": entry, "validate": f"the last {validate_size} training images",
            "calibrate": f"the first {CALIBRATE_SIZE} training images"}

    def held_out():  # the checkpoints trained on all 60,000 training images: no unseen non-test split exists
        xv, yv = load_fmnist("train", None, data_dir)
        return make_examples(xv[-validate_size:], yv[-validate_size:])
    return Workload(model, make_eval(x, y), meta, make_examples(x, y), lazy(held_out),
                    lazy(lambda: make_calibrate(load_fmnist("train", CALIBRATE_SIZE, data_dir)[0])),
                    losses_fn=lazy(lambda: make_losses(*load_fmnist("train", CALIBRATE_SIZE, data_dir))))


def train(variant: str, steps: int | None = None, batch: int = 128, lr: float | None = None, seed: int = 0,
          eval_size: int = 10_000, hwa_cfg: HWAConfig | None = None, data_dir=None, resume: bool = False,
          command: str | None = None, log: training.Log | None = None) -> dict:
    """Train ResNet-32 on Fashion-MNIST and write its checkpoint and manifest entry.

    SGD with Nesterov momentum and weight decay, cosine learning rate, random 2-pixel crops and
    horizontal flips; HWA fine-tunes the FP checkpoint with weight noise, through the HWA periphery.

    Parameters
    ----------
    variant : {'fp', 'hwa'}
        Floating-point training, or hardware-aware fine-tuning of the committed FP checkpoint.
    steps : int, optional
        Optimiser steps (default 3750 for fp = 8 epochs, 940 for hwa = 2 epochs).
    batch : int
        Images per step.
    lr : float, optional
        Peak learning rate (default 0.1 for fp, 0.01 for hwa).
    seed : int
        Seed of the initialisation, the shuffling and the augmentation.
    eval_size : int
        Test images of the recorded accuracy.
    hwa_cfg : HWAConfig, optional
        HWA weight noise and periphery (default `HWAConfig()`: the `standard` periphery).
    data_dir : str or Path, optional
        Folder of the Fashion-MNIST IDX files.
    resume : bool
        Start from the committed FP checkpoint (no warm-up).
    command : str, optional
        The command the manifest records (see `training.save_checkpoint`).
    log : callable, optional
        Receives progress lines (default: `training.log`, a logging record).

    Returns
    -------
    dict
        The checkpoint's manifest entry.
    """
    log = log or training.log
    steps = steps or (3750 if variant == "fp" else 940)
    torch.manual_seed(seed)
    x, y = load_fmnist("train", None, data_dir)
    xt, yt = load_fmnist("test", eval_size, data_dir)
    model = build_model()
    hwa = None
    if variant == "hwa" or resume:
        model.load_state_dict(load_checkpoint(NAME, "fp"))
    # faster CPU convolutions (oneDNN's native layout); torch's stubs omit Module.to's memory_format
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if variant == "hwa":
        hwa = HWA(model, hwa_cfg or HWAConfig())
    lr = lr if lr is not None else (0.1 if variant == "fp" else 0.01)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen)
    start = time.time()
    model.train()
    for step in range(steps):
        step_lr(opt, lr, step, steps, warmup=min(10, steps // 10) if variant == "fp" and not resume else 0)
        idx = perm[(step * batch) % len(y):][:batch]
        if len(idx) < batch:
            perm = torch.randperm(len(y), generator=gen)
            idx = perm[:batch]
        xb, yb = x[idx], y[idx]
        # augmentation: random crop with 2-pixel padding, horizontal flip
        xb = F.pad(xb, (2, 2, 2, 2), value=float(xb.min()))
        i, j = torch.randint(0, 5, (2,), generator=gen).tolist()
        xb = xb[:, :, i:i + 28, j:j + 28]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb).contiguous(memory_format=torch.channels_last)

        def batch_loss(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
            return F.cross_entropy(model(xb), yb)

        loss = train_step(opt, hwa, batch_loss)
        if step % 20 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    if hwa:
        hwa.remove()
    model.eval()
    acc = make_eval(xt, yt)(model)
    wall = time.time() - start
    log(f"test accuracy {acc:.4f} on {len(yt)} images, {wall:.0f} s")
    info = {"steps": steps, "batch": batch, "images_seen": steps * batch, "lr": lr, "seed": seed,
            "resumed_from": previous_checkpoint(NAME, "fp") if resume else None,
            "eval_size": len(yt), "train_wall_s": round(wall, 1),
            "hwa": (hwa_cfg or HWAConfig()).to_dict() if variant == "hwa" else None}
    return save_checkpoint(NAME, variant, model, acc, "accuracy", info, command=command)
