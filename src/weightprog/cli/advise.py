"""`weightprog device advise` and `weightprog device flipmap`: which device improvement pays once
weights are programmed optimally, and where the naive ranking of devices misleads."""

from __future__ import annotations

import click

from ..choices import PROPERTIES
from ..errors import WeightprogError
from ..settings import IMPROVEMENT, OptimizeSettings
from ..threadcount import SEARCH_THREADS, torch_threads
from ..timeunits import DEFAULT_TIMES_S, format_times
from .inputs import search_inputs
from .options import force_option, search_options, setting_option, times_option
from .report import begin_run, write_run_report
from .sweep import SWEEP_OUTPUTS


@click.command("advise")
@click.argument("device_spec", metavar="DEVICE")
@search_options
@setting_option(OptimizeSettings, "seed", type=int, help="Same seed (sample, draws) for every variant.")
@click.option("--improvement", default=IMPROVEMENT, show_default=True, type=float,
              help="Relative improvement of each property (0.1: noise ×0.9, range ×1.1).")
@click.option("--property", "properties", multiple=True, type=click.Choice(PROPERTIES),
              help="Only these properties (repeatable; default: all).")
@setting_option(OptimizeSettings, "rescore_blocks", type=int,
                help="Fresh samples (each the search's size, fresh draws) for every reported number.")
@click.option("--out", "out_dir", default="runs/advise", show_default=True, type=click.Path())
@force_option()
def advise_command(device_spec, seed, improvement, properties, rescore_blocks, out_dir, **search):
    """Which property of DEVICE to improve: each one improved, the strategy re-optimised.

    For programming noise, drift mean, drift spread, read noise and dynamic range, the change of
    the optimised weight error beside the change under naive programming, sorted by payoff, with
    the elasticity d log TNMSE / d log property. Writes advice.json and advice.png to --out.
    """
    from ..advise import advise
    from ..devices import get_device
    from ..records.advice import write_advice_run

    dev = get_device(device_spec)  # resolved once: the library takes the model from here on
    inputs = search_inputs(seed=seed, rescore_blocks=rescore_blocks, **search)
    settings, values, sample, source = inputs.settings, inputs.values, inputs.sample, inputs.source
    out = begin_run(out_dir, ("advice.json", "advice.png"))
    click.echo(f"advising on {dev.name} for {source} ({values.numel():,} weights), {settings.pairs} pair(s), "
               f"times {','.join(format_times(settings.times_s))}, seed {seed}: "
               f"{1 + len(properties or PROPERTIES)} optimisations", err=True)

    def progress(event):
        click.echo(f"[{event.done + 1}/{event.total}] optimising {event.label}", err=True)

    with torch_threads(SEARCH_THREADS):
        result = advise(sample, values, dev, settings, improvement, properties or PROPERTIES, progress)
    paths = write_advice_run(out, result, source)
    click.echo(result.table())
    click.echo("\n".join(result.words()))
    click.echo(f"wrote {', '.join(map(str, paths))} ({result.wall_time_s:.0f} s)")
    write_run_report(out)


@click.command("flipmap")
@click.argument("base", metavar="DEVICE")
@click.option("--x", "x_axis", default=None, metavar="PROP=LO:HI:N",
              help="First property and its factors, e.g. drift_mean=0.5:2:8 (log-spaced) or drift_mean=0.5,1,2.")
@click.option("--y", "y_axis", default=None, metavar="PROP=LO:HI:N", help="Second property and its factors.")
@click.option("--search", is_flag=True, help="Instead of a grid: search all five property factors together "
              "for a flip (differential evolution on the expected error), then re-score the best candidates.")
@click.option("--direction", default="both", show_default=True, type=click.Choice(["flip", "reverse", "both"]),
              help="--search: flip = naive better, optimised worse; reverse = the mirror.")
@click.option("--bounds", default="0.25:4", show_default=True, metavar="LO:HI",
              help="--search: range of every factor (log-uniform).")
@click.option("--generations", default=10, show_default=True, type=int,
              help="--search: generations of the search over the factors.")
@click.option("--population", default=4, show_default=True, type=int,
              help="--search: population = this × 5 factors.")
@click.option("--weights", default="distribution:default", show_default=True,
              help="distribution:NAME or a weights file, as in a sweep file.")
@setting_option(OptimizeSettings, "pairs", type=int, help=None)
@setting_option(OptimizeSettings, "f_max", type=int)
@times_option(help="Times after programming (default: 1s…1y).")
@setting_option(OptimizeSettings, "seed", type=int)
@click.option("--max-generations", default=None, type=int, help="Cap on each search's generations.")
@click.option("--rescore-blocks", default=None, type=int, help="Fresh samples for every reported number.")
@click.option("--workers", default=1, show_default=True, type=int, help="Local worker processes (0: inline).")
@click.option("--ray", default=None, metavar="ADDRESS", help="Run the jobs on Ray (auto, or an address).")
@click.option("--out", "out_dir", default="runs/flipmap", show_default=True, type=click.Path())
@force_option()
def flipmap_command(base, x_axis, y_axis, search, direction, bounds, generations, population, weights, pairs,
                    f_max, times, seed, max_generations, rescore_blocks, workers, ray, out_dir):
    """Where the naive comparison of DEVICE with scaled variants of itself disagrees with the
    optimised one, on a grid of two properties. Runs as a resumable sweep (rerun to resume);
    writes flipmap.json and flipmap.png to --out beside the sweep's files. With --search, all five
    factors are searched together instead (flipsearch.json, flipsearch.png; resumable too)."""
    from ..advise import parse_axis, run_flip_map
    from ..devices import get_device
    from ..records.advice import write_flip_map_run

    settings = {k: v for k, v in (("max_generations", max_generations), ("rescore_blocks", rescore_blocks))
                if v is not None}
    if search:
        if x_axis or y_axis:
            raise WeightprogError("--search: searches all five factors; give no --x or --y")
        plan = _search_plan(bounds, population, generations, seed)
        return _flip_search(base, plan, direction, weights, OptimizeSettings(
            pairs=pairs, f_max=f_max, seed=seed, times_s=times, **settings), out_dir)
    if not (x_axis and y_axis):
        raise WeightprogError("--x and --y: both are needed (or --search)")
    x, y = parse_axis(x_axis, "--x"), parse_axis(y_axis, "--y")
    if x[0] == y[0]:
        raise WeightprogError(f"--x and --y: two different properties, got {x[0]} twice")
    count = len(x[1]) * len(y[1]) + 1
    get_device(base)  # a bad base fails before the folder is claimed
    begin_run(out_dir, ("flipmap.json", "flipmap.png", *SWEEP_OUTPUTS))
    click.echo(f"flip map of {base}: {x[0]} × {y[0]}, {count} optimisations into {out_dir}", err=True)

    def progress(event):
        p = event.detail
        if p.event in ("done", "failed"):
            click.echo(f"[{p.done + p.failed}/{p.total}] {p.event} {p.job.label() if p.job else ''}", err=True)

    flip = run_flip_map(base, x, y, out_dir, workers=workers, ray=ray, progress=progress, weights=weights,
                        pairs=pairs, f_max=f_max, seed=seed, settings=settings,
                        times=None if times == DEFAULT_TIMES_S else ",".join(format_times(times)))
    paths = write_flip_map_run(out_dir, flip)
    click.echo(flip.sentence())
    click.echo(f"wrote {', '.join(map(str, paths))}")
    write_run_report(out_dir)


def _search_plan(bounds: str, population: int, generations: int, seed: int):
    from ..flipsearch import SearchPlan

    try:
        lo, hi = (float(b) for b in bounds.split(":"))
    except ValueError:
        raise WeightprogError(f"--bounds: LO:HI (e.g. 0.25:4), got {bounds!r}") from None
    return SearchPlan((lo, hi), population, generations, seed)


def _flip_search(base, plan, direction, weights, settings, out_dir) -> None:
    """`flipmap --search`: the weights as the sweep reads them, the search, its files."""
    from ..choices import DEFAULT_ROWS, DEFAULT_SIZE
    from ..devices import get_device
    from ..flipcheck import run_flip_search
    from ..flipsearch import DIRECTIONS
    from ..records.flipsearch import write_flip_search_run
    from ..sample import sample_from_values
    from .inputs import load_values

    dev = get_device(base)  # a bad base fails before the folder is claimed
    file, name = (None, weights.split(":", 1)[1]) if weights.startswith("distribution:") else (weights, None)
    values, source = load_values(file, name, "column", settings.seed)
    sample = sample_from_values(values, DEFAULT_SIZE, DEFAULT_ROWS, seed=settings.seed, source=source)
    directions = tuple(DIRECTIONS.values()) if direction == "both" else (DIRECTIONS[direction],)
    begin_run(out_dir, ("flipsearch.json", "flipsearch.png", "flipsearch_*.checkpoint.json", "strategy_*.json"))
    click.echo(f"flip search around {dev.name} for {source}: factors {plan.bounds[0]:g}…{plan.bounds[1]:g}, "
               f"{plan.popsize * 5} per generation, {plan.generations} generations, "
               f"{' and '.join(directions)}; then {1 + len(directions)} optimisations", err=True)

    def progress(event):
        if event.task == "flipsearch":
            click.echo(f"[{event.label}] generation {event.done}/{event.total}", err=True)
        else:
            click.echo(f"[{event.done + 1}/{event.total}] optimising {event.label}", err=True)

    with torch_threads(SEARCH_THREADS):
        result = run_flip_search(sample, values, dev, settings, plan, directions, out_dir, progress)
    paths = write_flip_search_run(out_dir, result, source)
    click.echo(result.sentence())
    click.echo(f"wrote {', '.join(map(str, paths))} ({result.wall_time_s:.0f} s)")
    write_run_report(out_dir)
