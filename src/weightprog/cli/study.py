"""`weightprog study`: the paper's validation study on the reference workloads (issue 5)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..choices import PERIPHERIES, SEARCH_ON, STUDY_PERIPHERY
from ..errors import WeightprogError
from ..validate import integer
from .options import force_option, option_names, times_option
from .report import begin_run, write_run_report


def _eval_sizes(items) -> dict:
    """`--eval-size WORKLOAD=N …` over the study's defaults (StudySettings checks the sizes).

    Parameters
    ----------
    items
        The option's values.

    Returns
    -------
    dict
        Test items per workload.
    """
    from ..study import DEFAULT_EVAL_SIZE

    sizes = dict(DEFAULT_EVAL_SIZE)
    for item in items:
        name, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise WeightprogError(f"eval-size: use WORKLOAD=N with N >= 1, got {item!r}")
        sizes[name] = int(n)
    return sizes


@click.command()
@click.option("--workload", "workloads", multiple=True, metavar="NAME",
              help="ptb-lstm, fmnist-resnet32, sentiment-minilm; repeatable (default: all three).")
@click.option("--device", "devices", multiple=True, metavar="DEVICE",
              help="Device name or YAML/JSON file; repeatable (default: pcm and pcm-lowdrift).")
@click.option("--variant", "variants", multiple=True, type=click.Choice(("fp", "hwa")),
              help="Trained variant; repeatable (default: fp and hwa).")
@times_option(default="1s,1h,1d,30d,1y", help="Times after programming.")
@click.option("--repeats", default=3, show_default=True, help="Programming realisations (the paper: 25).")
@click.option("--seed", default=0, show_default=True)
@click.option("--eval-size", "eval_sizes", multiple=True, metavar="WORKLOAD=N",
              help="Test items per evaluation (default fmnist-resnet32=1000, ptb-lstm=8000 tokens, "
                   "sentiment-minilm=256).")
@click.option("--periphery", type=click.Choice(sorted(PERIPHERIES)), default=STUDY_PERIPHERY,
              show_default=True,
              help="chip-8bit: 8-bit DAC/ADC, output noise 1/127 of the range, abs-max input scaling and "
                   "per-column ranges as chips run them; standard: the same converters and noise with one "
                   "static range per layer (the study's earlier default); io8: standard without the noise "
                   "(docs/NN.md).")
@click.option("--max-generations", default=15, show_default=True, help="Evolution generations per F.")
@click.option("--popsize", default=10, show_default=True, help="Population per search dimension.")
@click.option("--f-max", default=4, show_default=True, help="Significance factors F searched: 1…f_max.")
@click.option("--polish-steps", default=30, show_default=True,
              help="Gradient polish steps of the chosen search (0: none).")
@click.option("--search-on", "--optimise-on", "search_on", type=click.Choice(SEARCH_ON), default="each",
              show_default=True,
              help="Search on each trained variant's weights, or use the FP weights' strategy for both.")
@click.option("--threads", default=None, type=int, help="torch threads (default: torch's choice).")
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="Results folder: <workload>/results.json, results.csv, summary.md, figures/, report.html.")
@force_option()
def study(workloads, devices, variants, times, repeats, seed, eval_sizes, periphery, max_generations, popsize,
          f_max, polish_steps, search_on, threads, out_dir):
    """Optimise, then evaluate FP/HWA × naive/hand-crafted/optimised over time on real workloads."""
    import torch

    from ..report.progress import count_progress
    from ..study import StudySettings, run_study

    if threads is not None:
        with option_names():
            torch.set_num_threads(integer(threads, "threads", 1))
    kw = {}
    if workloads:
        kw["workloads"] = tuple(workloads)
    if devices:
        kw["devices"] = tuple(devices)
    if variants:
        kw["variants"] = tuple(variants)
    with option_names(times_s="--times", workloads="--workload", devices="--device", variants="--variant"):
        settings = StudySettings(times_s=times, repeats=repeats, seed=seed,
                                 eval_size=_eval_sizes(eval_sizes), periphery=periphery,
                                 max_generations=max_generations, popsize=popsize, f_max=f_max,
                                 polish_steps=polish_steps, search_on=search_on, **kw)
    begin_run(out_dir, ("*/results.json", "results.csv", "summary.md", "figures/*.png"))
    start = time.perf_counter()
    run_study(settings, Path(out_dir), log=lambda m: click.echo(f"[{time.perf_counter() - start:6.0f} s] {m}"),
              progress=count_progress("realisations × times"))
    click.echo((Path(out_dir) / "summary.md").read_text())
    write_run_report(out_dir)

