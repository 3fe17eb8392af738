"""`weightprog train`: train a reference workload, floating point or hardware-aware (issue 5)."""

from __future__ import annotations

import click

from ..choices import PERIPHERIES, WEIGHT_NOISE
from .options import option_names


@click.command(context_settings={"show_default": True})
@click.argument("workload", metavar="WORKLOAD")
@click.option("--variant", default="fp", metavar="fp|hwa",
              help="Floating-point training, or hardware-aware fine-tuning of the committed FP checkpoint.")
@click.option("--steps", type=int, default=None, show_default=False,
              help="Optimiser steps (default: the committed checkpoint's budget).")
@click.option("--batch", type=int, default=None, show_default=False, help="Batch size (default: the workload's).")
@click.option("--lr", type=float, default=None, show_default=False,
              help="Peak learning rate (default: the workload's).")
@click.option("--seed", type=int, default=0)
@click.option("--device", default="pcm", help="Device name or YAML/JSON file whose programming noise scales HWA noise.")
@click.option("--periphery", default=None, show_default=False, metavar="PRESET",
              help=f"The periphery HWA trains through (a preset: {', '.join(PERIPHERIES)}; default standard); "
                   "train for the periphery the model is evaluated with.")
@click.option("--output-noise", type=float, default=None, show_default=False,
              help="Older form of --periphery: the 8-bit periphery with this output noise, fraction of the "
                   "output range (1/127: standard, 0: io8).")
@click.option("--weight-noise", type=click.Choice(WEIGHT_NOISE), default=None, show_default=False,
              help="HWA weight noise: row (default: the device's mean programming noise × each row's max |w|) or "
                   "device (the device model's programming noise at each weight's conductance).")
@click.option("--clip-sigma", type=float, default=None, show_default=False,
              help="HWA clips the analog weights to ± this many standard deviations after each step "
                   "(default 2.5; 0: no clipping).")
@click.option("--threads", type=int, default=2, help="torch threads.")
@click.option("--train-size", type=int, default=None, show_default=False,
              help="sentiment-minilm: training sentences used (default: all).")
@click.option("--resume", is_flag=True, help="fmnist-resnet32, ptb-lstm fp: continue from the committed FP checkpoint.")
@click.pass_context
def train(ctx, workload, variant, steps, batch, lr, seed, device, periphery, output_noise, weight_noise, clip_sigma,
          threads, train_size, resume):
    """Train WORKLOAD (ptb-lstm, fmnist-resnet32, sentiment-minilm) and write its checkpoint.

    The checkpoint and its manifest entry go to the package's workloads/checkpoints/; the manifest
    records the run as `python -m weightprog.workloads.train` with the same arguments.
    """
    import torch

    from ..workloads import TrainSettings, train_workload
    from ..workloads.training import module_command, timed_line

    extra = {} if output_noise is None else {"output_noise": output_noise}
    if weight_noise is not None:
        extra["weight_noise"] = weight_noise
    if clip_sigma is not None:
        extra["clip_sigma"] = clip_sigma
    with option_names(workload="WORKLOAD"):
        settings = TrainSettings(workload, variant, steps, batch, lr, seed, device, threads=threads,
                                 train_size=train_size, resume=resume, periphery=periphery, **extra)
    args = ctx.find_root().meta.get("weightprog.args")  # as typed, when it came through the group
    torch.set_num_threads(settings.threads)  # the command's process: the library leaves threads to its caller
    click.echo(train_workload(settings, command=module_command(_given(ctx) if args is None else args),
                              log=lambda msg: click.echo(timed_line(msg))))


def _given(ctx: click.Context) -> list[str]:
    """The arguments of a call that did not come through the group, rebuilt from its parameters."""
    out = [ctx.params["workload"]]
    for key, value in ctx.params.items():
        if key != "workload" and value is not None and value is not False:
            out += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return out
