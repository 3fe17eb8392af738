"""`weightprog compare-devices`: optimise each device the same way, rank by optimum and by naive."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from .cli_optimize import load_values, parse_significance
from .compare import DEFAULT_NAIVE, NAIVE_KEYS, compare_devices, table_text, write_comparison
from .devices import get_device
from .errors import WeightprogError
from .sample import sample_from_values
from .search.run import OptimizeSettings
from .search.space import GRID_PLACEMENTS, MODES
from .timeunits import DEFAULT_TIMES_S, format_times, parse_times


@click.command()
@click.argument("devices", nargs=-1, required=True)
@click.option("--weights", type=str, default=None, metavar="PATH",
              help="Network weights: .pt/.pth/.ckpt/.bin state dict, .safetensors, .npz or .npy.")
@click.option("--distribution", default=None, help="A built-in weight distribution (default: 'default').")
@click.option("--normalise", type=click.Choice(["column", "tensor"]), default="column", show_default=True,
              help="How --weights are normalised before sampling (as deployed).")
@click.option("--pairs", default=2, show_default=True, type=int, help="Differential pairs per weight (P).")
@click.option("--significance", default="auto", show_default=True,
              help="Significance factors, e.g. 1,2; 'auto' searches the cell 1,F,F²,… for F = 1…--f-max.")
@click.option("--f-max", default=5, show_default=True, type=int)
@click.option("--times", "times_text", default=None, metavar="LIST",
              help="Times after programming, e.g. 1s,1min,1h,1d,30d,1y (the default).")
@click.option("--grid", "grid_points", default=6, show_default=True, type=int,
              help="Grid points of the strategy table, 0 and 1 included.")
@click.option("--grid-placement", type=click.Choice(GRID_PLACEMENTS), default="quantile", show_default=True)
@click.option("--mode", type=click.Choice(MODES), default="exact", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed (sample, draws) for every device.")
@click.option("--budget", "budget_s", default=None, type=float, metavar="SECONDS",
              help="Wall-time budget of each device's search (default: run to convergence).")
@click.option("--max-generations", default=200, show_default=True, type=int)
@click.option("--popsize", default=15, show_default=True, type=int, help="Population = popsize × dimensions.")
@click.option("--no-polish", is_flag=True, help="Skip the gradient polish.")
@click.option("--naive", "naive_key", type=click.Choice(NAIVE_KEYS), default=DEFAULT_NAIVE, show_default=True,
              help="The F=1 baseline the naive ranking and the dashed curves use.")
@click.option("--compute", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--out", "out_dir", default="runs/compare", show_default=True, type=click.Path())
def compare_devices_command(devices, weights, distribution, normalise, pairs, significance, f_max, times_text,
                            grid_points, grid_placement, mode, seed, budget_s, max_generations, popsize,
                            no_polish, naive_key, compute, out_dir):
    """Compare devices by the weight error of their optimised strategy and of naive programming.

    Every device gets the same search (settings, sample, seeds, cell choice, times); devices are
    ranked by their optimum and by the naive baseline, and the output says whether the two
    rankings differ. Writes comparison.json, comparison.csv and tnmse_vs_time.png to --out.
    """
    out = Path(out_dir)
    models = [get_device(d) for d in devices]  # bad names fail before any search
    if pairs < 1:
        raise WeightprogError(f"--pairs: need at least 1, got {pairs}")
    times = DEFAULT_TIMES_S if times_text is None else parse_times(times_text)
    settings = OptimizeSettings(pairs=pairs, significance=parse_significance(significance, pairs), f_max=f_max,
                                times_s=times, grid_points=grid_points, grid_placement=grid_placement, mode=mode,
                                seed=seed, budget_s=budget_s, max_generations=max_generations,
                                popsize=popsize, polish=not no_polish, compute=compute)
    values, source = load_values(weights, distribution, normalise, seed)
    sample = sample_from_values(values, seed=seed, source=source)
    click.echo(f"comparing {', '.join(m.name for m in models)} for {source} ({values.numel():,} weights, "
               f"search sample {sample.size:,}), {pairs} pair(s), times {','.join(format_times(times))}, "
               f"seed {seed}", err=True)
    bars: dict[tuple[str, str], tqdm] = {}

    def progress(device, label, p):
        if (device, label) not in bars:
            for bar in bars.values():
                bar.close()
            bars[(device, label)] = tqdm(total=max_generations, desc=f"{device} {label}", unit="gen", leave=True)
        bar = bars[(device, label)]
        bar.n = p.generation
        bar.set_postfix(best=f"{p.best:.4e}", spread=f"{p.convergence:.1e}")

    try:
        comparison = compare_devices(models, sample, values, settings, naive_key=naive_key, source=source,
                                     checkpoint_dir=out / "checkpoints", progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    paths = write_comparison(comparison, out)
    click.echo(table_text(comparison))
    click.echo(f"wrote {', '.join(str(p) for p in paths)}")
