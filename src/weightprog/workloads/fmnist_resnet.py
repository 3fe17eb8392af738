"""`fmnist-resnet32`: CIFAR-style ResNet-32 (3 stages × 5 basic blocks, 16/32/64 channels) on
Fashion-MNIST (Debian package `dataset-fashion-mnist`), metric: test accuracy.

Images are used at their native 28 × 28 with one channel, normalised with the training set's mean
and std; the test metric uses the first `eval_size` test images (10,000 by default).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightprogError
from .common import Workload, checkpoint_entry, env_path, load_checkpoint, missing_data, subset

NAME = "fmnist-resnet32"
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_DIR = "WEIGHTPROG_FMNIST_DIR"
INSTALL = "apt-get install -y dataset-fashion-mnist (or set WEIGHTPROG_FMNIST_DIR to a folder of the IDX files)"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MEAN, STD = 0.2860, 0.3530
CLASSES = 10


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


def make_eval(x: torch.Tensor, y: torch.Tensor, batch: int = 500):
    @torch.no_grad()
    def evaluate_fn(model: nn.Module) -> float:
        dev = next(model.parameters()).device
        correct = 0
        for i in range(0, len(y), batch):
            correct += int((model(x[i:i + batch].to(dev)).argmax(1) == y[i:i + batch].to(dev)).sum())
        return correct / len(y)
    return evaluate_fn


def make_loss(x: torch.Tensor, y: torch.Tensor):
    def loss_fn(model: nn.Module) -> torch.Tensor:
        dev = next(model.parameters()).device
        return F.cross_entropy(model(x.to(dev)), y.to(dev))
    return loss_fn


def get(variant: str = "fp", eval_size: int | None = None, split: str = "test", data_dir=None,
        checkpoint: bool | str = True, seed: int = 0) -> Workload:
    x, y = load_fmnist(split, subset(eval_size, 10_000 if split == "test" else 60_000), data_dir)
    torch.manual_seed(seed)
    model = build_model()
    entry = None
    if checkpoint:
        model.load_state_dict(load_checkpoint(NAME, variant, None if checkpoint is True else checkpoint))
        entry = checkpoint_entry(NAME, variant)
    model.eval()
    meta = {"name": NAME, "variant": variant, "metric": "accuracy", "higher_is_better": True,
            "eval_size": len(y), "split": split, "loss_fn": make_loss(x[:256], y[:256]),
            "checkpoint": entry}
    return Workload(model, make_eval(x, y), meta)
