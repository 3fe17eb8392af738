"""`weightprog train`: train a reference workload, floating point or hardware-aware (issue 5).

The one parser of a training run: `python -m weightprog.workloads.train …` (the form the checkpoint
manifest records) runs this command too. Each option of a `TrainSettings` field takes the field's
default."""

from __future__ import annotations

import click

from ..choices import WEIGHT_NOISE
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
@_setting("variant", metavar="fp|hwa")
@_setting("steps", type=int)
@_setting("batch", type=int)
@_setting("lr", type=float)
@_setting("seed", type=int)
@_setting("device")
@_setting("periphery", metavar="PRESET")
@_setting("output_noise", type=float)
@_setting("weight_noise", type=click.Choice(WEIGHT_NOISE))
@_setting("clip_sigma", type=ClipSigma())
@_setting("threads", type=int)
@_setting("train_size", type=int)
@_setting("resume", is_flag=True, show_default=False)
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
