"""`weightprog study`: the paper's validation study on the reference workloads, as resumable jobs."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..choices import PERIPHERIES, SELECT_RULES
from ..errors import WeightprogError
from ..study.settings import BESIDE, DEFAULT_EVAL_SIZE, ROLES, SEARCH_ON, STUDY_PERIPHERY, StudySettings
from .options import force_option, option_names, setting_default, times_option
from .report import begin_run, write_run_report

EXTENTS = ("--workload", "--device", "--variant", "--role", "--repeats", "--beside", "--precision")
"""Options a rerun into a study's folder may change: each job's record is kept under its own
settings, so these only add jobs (or leave some out of the tables), e.g. `--repeats 25` after
`--repeats 10` runs the missing blocks, and `--precision 0.005` after none keeps the searches, the
limit's choices and the first round's records and runs the rounds of more test items."""


def _default(name: str):
    """A StudySettings field's default (the one declaration of it)."""
    return setting_default(StudySettings, name)


def _eval_sizes(items) -> dict:
    """`--eval-size WORKLOAD=N …` over the study's defaults (StudySettings checks the sizes)."""
    sizes = dict(DEFAULT_EVAL_SIZE)
    for item in items:
        name, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise WeightprogError(f"eval-size: use WORKLOAD=N with N >= 1, got {item!r}")
        sizes[name] = int(n)
    return sizes


def _beside(items: tuple[str, ...]) -> tuple[str, ...] | None:
    """`--beside` as given (`none`: no periphery beside); None, the settings' default, when not given."""
    return tuple(i for i in items if i != "none") if items else None


@click.command()
@click.option("--workload", "workloads", multiple=True, metavar="NAME",
              help="ptb-lstm, fmnist-resnet32, sentiment-minilm; repeatable (default: all three).")
@click.option("--device", "devices", multiple=True, metavar="DEVICE",
              help="Device name or YAML/JSON file; repeatable (default: pcm and pcm-lowdrift).")
@click.option("--variant", "variants", multiple=True, type=click.Choice(("fp", "hwa")),
              help="Trained variant; repeatable (default: fp and hwa).")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES),
              help="Strategies evaluated per cell; repeatable (default: all four).")
@times_option(default="1s,1h,1d,30d,1y", help="Times after programming (the paper's five by default).")
@click.option("--repeats", default=_default("repeats"), show_default=True,
              help="Programming realisations per strategy (the paper: 25).")
@click.option("--block", default=_default("block"), show_default=True,
              help="Realisations per evaluation job (the unit of resumption and distribution).")
@click.option("--seed", default=_default("seed"), show_default=True)
@click.option("--eval-size", "eval_sizes", multiple=True, metavar="WORKLOAD=N",
              help="Test items per evaluation (default fmnist-resnet32=1000, ptb-lstm=8000 tokens, "
                   "sentiment-minilm=256).")
@click.option("--periphery", type=click.Choice(sorted(PERIPHERIES)), default=STUDY_PERIPHERY,
              show_default=True,
              help="chip-8bit: 8-bit DAC/ADC, output noise 1/127 of the range, abs-max input scaling and "
                   "per-column ranges as chips run them; standard: the same converters and noise with one "
                   "static range per layer; io8: standard without the noise (docs/NN.md).")
@click.option("--beside", "beside", multiple=True, metavar="PERIPHERY[@TIMES]",
              help="Also run each strategy under this periphery, at the study's last time or at TIMES (e.g. "
                   "standard@30d,1y), paired with itself under --periphery; repeatable; 'none' for none "
                   f"[default: {BESIDE}, unless --periphery {BESIDE}].")
@click.option("--select", type=click.Choice(SELECT_RULES), default=_default("select"), show_default=True,
              help="network: the optimised strategy is the search candidate best on held-out data; "
                   "tnmse: the search's own pick by weight error; resolved: that pick unless the held-out "
                   "data resolves a better candidate (paired, 95 %).")
@click.option("--network-repeats", default=_default("network_repeats"), show_default=True,
              help="Realisations per candidate when choosing on the network (the optimised strategy; the "
                   "limit's mapping and gain).")
@click.option("--max-generations", default=_default("max_generations"), show_default=True,
              help="Evolution generations per F.")
@click.option("--popsize", default=_default("popsize"), show_default=True, help="Population per search dimension.")
@click.option("--f-max", default=_default("f_max"), show_default=True, help="Significance factors F searched: 1…f_max.")
@click.option("--polish-steps", default=_default("polish_steps"), show_default=True,
              help="Gradient polish steps of the chosen search (0: none).")
@click.option("--search-on", type=click.Choice(SEARCH_ON), default=_default("search_on"), show_default=True,
              help="Search on each trained variant's weights, or use the FP weights' strategy for both.")
@click.option("--precision", default=None, metavar="P|P%|W=P,…",
              help="Add test items per workload in rounds (from --eval-size) until every paired comparison is "
                   "within ±P (the metric's unit, e.g. 0.005 = half a point of accuracy; P% of the FP digital "
                   "metric; per workload as fmnist-resnet32=0.005,ptb-lstm=1%, the others one round), the "
                   "test set is used up, or "
                   "the intervals stop narrowing (docs/NN.md).")
@click.option("--threads", default=None, type=int, help="torch threads per job (default: torch's choice).")
@click.option("--workers", default=0, show_default=True,
              help="Local worker processes running the jobs (0: in this process).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run every job as a Ray task: 'auto' (a running cluster, else a local one) or HOST:PORT.")
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="Results folder: jobs/, data/*.csv, results.csv, paired.csv, summary.md, figures/, report.html.")
@force_option()
def study(workloads, devices, variants, roles, times, repeats, block, seed, eval_sizes, periphery, beside, select,
          network_repeats, max_generations, popsize, f_max, polish_steps, search_on, precision, threads, workers,
          ray_address, out_dir):
    """Optimise, choose on held-out data, then evaluate FP/HWA × naive/hand-crafted/optimised/limit over time."""
    from ..study.run import run_study

    kw = {k: tuple(v) for k, v in (("workloads", workloads), ("devices", devices), ("variants", variants),
                                   ("roles", roles)) if v}
    with option_names(times_s="--times", workloads="--workload", devices="--device", variants="--variant",
                      roles="--role"):
        settings = StudySettings(times_s=times, repeats=repeats, block=block, seed=seed,
                                 eval_size=_eval_sizes(eval_sizes), periphery=periphery, select=select,
                                 beside=_beside(beside),
                                 network_repeats=network_repeats, max_generations=max_generations, popsize=popsize,
                                 f_max=f_max, polish_steps=polish_steps, search_on=search_on, threads=threads,
                                 precision=precision, **kw)
    if isinstance(workers, bool) or workers < 0:
        raise WeightprogError(f"--workers: need an integer >= 0, got {workers}")
    begin_run(out_dir, ("study.json", "jobs/*", "data/*.csv", "results.csv", "paired.csv", "summary.md",
                        "figures/*.png"), extents=EXTENTS)
    start = time.perf_counter()
    result = run_study(settings, Path(out_dir), log=lambda m: click.echo(f"[{time.perf_counter() - start:6.0f} s] {m}"),
                       workers=workers, ray=ray_address)
    click.echo(result.markdown)
    if result.failed:
        click.echo(f"{len(result.failed)} job(s) failed; rerun the same command to retry them: "
                   + "; ".join(f"{k}: {v}" for k, v in result.failed.items()), err=True)
    write_run_report(out_dir)
