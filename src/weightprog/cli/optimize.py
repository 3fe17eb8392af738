"""`weightprog optimize`: weights + device -> best strategy, report, figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..choices import DEFAULT_SELECT, SELECT_RULES, WEIGHTINGS
from ..concurrency import preload
from ..errors import WeightprogError
from ..settings import OptimizeSettings
from ..threadcount import FIGURE_THREADS, SEARCH_THREADS, SEARCH_WORKERS, torch_threads
from ..timeunits import format_times
from .inputs import search_inputs
from .network import NetworkInputs, network_options
from .options import device_option, force_option, search_options, setting_option
from .report import begin_run, write_run_report

if TYPE_CHECKING:  # loaded when the command runs, not when the command line starts
    from ..devices import DeviceModel
    from ..records.optimize import LayerRow, OptimizeRecord
    from ..strategy import Strategy

OUTPUTS = ("strategy.json", "strategy.aihwkit.json", "strategy.aihwkit-optimum.json",
           "strategy.aihwkit-optimum.map.json", "report.json", "strategy.png", "tnmse_vs_time.png",
           "error_distribution.png", "convergence.png", "checkpoint_*.json", "layers/*.json")
"""What optimize writes in --out (runfolder.py: none of them replaced unless its manifest lists it)."""


@click.command()
@device_option()
@search_options
@setting_option(OptimizeSettings, "seed", type=int)
@setting_option(OptimizeSettings, "budget_s", "--budget", "budget_s", type=float, metavar="SECONDS",
                help="Wall-time budget for the search (default: run to convergence).")
@setting_option(OptimizeSettings, "rescore_blocks", type=int,
                help="Fresh samples (each the search's size, fresh draws) for the final numbers.")
@click.option("--no-clip", is_flag=True,
              help="Choose only strategies that represent the largest weight exactly (no clipping).")
@click.option("--per-layer", is_flag=True,
              help="Also one strategy per layer of --weights, each against the network-wide one.")
@click.option("--model", "model_spec", default=None, metavar="MODULE:FUNCTION|WORKLOAD",
              help="Optimise for this network's analog weights (as deployed) and choose among the candidates on "
                   "its held-out metric (a model spec as for `evaluate`; docs/NN.md).")
@setting_option(OptimizeSettings, "weighting", type=click.Choice(WEIGHTINGS))
@click.option("--select", type=click.Choice(SELECT_RULES), default=None,
              help="With --model: choose the strategy on the network's validate data (network), by weight "
                   "error (tnmse), or by weight error unless the validate data resolves a better candidate "
                   f"(resolved) [default: {DEFAULT_SELECT} when the spec has validate, else tnmse].")
@network_options
@click.option("--out", "out_dir", default="runs/optimize", show_default=True, type=click.Path())
@force_option()
def optimize_command(device, seed, budget_s, rescore_blocks, no_clip, per_layer, model_spec, weighting, select,
                     network_repeats, periphery, eval_size, out_dir, **search):
    """Find the programming strategy with the lowest time-averaged weight error (with --model: the best
    candidate on the network's held-out metric)."""
    from ..aihwkit_export import optimum_export
    from ..devices import get_device
    from ..largescale import iter_file_tensors
    from ..records.optimize import OptimizeRecord, write_optimize_run
    from ..report.progress import CountBar, SearchBars
    from ..search.run import optimize
    from ..select import candidates_of, select_on_network

    dev = get_device(device)  # resolved once: the library takes the model from here on
    if per_layer and not search["weights"]:
        raise WeightprogError("--per-layer needs --weights (a network's layers)")
    network = NetworkInputs.read(model_spec, select, network_repeats, periphery, eval_size, seed, search)
    if weighting == "fisher" and network is None:
        raise WeightprogError("--weighting fisher needs --model (a model spec with a 'loss' on non-test data)")
    given, importance = None, None
    if network is not None and weighting == "fisher":
        click.echo("weighting by the diagonal Fisher information (the spec's loss on non-test data)", err=True)
        fisher_values, importance = network.fisher()
        given = (fisher_values, network.label)
    elif network is not None:
        given = network.values()
    inputs = search_inputs(seed=seed, budget_s=budget_s, rescore_blocks=rescore_blocks, clip=not no_clip,
                           given=given, importance=importance, weighting=weighting, **search)
    settings, values, sample, source = inputs.settings, inputs.values, inputs.sample, inputs.source
    out = begin_run(out_dir, OUTPUTS)  # before the search: the manifest; a second run into it stops here
    times = settings.times_s
    click.echo(f"optimising for {source} ({values.numel():,} weights, search sample {sample.size:,}) "
               f"on device {dev.name}, {settings.pairs} pair(s), times {','.join(format_times(times))}, "
               f"weighting {settings.weighting}", err=True)
    bars = SearchBars(settings)
    # matplotlib imported beside the search, whose threads leave the GIL free, not after it
    figures = preload("weightprog.report.optimize_plots", "matplotlib.figure", "matplotlib.backends.backend_agg")
    try:
        with torch_threads(SEARCH_THREADS):
            result = optimize(sample, values, dev, settings, checkpoint_dir=out, progress=bars,
                              workers=SEARCH_WORKERS, importance=inputs.importance)
    finally:
        bars.close()
    record = OptimizeRecord.of(result, source)
    chosen, selection = result.strategy, None
    if network is not None and network.rule is not None:
        click.echo(f"scoring {len(candidates_of(result)[0]) + 1} strategies on the network "
                   f"({network.spec.selection_split} data, R = {network.settings.repeats})", err=True)
        with CountBar("realisations × times") as bar:
            selection, chosen = select_on_network(network.spec, result, dev, network.settings, network.rule,
                                                  progress=bar)
        record = record.with_network(selection)
    if per_layer:
        record = record.with_layers(per_layer_report(iter_file_tensors(search["weights"]), result.strategy, dev,
                                               settings, search["normalise"], out))
    aihwkit_meta = result.aihwkit_strategy.save_aihwkit(out / "strategy.aihwkit.json").to_dict()
    if result.aihwkit_note is not None:  # the optimum clips the largest weights: not in converter form
        aihwkit_meta.update(strategy=result.aihwkit_strategy.name, note=result.aihwkit_note,
                            optimum=optimum_export(result.strategy, out))  # the optimum itself, weights mapped
    chosen_by = {} if chosen is result.strategy else {"chosen_on_network": chosen.name}
    chosen.save(out / "strategy.json", device=dev.name, weights=source, seed=seed, aihwkit=aihwkit_meta, **chosen_by)
    figures.join()  # before the figures' fork: a child must not inherit a half-done import
    with torch_threads(FIGURE_THREADS):
        write_optimize_run(out, record, result, values, sample.u, fork=True)  # both cores draw
    print_summary(record, out)
    if "optimum" in aihwkit_meta:
        click.echo(f"aihwkit: {aihwkit_meta['optimum']['note']}.")
    if selection is not None:
        click.echo(selection.format())
    write_run_report(out)


def per_layer_report(tensors, network_strategy: Strategy, dev: DeviceModel, settings: OptimizeSettings,
                     normalise: str, out: Path) -> list[LayerRow]:
    """Optimise each layer; write layers/<name>.json; print and return the comparison.

    Parameters
    ----------
    tensors
        (name, tensor) of each layer of the weights file.
    network_strategy
        The network-wide optimised strategy each layer's own is compared with.
    dev
        The device.
    settings
        The run's settings.
    normalise
        How the layers' weights are normalised (`--normalise`).
    out
        The output folder (layers/<name>.json go there).

    Returns
    -------
    list of LayerRow
        report.json's `per_layer` rows.
    """
    from ..records.optimize import LayerRow
    from ..search.per_layer import optimize_per_layer

    click.echo("per-layer strategies (each layer's own vs the network-wide strategy, fresh seeds):", err=True)
    rows = []
    for layer in optimize_per_layer(tensors, network_strategy, dev, settings, normalise):
        file = f"layers/{layer.file_stem}.json"
        layer.strategy.save(out / file, layer=layer.name, device=dev.name)
        gain = layer.layer.improvement_over(layer.network)
        click.echo(f"  {layer.name:<32}{layer.weights:>10,} weights  layer {layer.layer.mean:.4e}  "
                   f"network-wide {layer.network.mean:.4e}  ({100 * gain:+.1f}%)")
        rows.append(LayerRow.of(layer, file))
    return rows


def print_summary(record: OptimizeRecord, out: Path) -> None:
    """Print the table of scores (and the bound), the run's findings in words and the files written.

    Parameters
    ----------
    record
        The run's record (report.json).
    out
        The output folder.
    """
    gaps = record.gap_to_bound
    click.echo(f"{'strategy':<24}{'TNMSE':>11}{'± s.e.':>10}" + (f"{'vs bound':>10}" if gaps else ""))
    for key, name, score in record.tnmse.entries():
        click.echo(f"{name:<24}{score.mean:11.4e}{score.stderr:10.1e}"
                   + (f"{100 * gaps[key]:+9.1f}%" if gaps else ""))
    if record.bound is not None:
        b = record.bound
        click.echo(f"{'bound F=' + format(b.f, 'g'):<24}{b.tnmse:11.4e}")
        click.echo(f"{'bound, compensated F=' + format(b.compensated_f, 'g'):<24}{b.compensated_tnmse:11.4e}")
    for line in summary_words(record):
        click.echo(line)
    click.echo(f"wrote {out}/strategy.json, strategy.aihwkit.json, report.json, strategy.png, "
               f"tnmse_vs_time.png, error_distribution.png, convergence.png")


METHOD_WORDS = {"de": "differential evolution", "pointwise": "the pointwise optimum (dense table)",
                "pointwise_expressible": "the pointwise optimum without clipping (dense table, β = W_hw(1))"}


def summary_words(record: OptimizeRecord) -> list[str]:
    """What the run found, in sentences: the optimum, the best hand-crafted strategy, the bound,
    the gaps.

    Parameters
    ----------
    record
        The run's record (report.json).

    Returns
    -------
    list of str
        One sentence per line.
    """
    from ..scores import Scoreboard

    scores = record.tnmse
    cell = ",".join(f"{f:g}" for f in record.cell.significance)
    opt, best = scores.optimised, scores.best_hand_crafted
    method = METHOD_WORDS.get(record.method or "de", record.method)
    clip = "" if record.expressible in (True, None) else ", clipping the largest weights"
    metric = "Fisher-weighted TNMSE" if record.settings.weighting == "fisher" else "TNMSE"
    lines = [f"found: {method}, cell f={cell}, beta {record.beta:.1f} uS{clip}: {metric} {opt.mean:.4e} "
             f"± {opt.stderr:.1e}, {100 * scores.improvement_vs_best_hand_crafted:.1f}% below the best "
             f"hand-crafted strategy ({best.label}, {best.score.mean:.4e}) and "
             f"{100 * scores.improvement_vs_best_f1_baseline:.1f}% below the best F=1 one; "
             f"{record.wall_time_s:.1f} s."]
    if record.bound is not None and record.gap_to_bound is not None:
        b, gaps = record.bound, record.gap_to_bound
        lines.append(f"bound: no mapping of weights to conductances on this device does better than "
                     f"{b.tnmse:.4e} (F={b.f:g}, one free read-out scale per time); with the deployed "
                     f"drift compensation the best is {b.compensated_tnmse:.4e} (F={b.compensated_f:g}).")
        near = opt.within_error_of(b.tnmse)
        lines.append(f"gaps to the bound: optimised {100 * gaps['optimised']:+.1f}%"
                     + (" (within the re-score's error of the limit: little is left to gain)" if near else "")
                     + f", {best.label} {100 * gaps[Scoreboard.key_of(best)]:+.1f}%"
                     + "".join(f", {k} {100 * gaps[k]:+.1f}%" for k in ("de", "pointwise") if k in gaps) + ".")
    for e in record.error_split:
        share = [x / (x + y) for x, y in zip(e.systematic, e.random) if x + y > 0]
        top = e.largest_weight_ratio
        lines.append(f"error split, {e.strategy}: systematic share {100 * share[0]:.1f}% at "
                     f"{format_times(e.times_s[:1])[0]} … {100 * share[-1]:.1f}% at "
                     f"{format_times(e.times_s[-1:])[0]}" + (f"; the largest weight reads as {100 * top:.1f}% of "
                                                              f"itself at the last time" if top is not None else ""))
    if record.aihwkit_export is not None:
        lines.append(f"aihwkit: {record.aihwkit_export.note}.")
    return lines
