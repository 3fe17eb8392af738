"""`weightprog evaluate`: a model's metric over time after programming, for one or more strategies."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import click

from ..choices import NORMALISE_UNITS, PERIPHERIES, REFERENCES
from ..errors import WeightprogError
from ..fileio import check_output_folder
from ..settings import Mapping
from ..timeunits import format_times
from ..validate import COMPENSATION_SCOPES, compute_device
from .model_spec import default_eval_size, load_model_spec_sized, precision_target
from .options import device_option, force_option, option_names, setting_option, times_option
from .report import begin_run, write_run_report


def refuse_unused_significance(strategies, significance: str | None) -> None:
    """`--significance` builds the baselines' cells: with strategy files only, it would do nothing."""
    from ..baselines import BASELINES
    from ..choices import LIMITS

    if significance is not None and not any(s in BASELINES or s in LIMITS for s in strategies):
        raise WeightprogError(f"--significance {significance}: only for the baselines ({', '.join(BASELINES)}) "
                              f"and the limit; a strategy file brings its own cell")


def vs_digital_line(result, higher_is_better: bool) -> str:
    """Each strategy's metric at the last time against the digital model's, signed, with its unit."""
    from ..report.page import vs_digital

    k = len(result.times_s) - 1
    parts = [f"{s} {vs_digital(float(result.mean[i, k]), result.digital, higher_is_better)}"
             for i, s in enumerate(result.strategies)]
    return f"at {format_times(result.times_s)[-1]}, vs digital: " + "; ".join(parts)


@click.command()
@click.option("--model", "model_spec", required=True, metavar="MODULE:FUNCTION",
              help="Entry point returning (model, evaluate_fn) or a mapping with model, evaluate and optionally "
                   "validate, calibrate, higher_is_better, aggregate, metric (docs/NN.md). Or a reference "
                   "workload: ptb-lstm, fmnist-resnet32, sentiment-minilm (@hwa for HWA).")
@click.option("--strategy", "strategies", multiple=True, required=True, metavar="FILE|BASELINE|limit",
              help="Strategy JSON file, baseline name (single-pair, lsp-first, msp-first), 'limit' (the "
                   "device's limit: per weight the least-noise unbiased targets for each time, read out "
                   "with an oracle scale per column), 'limit-mse' (the weight-error bound's mapping) or "
                   "'limit-chosen' (at each time the better of the two on the spec's validate data, read "
                   "with the gain that scores best there); repeatable.")
@click.option("--significance", default=None, metavar="1,F",
              help="Significance factors of the cell the baselines are built for "
                   "[default: 1 for single-pair, 1,1 for the others].")
@device_option()
@times_option()
@click.option("--repeats", default=25, show_default=True, help="Programming realisations per strategy.")
@click.option("--seed", default=0, show_default=True)
@click.option("--periphery", type=click.Choice(sorted(PERIPHERIES)), default="ideal", show_default=True)
@click.option("--compute", default="cpu", show_default=True, help="Torch compute device: cpu or cuda.")
@setting_option(Mapping, "tile_rows", "--tile", "tile", type=int, help="Crossbar tile size (rows = columns).")
@setting_option(Mapping, "normalise", type=click.Choice(NORMALISE_UNITS))
@setting_option(Mapping, "compensation", type=click.Choice(COMPENSATION_SCOPES))
@setting_option(Mapping, "reference", "--compensation-reference", "compensation_reference",
                type=click.Choice(REFERENCES),
                help="Drift compensation against a noisy read right after programming (as a chip does) "
                     "or the noise-free programmed state.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only these modules are analog; repeatable.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Keep these modules digital; repeatable.")
@click.option("--metric-name", default=None,
              help="The metric's name [default: the spec's or workload's own (ptb-lstm: perplexity), else accuracy].")
@click.option("--higher-is-better/--lower-is-better", "higher_is_better", default=None,
              help="The metric's direction [default: the spec's or workload's own, else higher is better].")
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Write results.csv, results.json, accuracy_vs_time.png and report.html here.")
@click.option("--eval-size", type=click.IntRange(min=1), default=None,
              help="Reference workloads: evaluate on the first N test items (images, tokens, sentences).")
@click.option("--precision", default=None, metavar="P|P%",
              help="Reference workloads: add test items in rounds (from --eval-size) until every paired "
                   "difference's 95 % interval is within ±P (the metric's unit, e.g. 0.005 = half a point of "
                   "accuracy; or P% of the digital metric) or the test set is used up.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@force_option()
def evaluate(model_spec, strategies, significance, device, times, repeats, seed, periphery, compute,
             tile, normalise, compensation, compensation_reference, include, exclude, metric_name, higher_is_better,
             out_dir, eval_size, precision, progress):
    """A model's metric over time after programming its weights into analogue memory."""
    from ..choices import LIMITS
    from ..devices import get_device
    from ..nn.evaluate import evaluate_over_time, resolve_strategies
    from ..nn.periphery import get_periphery
    from ..report.progress import count_progress

    with option_names():
        compute_device(compute)
    if out_dir is not None:
        check_output_folder(out_dir)
    # names resolved once, before the model is loaded: the library takes the objects from here on
    dev = get_device(device)
    refuse_unused_significance(strategies, significance)
    named = [s for s in strategies if s not in LIMITS]
    chosen: list = list(resolve_strategies(named, dev, significance)) if named else []
    for i, s in enumerate(strategies):  # limits: computed from the model's own weights, once they are loaded
        if s in LIMITS:
            chosen.insert(i, s)
    mapping = Mapping(tile, tile, normalise, compensation, compensation_reference)
    target = None if precision is None else precision_target(precision, model_spec)

    def load(n: int | None):
        spec, available = load_model_spec_sized(model_spec, n)
        if metric_name is not None or higher_is_better is not None:  # the user's word over the spec's
            spec = replace(spec, metric=metric_name or spec.metric,
                           higher_is_better=spec.higher_is_better if higher_is_better is None else higher_is_better)
        return spec, available

    start = eval_size if target is None else eval_size or default_eval_size(model_spec)
    loaded = {start: load(start)}  # the first spec, before the folder is claimed: a bad one is refused first

    def run(n: int | None):
        spec, available = loaded.pop(n, None) or load(n)
        with count_progress("realisations × times") if progress else nullcontext() as bar:
            return evaluate_over_time(spec, strategies=chosen, device=dev, times_s=times, repeats=repeats, seed=seed,
                                      mapping=mapping, periphery=get_periphery(periphery), significance=significance,
                                      include=list(include) or None, exclude=list(exclude) or None,
                                      compute=compute, progress=bar), available

    if out_dir is not None:  # inputs read: the manifest, before the evaluation
        begin_run(out_dir, ("results.csv", "results.json", "accuracy_vs_time.png"))
    reached = None
    if target is None:
        result, _ = run(start)
    else:
        from ..nn.precision import evaluate_to_precision

        result, reached = evaluate_to_precision(run, start, target, log=lambda line: click.echo(line, err=True))
    click.echo(result.mapping.format().splitlines()[-1])
    if result.calibrated_on == "test":
        click.echo("note: the periphery's ranges were calibrated on the scored data itself (the model spec has "
                   "neither calibrate nor validate)", err=True)
    click.echo(result.format())
    click.echo(vs_digital_line(result, result.higher_is_better))
    if reached is not None:
        click.echo(reached.format())
    if out_dir is None:
        return
    from ..records.evaluate import EvaluateRecord, write_evaluate_run

    out = Path(out_dir)
    write_evaluate_run(out, EvaluateRecord.of(result, model_spec, compute, reached), result)
    click.echo(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {out / 'accuracy_vs_time.png'}")
    write_run_report(out)
