"""`weightprog evaluate`: a model's metric over time after programming, for one or more strategies."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import click

from .._version import __version__
from ..devices import get_device
from ..errors import WeightprogError
from ..fileio import atomic_write_json, atomic_write_text, check_output_folder
from ..hardware import COMPENSATION_UNITS, NORMALISE_UNITS, REFERENCES, Mapping
from ..nn.evaluate import evaluate_over_time, resolve_strategies
from ..nn.periphery import PRESETS, get_periphery
from ..report.page import vs_digital
from ..report.progress import count_progress
from ..timeunits import format_times
from ..validate import compute_device
from .options import device_option, force_option, option_names, times_option
from .report import begin_run, write_run_report


def load_entry_point(spec: str, eval_size: int | None = None):
    """`package.module:function` or `path/to/file.py:function` -> (model, evaluate_fn).

    This imports and runs the user's own code: that is what an entry point is for. A reference
    workload name (`fmnist-resnet32`, or `fmnist-resnet32@hwa` for its HWA-trained variant) is
    looked up in `weightprog.workloads` first.

    Parameters
    ----------
    spec
        `module:function`, `file.py:function`, or a workload name (`NAME` or `NAME@hwa`).
    eval_size
        Workloads only: evaluate on the first N test items (None: the workload's default).

    Returns
    -------
    tuple
        (model, evaluate_fn) with `evaluate_fn(model) -> float`.

    Raises
    ------
    WeightprogError
        An entry point that cannot be imported, is missing, or returns something else.
    """
    from ..workloads import get_workload, is_workload
    name, _, variant = spec.partition("@")
    if is_workload(name):
        model, evaluate_fn, _ = get_workload(name, variant or "fp", eval_size=eval_size)
        return model, evaluate_fn
    if eval_size is not None:
        raise WeightprogError(f"eval-size: only for the reference workloads, not for the entry point {spec!r}")
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name.isidentifier():
        raise WeightprogError(f"model: use module:function or file.py:function, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise WeightprogError(f"model: file {path} not found")
            found = importlib.util.spec_from_file_location(f"_weightprog_model_{path.stem}", path)
            if found is None or found.loader is None:
                raise WeightprogError(f"model: cannot import {path} (not a Python source file)")
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:  # `weightprog` run from a project dir finds its modules
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WeightprogError(f"model: cannot import {module_name!r} ({exc})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise WeightprogError(f"model: {module_name!r} has no function {func_name!r}")
    made = func()
    if not (isinstance(made, tuple) and len(made) == 2 and callable(made[1])):
        raise WeightprogError(f"model: {spec} must return (model, evaluate_fn), with evaluate_fn(model) -> float")
    return made


def metric_of(model_spec: str, name: str | None, higher: bool | None) -> tuple[str, bool]:
    """The metric's name and direction: the user's, else the workload's, else accuracy (higher)."""
    from ..workloads import is_workload, workload_metric

    workload = model_spec.partition("@")[0]
    own = workload_metric(workload) if is_workload(workload) else ("accuracy", True)
    return name or own[0], own[1] if higher is None else higher


def refuse_unused_significance(strategies, significance: str | None) -> None:
    """`--significance` builds the baselines' cells: with strategy files only, it would do nothing."""
    from ..baselines import BASELINES

    if significance is not None and not any(s in BASELINES for s in strategies):
        raise WeightprogError(f"--significance {significance}: only for the baselines ({', '.join(BASELINES)}); "
                              f"a strategy file brings its own cell")


def vs_digital_line(result, higher_is_better: bool) -> str:
    """Each strategy's metric at the last time against the digital model's, signed, with its unit."""
    k = len(result.times_s) - 1
    parts = [f"{s} {vs_digital(float(result.mean[i, k]), result.digital, higher_is_better)}"
             for i, s in enumerate(result.strategies)]
    return f"at {format_times(result.times_s)[-1]}, vs digital: " + "; ".join(parts)


@click.command()
@click.option("--model", "model_spec", required=True, metavar="MODULE:FUNCTION",
              help="Entry point returning (model, evaluate_fn); evaluate_fn(model) -> float. "
                   "Or a reference workload: ptb-lstm, fmnist-resnet32, sentiment-minilm (@hwa for HWA).")
@click.option("--strategy", "strategies", multiple=True, required=True, metavar="FILE|BASELINE",
              help="Strategy JSON file or baseline name (single-pair, lsp-first, msp-first); repeatable.")
@click.option("--significance", default=None, metavar="1,F",
              help="Significance factors of the cell the baselines are built for "
                   "[default: 1 for single-pair, 1,1 for the others].")
@device_option()
@times_option()
@click.option("--repeats", default=25, show_default=True, help="Programming realisations per strategy.")
@click.option("--seed", default=0, show_default=True)
@click.option("--periphery", type=click.Choice(sorted(PRESETS)), default="ideal", show_default=True)
@click.option("--compute", default="cpu", show_default=True, help="Torch compute device: cpu or cuda.")
@click.option("--tile", default=512, show_default=True, help="Crossbar tile size (rows = columns).")
@click.option("--normalise", type=click.Choice(NORMALISE_UNITS), default="column", show_default=True)
@click.option("--compensation", type=click.Choice(COMPENSATION_UNITS), default="column", show_default=True)
@click.option("--compensation-reference", type=click.Choice(REFERENCES), default="read", show_default=True,
              help="Drift compensation against a noisy read right after programming (as a chip does) "
                   "or the noise-free programmed state.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only these modules are analog; repeatable.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Keep these modules digital; repeatable.")
@click.option("--metric-name", default=None,
              help="The metric's name [default: the workload's (ptb-lstm: perplexity), else accuracy].")
@click.option("--higher-is-better/--lower-is-better", "higher_is_better", default=None,
              help="The metric's direction [default: the workload's, else higher is better].")
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Write results.csv, results.json, accuracy_vs_time.png and report.html here.")
@click.option("--eval-size", type=click.IntRange(min=1), default=None,
              help="Reference workloads: evaluate on the first N test items (images, tokens, sentences).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@force_option()
def evaluate(model_spec, strategies, significance, device, times, repeats, seed, periphery, compute,
             tile, normalise, compensation, compensation_reference, include, exclude, metric_name, higher_is_better,
             out_dir, eval_size, progress):
    """A model's metric over time after programming its weights into analogue memory."""
    with option_names():
        compute_device(compute)
    if out_dir is not None:
        check_output_folder(out_dir)
    # names resolved once, before the model is loaded: the library takes the objects from here on
    dev = get_device(device)
    refuse_unused_significance(strategies, significance)
    chosen = resolve_strategies(list(strategies), dev, significance)
    metric_name, higher_is_better = metric_of(model_spec, metric_name, higher_is_better)
    mapping = Mapping(tile, tile, normalise, compensation, compensation_reference)
    model, evaluate_fn = load_entry_point(model_spec, eval_size)
    if out_dir is not None:  # inputs read: the manifest, before the evaluation
        begin_run(out_dir, ("results.csv", "results.json", "accuracy_vs_time.png"))
    result = evaluate_over_time(model, evaluate_fn, chosen, dev, times, repeats, seed,
                                mapping=mapping, periphery=get_periphery(periphery),
                                include=list(include) or None, exclude=list(exclude) or None,
                                compute=compute, progress=progress and count_progress("realisations × times"))
    click.echo(result.mapping.format().splitlines()[-1])
    click.echo(result.format())
    click.echo(vs_digital_line(result, higher_is_better))
    if out_dir is None:
        return
    from ..report.nn_plots import plot_metric_vs_time  # matplotlib only when writing files

    out = Path(out_dir)
    data = {"format": "weightprog.evaluate", "version": __version__, "model": model_spec,
            "compute": compute, "times": format_times(times), "metric_name": metric_name,
            "higher_is_better": higher_is_better, **result.to_dict()}
    atomic_write_text(out / "results.csv", result.to_csv())
    atomic_write_json(out / "results.json", data)
    plot_metric_vs_time(result, out / "accuracy_vs_time.png", metric_name)
    click.echo(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {out / 'accuracy_vs_time.png'}")
    write_run_report(out)
