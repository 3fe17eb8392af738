"""`weightprog train`: train a reference workload, floating point or hardware-aware (issue 5).

The one parser of a training run: `python -m weightprog.workloads.train …` (the form the checkpoint
manifest records) runs this command too. Each option of a `TrainSettings` field takes the field's
default."""

from __future__ import annotations

import click

from ..choices import PERIPHERIES, WEIGHT_NOISE
from ..settings import TrainSettings
from .options import option_names, setting_option


class ClipSigma(click.ParamType):
    """`--clip-sigma`: a number of standard deviations, `0` being the command line's spelling of
    `TrainSettings.clip_sigma = None` (no clipping)."""

    name = "float"

    def convert(self, value, param, ctx):
        """The number, or None for 0 (click's `ParamType.convert`)."""
        if value is None:
            return None
        number = click.FLOAT.convert(value, param, ctx)
        return None if number == 0 else number


def _setting(name: str, *param_decls: str, **attrs):
    return setting_option(TrainSettings, name, *param_decls, **attrs)


@click.command()
@click.argument("workload", metavar="WORKLOAD")
@_setting("variant", metavar="fp|hwa",
          help="Floating-point training, or hardware-aware fine-tuning of the committed FP checkpoint.")
@_setting("steps", type=int, help="Optimiser steps (default: the committed checkpoint's budget).")
@_setting("batch", type=int, help="Batch size (default: the workload's).")
@_setting("lr", type=float, help="Peak learning rate (default: the workload's).")
@_setting("seed", type=int)
@_setting("device", help="Device name or YAML/JSON file whose programming noise scales HWA noise.")
@_setting("periphery", metavar="PRESET",
          help=f"The periphery HWA trains through (a preset: {', '.join(PERIPHERIES)}; default standard); "
               "train for the periphery the model is evaluated with.")
@_setting("output_noise", type=float,
          help="Older form of --periphery: the 8-bit periphery with this output noise, fraction of the "
               "output range (1/127: standard, 0: io8).")
@_setting("weight_noise", type=click.Choice(WEIGHT_NOISE),
          help="HWA weight noise: row (the device's mean programming noise × each row's max |w|) or "
               "device (the device model's programming noise at each weight's conductance).")
@_setting("clip_sigma", type=ClipSigma(),
          help="HWA clips the analog weights to ± this many standard deviations after each step (0: no clipping).")
@_setting("threads", type=int, help="torch threads.")
@_setting("train_size", type=int, help="sentiment-minilm: training sentences used (default: all).")
@_setting("resume", is_flag=True, show_default=False,
          help="fmnist-resnet32, ptb-lstm fp: continue from the committed FP checkpoint.")
@click.pass_context
def train(ctx, workload, **options):
    """Train WORKLOAD (ptb-lstm, fmnist-resnet32, sentiment-minilm) and write its checkpoint.

    The checkpoint and its manifest entry go to the package's workloads/checkpoints/; the manifest
    records the run as `python -m weightprog.workloads.train` with the same arguments.
    """
    import torch

    from ..workloads import train_workload
    from ..workloads.training import module_command, timed_line

    with option_names(workload="WORKLOAD"):
        settings = TrainSettings(workload, **options)
    args = ctx.find_root().meta.get("weightprog.args")  # as typed, when it came through the group or the shim
    torch.set_num_threads(settings.threads)  # the command's process: the library leaves threads to its caller
    click.echo(train_workload(settings, command=module_command(_given(ctx) if args is None else args),
                              log=lambda msg: click.echo(timed_line(msg))))


def _given(ctx: click.Context) -> list[str]:
    """The arguments of a call that came through neither the group nor the module form, rebuilt
    from the parameters typed (a default is not recorded, as the manifest's commands never do)."""
    out = [ctx.params["workload"]]
    for key, value in ctx.params.items():
        if key != "workload" and ctx.get_parameter_source(key) == click.core.ParameterSource.COMMANDLINE:
            out += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(0 if value is None else value)])
    return out
