"""Training of the reference workloads, floating point (FP) and hardware-aware (HWA).

    python -m weightprog.workloads.train fmnist-resnet32 --variant fp    # 8 epochs, ~20 min on 2 cores
    python -m weightprog.workloads.train fmnist-resnet32 --variant hwa   # 2 epochs from the FP checkpoint

The defaults are the committed checkpoints' budgets (their exact commands are in the manifest).

HWA training (Joshi et al., Nat. Commun. 2020, as the paper uses it):
* weight-noise injection: every step the analog weights are perturbed by Gaussian noise of std
  `noise · max|W_row|` (per output row, i.e. per crossbar column), `noise` = the device's mean
  programming noise over its range relative to the range (PCM: 3.4 %); the gradient at the noisy
  weights updates the clean ones;
* input/output quantisation as in the `standard` periphery: 8-bit inputs (DAC) and 8-bit outputs
  (ADC, Linear/Conv) with a straight-through estimator, ranges tracked as a running max, and
  output noise of 1/127 of the output range;
* weight clipping to ±2.5 σ of each analog tensor after every step.
Checkpoints are written in fp16 (safetensors) with an entry in checkpoints/manifest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import validate
from ..devices import get_device
from ..fileio import atomic_write, atomic_write_json
from ..nn import find_analog_weights
from .common import MANIFEST, checkpoint_path, read_manifest, sha256


@dataclass(frozen=True)
class HWAConfig:
    """Hardware-aware training noise and quantisation; validated when made."""

    noise: float = 0.034
    dac_bits: int = 8
    adc_bits: int = 8
    output_noise: float = 1 / 127
    clip_sigma: float = 2.5
    range_momentum: float = 0.99

    def __post_init__(self):
        validate.number(self.noise, "noise", minimum=0, maximum=1)
        validate.integer(self.dac_bits, "dac_bits", 2, 32)
        validate.integer(self.adc_bits, "adc_bits", 2, 32)
        validate.number(self.output_noise, "output_noise", minimum=0, maximum=1)
        validate.number(self.clip_sigma, "clip_sigma", above=0)
        validate.number(self.range_momentum, "range_momentum", minimum=0, below=1)


def device_noise_scale(device="pcm") -> float:
    """Mean programming-noise std over the device's range, relative to the range."""
    dev = get_device(device)
    g = torch.linspace(dev.g_min, dev.g_max, 201, dtype=torch.float64)
    return float(dev.programming_std(g).mean() / (dev.g_max - dev.g_min))


class _STEQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bound, bits):
        levels = 2 ** (bits - 1) - 1
        step = bound / levels
        return torch.round(x.clamp(-bound, bound) / step) * step

    @staticmethod
    def backward(ctx, g):
        return g, None, None


class HWA:
    """Hooks and weight perturbation for hardware-aware training of any model's analog weights."""

    def __init__(self, model: nn.Module, cfg: HWAConfig, exclude=None):
        self.model, self.cfg = model, cfg
        self.weights = find_analog_weights(model, exclude=exclude)
        self.ranges: dict[int, list[float]] = {}
        self.active: bool | None = None
        """Force training behaviour (range tracking, output noise) on/off; None follows model.training."""
        self.handles = []
        seen = set()
        for w in self.weights:
            m = w.module
            if id(m) in seen:
                continue
            seen.add(id(m))
            full = isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
            self.handles.append(m.register_forward_pre_hook(self._pre(m)))
            if full:
                self.handles.append(m.register_forward_hook(self._post(m)))

    def _training(self) -> bool:
        return self.model.training if self.active is None else self.active

    def _track(self, key, x):
        cur = float(x.detach().abs().max())
        r = self.ranges.setdefault(key, [cur])
        if self._training():
            r[0] = max(self.cfg.range_momentum * r[0] + (1 - self.cfg.range_momentum) * cur, 1e-8)
        return r[0]

    def _pre(self, m):
        def hook(_, args):
            if not args or not torch.is_tensor(args[0]) or not args[0].is_floating_point():
                return None
            bound = self._track((id(m), "in"), args[0])
            return (_STEQuant.apply(args[0], bound, self.cfg.dac_bits),) + tuple(args[1:])
        return hook

    def _post(self, m):
        def hook(_, args, out):
            bound = self._track((id(m), "out"), out)
            if self._training() and self.cfg.output_noise > 0:
                out = out + torch.randn_like(out) * (self.cfg.output_noise * bound)
            return _STEQuant.apply(out, bound, self.cfg.adc_bits)
        return hook

    @contextlib.contextmanager
    def noisy(self):
        """Perturb the analog weights for one forward/backward; restore before the update."""
        saved = []
        with torch.no_grad():
            for w in self.weights:
                p = w.param
                saved.append(p.detach().clone())
                rows = p.reshape(p.shape[0], -1)
                scale = rows.abs().amax(1, keepdim=True).reshape((p.shape[0],) + (1,) * (p.dim() - 1))
                p.add_(torch.randn_like(p) * scale * self.cfg.noise)
        try:
            yield
        finally:
            with torch.no_grad():
                for w, s in zip(self.weights, saved):
                    w.param.copy_(s)

    @torch.no_grad()
    def clip(self):
        for w in self.weights:
            p = w.param
            bound = self.cfg.clip_sigma * float(p.std())
            p.clamp_(-bound, bound)

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def _previous(name: str, variant: str) -> dict | None:
    """Manifest entry of the checkpoint a resumed run starts from (its command comes first)."""
    entry = read_manifest().get(checkpoint_path(name, variant).name)
    return None if entry is None else {k: entry[k] for k in ("command", "value", "steps", "batch") if k in entry}


def save_checkpoint(name: str, variant: str, model: nn.Module, metric: float, metric_name: str,
                    info: dict, keys=None) -> dict:
    """fp16 safetensors of the state dict (or of `keys` only) + manifest entry."""
    from safetensors.torch import save_file
    state = {k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in model.state_dict().items() if keys is None or k in keys}
    path = checkpoint_path(name, variant)
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    manifest = read_manifest()
    command = "python -m weightprog.workloads.train " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if info.get("resumed_from"):
        command = info["resumed_from"]["command"] + " && " + command
    entry = {"file": path.name, "workload": name, "variant": variant, "sha256": sha256(path),
             "bytes": path.stat().st_size, "metric": metric_name, "value": metric,
             "command": command,
             **info}
    manifest[path.name] = entry
    atomic_write_json(MANIFEST, dict(sorted(manifest.items())))
    return entry


def _step_lr(opt, base: float, step: int, total: int, warmup: int = 0):
    if step < warmup:
        lr = base * (step + 1) / warmup
    else:
        lr = base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def train_step(opt, hwa: HWA | None, loss_fn, clip_grad: float | None = None) -> torch.Tensor:
    """One optimiser step. With HWA the loss and its gradient see noisy weights, and the weights
    are clipped after the step."""
    with (hwa.noisy() if hwa else contextlib.nullcontext()):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip_grad)
    opt.step()
    if hwa:
        hwa.clip()
    return loss


def _log(msg: str):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ---------------------------------------------------------------- Fashion-MNIST ResNet-32
def train_fmnist(variant: str, steps: int, batch: int = 128, lr: float | None = None, seed: int = 0,
                 eval_size: int = 10_000, hwa_cfg: HWAConfig | None = None, data_dir=None,
                 resume: bool = False) -> dict:
    from .common import load_checkpoint
    from .fmnist_resnet import NAME, build_model, load_fmnist, make_eval
    torch.manual_seed(seed)
    x, y = load_fmnist("train", None, data_dir)
    xt, yt = load_fmnist("test", eval_size, data_dir)
    model = build_model()
    hwa = None
    if variant == "hwa" or resume:
        model.load_state_dict(load_checkpoint(NAME, "fp"))
    model = model.to(memory_format=torch.channels_last)  # faster CPU convolutions (oneDNN's native layout)
    if variant == "hwa":
        hwa = HWA(model, hwa_cfg or HWAConfig())
    lr = lr if lr is not None else (0.1 if variant == "fp" else 0.01)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen)
    start = time.time()
    model.train()
    for step in range(steps):
        _step_lr(opt, lr, step, steps, warmup=min(10, steps // 10) if variant == "fp" and not resume else 0)
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
        loss = train_step(opt, hwa, lambda: F.cross_entropy(model(xb), yb))
        if step % 20 == 0 or step == steps - 1:
            _log(f"step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    if hwa:
        hwa.remove()
    model.eval()
    acc = make_eval(xt, yt)(model)
    wall = time.time() - start
    _log(f"test accuracy {acc:.4f} on {len(yt)} images, {wall:.0f} s")
    info = {"steps": steps, "batch": batch, "images_seen": steps * batch, "lr": lr, "seed": seed,
            "resumed_from": _previous(NAME, "fp") if resume else None,
            "eval_size": len(yt), "train_wall_s": round(wall, 1),
            "hwa": asdict(hwa_cfg or HWAConfig()) if variant == "hwa" else None}
    return save_checkpoint(NAME, variant, model, acc, "accuracy", info)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m weightprog.workloads.train")
    p.add_argument("workload")
    p.add_argument("--variant", choices=("fp", "hwa"), default="fp")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="pcm", help="device whose programming noise scales HWA noise")
    p.add_argument("--output-noise", type=float, default=HWAConfig.output_noise,
                   help="HWA output noise, fraction of the output range: 1/127 matches the `standard` "
                        "periphery, 0 the `io8` one; train for the periphery the model is deployed with")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-size", type=int, default=None, help="sentiment-minilm: training sentences used")
    p.add_argument("--resume", action="store_true", help="fmnist-resnet32, ptb-lstm fp: continue from the committed FP checkpoint")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        cfg = HWAConfig(noise=device_noise_scale(a.device), output_noise=a.output_noise)
    except validate.SettingError as exc:
        p.error(str(exc.named("--" + exc.field.replace("_", "-"))))
    kw = {k: v for k, v in (("batch", a.batch), ("lr", a.lr)) if v is not None}
    if a.workload == "fmnist-resnet32":
        entry = train_fmnist(a.variant, a.steps or (3750 if a.variant == "fp" else 940), seed=a.seed, hwa_cfg=cfg, resume=a.resume, **kw)
    elif a.workload == "ptb-lstm":
        from .ptb_lstm import train as tr
        entry = tr(a.variant, a.steps, seed=a.seed, hwa_cfg=cfg, resume=a.resume, **kw)
    elif a.workload == "sentiment-minilm":
        from .sentiment_minilm import train as tr
        entry = tr(a.variant, a.steps, seed=a.seed, hwa_cfg=cfg, train_size=a.train_size, **kw)
    else:
        raise SystemExit(f"unknown workload {a.workload!r}")
    print(entry)


if __name__ == "__main__":
    main()
