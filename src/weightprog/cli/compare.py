"""`weightprog compare-devices`: optimise each device the same way, rank by optimum and by naive."""

from __future__ import annotations

import click

from ..choices import NAIVE
from ..settings import OptimizeSettings
from ..threadcount import SEARCH_THREADS, torch_threads
from ..timeunits import format_times
from .inputs import search_inputs
from .options import BaselineChoice, force_option, search_options, setting_option
from .report import begin_run, write_run_report


@click.command()
@click.argument("devices", nargs=-1, required=True)
@search_options
@setting_option(OptimizeSettings, "seed", type=int, help="Same seed (sample, draws) for every device.")
@setting_option(OptimizeSettings, "budget_s", "--budget", "budget_s", type=float, metavar="SECONDS",
                help="Wall-time budget of each device's search (default: run to convergence).")
@click.option("--naive", type=BaselineChoice(), default=NAIVE, show_default=True,
              help="The F=1 baseline the naive ranking and the dashed curves use.")
@click.option("--out", "out_dir", default="runs/compare", show_default=True, type=click.Path())
@force_option()
def compare_devices_command(devices, seed, budget_s, naive, out_dir, **search):
    """Compare devices by the weight error of their optimised strategy and of naive programming.

    Every device gets the same search (settings, sample, seeds, cell choice, times); devices are
    ranked by their optimum and by the naive baseline, and the output says whether the two
    rankings differ. Writes comparison.json, comparison.csv, tnmse_vs_time.png and report.html to --out.
    """
    from ..compare import check_devices, compare_devices, table_text
    from ..records.comparison import write_comparison_run
    from ..report.progress import SearchBars

    models = check_devices(devices, naive)  # resolved once (bad names fail before any search or output)
    inputs = search_inputs(seed=seed, budget_s=budget_s, **search)
    settings, values, sample, source = inputs.settings, inputs.values, inputs.sample, inputs.source
    out = begin_run(out_dir, ("comparison.json", "comparison.csv", "tnmse_vs_time.png", "checkpoints/**/*.json"))
    click.echo(f"comparing {', '.join(m.name for m in models)} for {source} ({values.numel():,} weights, "
               f"search sample {sample.size:,}), {settings.pairs} pair(s), "
               f"times {','.join(format_times(settings.times_s))}, seed {seed}", err=True)
    with SearchBars(settings) as bars, torch_threads(SEARCH_THREADS):  # one bar per device and cell
        comparison = compare_devices(models, sample, values, settings, naive=naive, source=source,
                                     checkpoint_dir=out / "checkpoints", progress=bars)
    paths = write_comparison_run(comparison, out)
    click.echo(table_text(comparison))
    click.echo(f"wrote {', '.join(str(p) for p in paths)}")
    write_run_report(out)
