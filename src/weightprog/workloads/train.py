"""Training of the reference workloads, floating point (FP) and hardware-aware (HWA), from the shell.

    python -m weightprog.workloads.train fmnist-resnet32 --variant fp    # 8 epochs, ~20 min on 2 cores
    python -m weightprog.workloads.train fmnist-resnet32 --variant hwa   # 2 epochs from the FP checkpoint

The same run as `weightprog train …` (same options); this form is the one the checkpoint manifest
records, so its commands rerun as written. The defaults are the committed checkpoints' budgets
(their exact commands are in the manifest). Each workload trains in its own module; the shared
pieces (HWA training, checkpoints) are in `training`. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from .. import validate
from ..choices import WEIGHT_NOISE
from ..errors import WeightprogError
from ..nn.periphery import PRESETS
from . import TrainSettings, train_workload
from .training import module_command, timed_line


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, train, print the manifest entry.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: this process's); bad ones end in a usage message and exit code 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m weightprog.workloads.train")
    p.add_argument("workload")
    p.add_argument("--variant", choices=("fp", "hwa"), default="fp")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="pcm", help="device whose programming noise scales HWA noise")
    p.add_argument("--periphery", choices=tuple(PRESETS), default=None,
                   help="the periphery preset HWA trains through (default standard); train for the one the "
                        "model is evaluated with")
    p.add_argument("--output-noise", type=float, default=None,
                   help="older form of --periphery: the 8-bit periphery with this output noise, fraction of "
                        "the output range (1/127: standard, 0: io8)")
    p.add_argument("--weight-noise", choices=WEIGHT_NOISE, default="row",
                   help="HWA weight noise: row (default: the device's mean programming noise × each row's max |w|) "
                        "or device (the device model's programming noise at each weight's conductance)")
    p.add_argument("--clip-sigma", type=float, default=2.5,
                   help="HWA clips the analog weights to ± this many standard deviations after each step "
                        "(0: no clipping)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-size", type=int, default=None, help="sentiment-minilm: training sentences used")
    p.add_argument("--resume", action="store_true",
                   help="fmnist-resnet32, ptb-lstm fp: continue from the committed FP checkpoint")
    a = p.parse_args(args)
    try:
        settings = TrainSettings(a.workload, a.variant, a.steps, a.batch, a.lr, a.seed, a.device, a.output_noise,
                                 a.threads, a.train_size, a.resume, a.periphery, a.weight_noise,
                                 a.clip_sigma)
    except validate.SettingError as exc:
        p.error(str(exc.named(_option(exc.field))))
    try:
        torch.set_num_threads(settings.threads)  # a command line: the process is its own
        entry = train_workload(settings, command=module_command(args),
                               log=lambda msg: print(timed_line(msg), flush=True))
    except WeightprogError as exc:  # a missing dataset, an unknown device: one line, no traceback
        p.exit(2, f"{p.prog}: error: {exc}\n")
    print(entry)


def _option(field: str) -> str:
    """How the command line spells a `TrainSettings` field: `WORKLOAD`, `--output-noise`, …."""
    return "WORKLOAD" if field == "workload" else "--" + field.replace("_", "-")


if __name__ == "__main__":
    main()
