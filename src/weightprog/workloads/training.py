"""What every reference workload's training shares: hardware-aware (HWA) training, the optimiser
step, the learning-rate schedule, checkpoints and their manifest entries, progress lines.

Each workload trains in its own module (`fmnist_resnet.train`, `ptb_lstm.train`,
`sentiment_minilm.train`) and hands its own loss to `train_step`; this module never imports a
workload. `python -m weightprog.workloads.train` and `weightprog train` pick the workload.

HWA training (Joshi et al., Nat. Commun. 2020, as the paper uses it):
* weight-noise injection: every step the analog weights are perturbed by Gaussian noise, and the
  gradient at the noisy weights updates the clean ones. Its std is either `noise · max|W_row|`
  (per output row, i.e. per crossbar column; `noise` = the device's mean programming noise over
  its range relative to the range, PCM: 3.4 %; the form of the earlier checkpoints) or, with
  `noise_device`, the device model's own programming noise where each weight lands on one device
  pair (g = g_min + |w| / max|W_row| · (g_max − g_min) on one device, g_min on the other), the curve
  `ProgrammedTensor` programs with in evaluation;
* the periphery the model is evaluated with (`HWAConfig.periphery`, a `weightprog.nn.periphery`
  preset; default `standard`: 8-bit DAC and ADC, output noise of 1/127 of the output range),
  attached by the same `nn.attach.attached` that evaluation uses — converters, output noise,
  static or dynamic input scaling, per-layer/tile/column ranges, recurrent products — with a
  straight-through gradient through the quantisers and the ranges tracked as a moving average of
  each batch's max (`nn.attach.Tracking`) instead of calibrated; output noise only while training;
* weight clipping to ±`clip_sigma` σ of each analog tensor after every step (default 2.5; None: none).
Checkpoints are written in fp16 (safetensors) with an entry in checkpoints/manifest.json.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import nn

from .. import validate
from ..devices import get_device
from ..errors import WeightprogError
from ..fileio import atomic_write, atomic_write_json
from ..nn import find_analog_weights
from ..nn.attach import Tracking, attached
from ..nn.calibration import Ranges
from ..nn.periphery import Periphery, get_periphery
from .common import MANIFEST, checkpoint_path, read_manifest, sha256

MODULE_COMMAND = "python -m weightprog.workloads.train"
"""The command the checkpoint manifest records for a training run (both entry points take its options)."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class HWAConfig:
    """Hardware-aware training noise and periphery; validated when made.

    Parameters
    ----------
    noise : float
        Weight-noise std relative to each output row's max |w|, in [0, 1] (`device_noise_scale`).
    periphery : str or Periphery
        The periphery trained through: a preset name (`weightprog.nn.periphery.PRESETS`) or a
        `Periphery`; stored as the `Periphery`. Train for the periphery the model is evaluated with.
    clip_sigma : float or None
        Weights are clipped to ±`clip_sigma` standard deviations of their tensor after each step
        (> 0); None: no clipping (it costs a model with heavy-tailed weights more than HWA gains:
        PTB's SGD-trained LSTM goes from perplexity 119 to 151 when clipped at 2.5 σ).
    range_momentum : float
        Momentum of the moving average of batch maxima that tracks the ranges, in [0, 1).
    tile_rows, tile_cols : int
        Inputs and outputs of a crossbar tile (the mapping's), for per-tile ranges and digitised
        input tiles (>= 1).
    noise_device : str, optional
        A device name or YAML/JSON file: the weight noise follows its programming-noise curve at
        each weight's conductance on one pair (`noise` is then unused); None: `noise` × the row's max.
    """

    noise: float = 0.034
    periphery: Periphery | str = "standard"
    clip_sigma: float | None = 2.5
    range_momentum: float = 0.99
    tile_rows: int = 512
    tile_cols: int = 512
    noise_device: str | None = None

    def __post_init__(self):
        validate.number(self.noise, "noise", minimum=0, maximum=1)
        if not isinstance(self.periphery, (str, Periphery)):
            raise validate.SettingError("periphery", f"a preset name or a Periphery, got {self.periphery!r}")
        try:
            object.__setattr__(self, "periphery", get_periphery(self.periphery))
        except WeightprogError as exc:
            raise validate.SettingError("periphery", str(exc).removeprefix("periphery: ")) from None
        if self.clip_sigma is not None:
            validate.number(self.clip_sigma, "clip_sigma", above=0)
        validate.number(self.range_momentum, "range_momentum", minimum=0, below=1)
        validate.integer(self.tile_rows, "tile_rows", 1)
        validate.integer(self.tile_cols, "tile_cols", 1)
        if self.noise_device is not None:
            try:
                get_device(self.noise_device)
            except WeightprogError as exc:
                raise validate.SettingError("noise_device", str(exc)) from None

    def to_dict(self) -> dict:
        """The settings as the checkpoint manifest records them (the periphery's fields included)."""
        return asdict(self)


def device_noise_scale(device: str = "pcm") -> float:
    """Mean programming-noise std over the device's range, relative to the range.

    Parameters
    ----------
    device : str
        Device name or YAML/JSON file.

    Returns
    -------
    float
        The `noise` of `HWAConfig` for that device (PCM: 0.034).
    """
    dev = get_device(device)
    g = torch.linspace(dev.g_min, dev.g_max, 201, dtype=torch.float64)
    return float(dev.programming_std(g).mean() / (dev.g_max - dev.g_min))


class HWA:
    """Weight noise, and the periphery attached, for hardware-aware training of any model's analog weights.

    The periphery is attached by `weightprog.nn.attach.attached`, as evaluation attaches it, with
    the ranges tracked while training (`Tracking`) instead of calibrated; they are kept in `ranges`.

    Parameters
    ----------
    model : nn.Module
        The model; its analog weights are found by `weightprog.nn.find_analog_weights`.
    cfg : HWAConfig
        Noise and periphery.
    exclude : optional
        Passed to `find_analog_weights` (modules or names kept digital).
    """

    def __init__(self, model: nn.Module, cfg: HWAConfig, exclude=None):
        self.model, self.cfg = model, cfg
        self.weights = find_analog_weights(model, exclude=exclude)
        self.periphery = cast(Periphery, cfg.periphery)  # HWAConfig stores the preset's Periphery
        self.device = None if cfg.noise_device is None else get_device(cfg.noise_device)
        # the programming noise of the pair's other device, at g_min: the same for every weight
        self._std_min = 0.0 if self.device is None else float(
            self.device.programming_std(torch.tensor([self.device.g_min], dtype=torch.float64))[0])
        self.ranges = Ranges({}, {})
        """The tracked ranges, by module (or recurrent weight) id, as `calibrate` would return them."""
        self.active: bool | None = None
        """Force training behaviour (range tracking, output noise) on/off; None follows model.training."""
        self.tracking = Tracking(self._training, cfg.range_momentum, cfg.tile_cols, cfg.tile_rows)
        self._attached = contextlib.ExitStack()
        self._attached.enter_context(attached(self.weights, self.periphery, self.ranges, tracking=self.tracking))

    def _training(self) -> bool:
        return self.model.training if self.active is None else self.active

    @contextlib.contextmanager
    def noisy(self) -> Iterator[None]:
        """Perturb the analog weights for one forward/backward; restore before the update."""
        saved = []
        with torch.no_grad():
            for w in self.weights:
                p = w.param
                saved.append(p.detach().clone())
                rows = p.reshape(p.shape[0], -1)
                scale = rows.abs().amax(1, keepdim=True).reshape((p.shape[0],) + (1,) * (p.dim() - 1))
                p.add_(torch.randn_like(p) * self._noise_std(p, scale))
        try:
            yield
        finally:
            with torch.no_grad():
                for w, s in zip(self.weights, saved):
                    w.param.copy_(s)

    def _noise_std(self, p: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The weight noise's std: `noise` × the row's max |w|, or the device's programming noise on one pair."""
        if self.device is None:
            return scale * self.cfg.noise
        dev = self.device
        span = dev.g_max - dev.g_min
        g = dev.g_min + p.abs() / scale.clamp_min(torch.finfo(p.dtype).tiny) * span
        std_g = (dev.programming_std(g).square() + self._std_min ** 2).sqrt()
        return std_g / span * scale

    @torch.no_grad()
    def clip(self) -> None:
        """Clip each analog weight tensor to ±`clip_sigma` of its standard deviation (none if None)."""
        if self.cfg.clip_sigma is None:
            return
        for w in self.weights:
            p = w.param
            bound = self.cfg.clip_sigma * float(p.std())
            p.clamp_(-bound, bound)

    def remove(self) -> None:
        """Detach the periphery from the model."""
        self._attached.close()


def module_command(args: Sequence[str]) -> str:
    """The training command line as the manifest records it.

    Parameters
    ----------
    args : sequence of str
        The arguments after the command (workload and options), as typed.

    Returns
    -------
    str
        `python -m weightprog.workloads.train ARGS`, shell-quoted.
    """
    return MODULE_COMMAND + " " + " ".join(shlex.quote(a) for a in args)


def previous_checkpoint(name: str, variant: str) -> dict | None:
    """Manifest entry of the checkpoint a resumed run starts from (its command comes first).

    Parameters
    ----------
    name, variant : str
        Workload and variant of the committed checkpoint.

    Returns
    -------
    dict or None
        Its command, value, steps and batch; None where the manifest has no such checkpoint.
    """
    entry = read_manifest().get(checkpoint_path(name, variant).name)
    return None if entry is None else {k: entry[k] for k in ("command", "value", "steps", "batch") if k in entry}


def save_checkpoint(name: str, variant: str, model: nn.Module | Mapping[str, torch.Tensor], metric: float,
                    metric_name: str, info: dict, keys: Iterable[str] | None = None,
                    command: str | None = None) -> dict:
    """Write the fp16 safetensors of the state dict (or of `keys` only) and its manifest entry.

    Parameters
    ----------
    name, variant : str
        Workload and variant: the file is `checkpoints/<name>-<variant>.safetensors`.
    model : nn.Module or mapping
        The trained model, or the tensors to store by key.
    metric : float
        Its test metric, recorded as the entry's `value`.
    metric_name : str
        'accuracy' or 'perplexity'.
    info : dict
        Further entry fields (steps, batch, lr, seed, …); a `resumed_from` entry's command is
        prepended to this run's.
    keys : iterable of str, optional
        State-dict keys to store (default: all).
    command : str, optional
        This run's command (`module_command`); default: `python -m weightprog.workloads.train` with
        this process's arguments.

    Returns
    -------
    dict
        The manifest entry written.
    """
    from safetensors.torch import save_file
    wanted = None if keys is None else set(keys)
    tensors = model.state_dict() if isinstance(model, nn.Module) else model
    state = {k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in tensors.items() if wanted is None or k in wanted}
    path = checkpoint_path(name, variant)
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    manifest = read_manifest()
    if command is None:
        command = module_command(sys.argv[1:])
    if info.get("resumed_from"):
        command = info["resumed_from"]["command"] + " && " + command
    entry = {"file": path.name, "workload": name, "variant": variant, "sha256": sha256(path),
             "bytes": path.stat().st_size, "metric": metric_name, "value": metric,
             "command": command,
             **info}
    manifest[path.name] = entry
    atomic_write_json(MANIFEST, dict(sorted(manifest.items())))
    return entry


def step_lr(opt: torch.optim.Optimizer, base: float, step: int, total: int, warmup: int = 0) -> None:
    """Set the learning rate of `step`: linear warm-up, then cosine decay to 0 at `total`.

    Parameters
    ----------
    opt : torch.optim.Optimizer
        Its parameter groups get `lr` (times a group's `lr_scale`, where it has one).
    base : float
        Peak learning rate.
    step, total : int
        This step (from 0) and the number of steps.
    warmup : int
        Steps of linear warm-up from base/warmup to base.
    """
    if step < warmup:
        lr = base * (step + 1) / warmup
    else:
        lr = base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def train_step(opt: torch.optim.Optimizer, hwa: HWA | None, loss_fn: Callable[[], torch.Tensor],
               clip_grad: float | None = None) -> torch.Tensor:
    """One optimiser step. With HWA the loss and its gradient see noisy weights, and the weights
    are clipped after the step.

    Parameters
    ----------
    opt : torch.optim.Optimizer
        The optimiser; gradient clipping acts on its parameters.
    hwa : HWA or None
        Hardware-aware training of the model, or None for floating-point training.
    loss_fn : callable
        The workload's loss of one batch, computed by the model (no arguments).
    clip_grad : float, optional
        Clip the gradient norm to this value.

    Returns
    -------
    torch.Tensor
        The loss (at the noisy weights under HWA).
    """
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


def log(msg: str) -> None:
    """The default progress of training: an INFO record of the `weightprog.workloads` logger (silent
    unless the caller configures logging; the command lines pass `timed_line`'s printer instead).

    Parameters
    ----------
    msg : str
        The message.
    """
    logging.getLogger("weightprog.workloads").info(msg)


def timed_line(msg: str) -> str:
    """A progress line as the command lines print it: the wall-clock time and `msg`."""
    return f"{time.strftime('%H:%M:%S')} {msg}"
