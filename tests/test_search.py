"""The search: valid de-normalisation, determinism, resume, the CLI's files and errors."""

import importlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from weightprog.cell import Cell
from weightprog.cli import main
from weightprog.devices import get_device
from weightprog.metric import TNMSE
from weightprog.records.optimize import OptimizeRecord
from weightprog.sample import default_sample, load_distribution
from weightprog.search import StrategySpace, evolve, make_grid
from weightprog.search.lhs import latin_hypercube
from weightprog.search.run import OptimizeSettings, optimize
from weightprog.search.space import snap_to_kinks
from weightprog.strategy import Strategy

SMALL = default_sample(size=1024)


@pytest.mark.parametrize("pairs", [1, 2, 3])
@pytest.mark.parametrize("mode", ["exact", "free"])
def test_every_point_is_valid(pairs, mode):
    space = StrategySpace(make_grid(6, "quantile", SMALL.u), pairs, 0.0, 25.0, mode)
    lo, hi = np.array(space.bounds()).T
    x = lo + np.random.default_rng(0).random((2000, space.dims)) * (hi - lo)
    s = space.strategy(x)
    assert float(s.conductances.min()) >= 0 and float(s.conductances.max()) <= 25
    if mode == "exact":
        assert float(s.representation_error().max()) < 1e-9  # every grid weight exact
    assert space.dims == (2 * pairs - (mode == "exact")) * 6 + (pairs > 1) + 1


def test_latin_hypercube_draws_what_scipy_draws():
    """The initial population's exploration part: scipy's Latin hypercube, to the bit, without scipy.stats."""
    from scipy.stats import qmc

    for d, n, seed in ((1, 5, 0), (19, 285, 0), (23, 345, 7), (4, 60, 12345)):
        assert np.array_equal(latin_hypercube(d, n, seed), qmc.LatinHypercube(d=d, seed=seed).random(n))


def test_baselines_are_corners():
    cell = Cell((1.0, 2.0))
    grid = snap_to_kinks(make_grid(6, "quantile", SMALL.u), cell)
    assert any(abs(g - 1 / 3) < 1e-12 for g in grid.tolist())
    space = StrategySpace(grid, cell=cell)
    from weightprog.baselines import baseline
    u = torch.linspace(-1, 1, 401, dtype=torch.float64)
    for name in ("lsp-first", "msp-first"):
        decoded = space.strategy(space.encode_baseline(name, 2.0))
        exact = baseline(name, cell)
        # at the grid points the corner is the baseline itself (and represents every weight exactly)
        torch.testing.assert_close(decoded.targets(grid), exact.targets(grid))
        assert float(decoded.representation_error().max()) < 1e-9
        if name == "lsp-first":  # its one kink is on the snapped grid: equal everywhere
            torch.testing.assert_close(decoded.targets(u), exact.targets(u))


def _run(tmp_path=None, generations=6, seed=0, budget=None):
    objective = TNMSE(SMALL, "pcm", compile=False)
    space = StrategySpace(make_grid(4, "quantile", SMALL.u), cell=Cell((1.0, 2.0)))
    ckpt = tmp_path / "ckpt.json" if tmp_path else None
    return evolve(objective, space, seed=seed, popsize=5, max_generations=generations, tol=0,
                  checkpoint=ckpt, budget_s=budget)


def test_same_seed_same_strategy_and_never_worse_than_seeds():
    a, b = _run(), _run()
    assert np.array_equal(a.x, b.x) and a.history == b.history
    assert all(y <= x for x, y in zip(a.history, a.history[1:]))
    assert a.generations == 6 and len(a.history) == 7


def test_resume_loses_and_repeats_no_generation(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    whole = _run(tmp_path / "a", generations=6)
    part = _run(tmp_path / "b", generations=3)
    assert part.generations == 3
    resumed = _run(tmp_path / "b", generations=6)
    assert resumed.generations == 6
    assert resumed.history == whole.history
    assert np.array_equal(resumed.x, whole.x)
    # the resumed run reports the whole run's work and time, not only its own part
    assert resumed.evaluations == whole.evaluations
    assert resumed.wall_time_s > part.wall_time_s
    state = json.loads((tmp_path / "b" / "ckpt.json").read_text())
    assert state["generation"] == 6 and len(state["history"]) == 7


def test_interrupt_between_checkpoints_resumes_identically(tmp_path, monkeypatch):
    """Checkpoints are written every CHECKPOINT_EVERY_S seconds: Ctrl-C between two loses the
    generations since the last, and the resumed run repeats them to the same result."""
    evolve_module = importlib.import_module("weightprog.search.evolve")  # the package exports the function

    monkeypatch.setattr(evolve_module, "CHECKPOINT_EVERY_S", 3600.0)  # only the initial population's
    whole = _run(generations=6)
    ckpt = tmp_path / "ckpt.json"

    def interrupt(event):
        if event.detail.generation == 4:
            raise KeyboardInterrupt
    space = StrategySpace(make_grid(4, "quantile", SMALL.u), cell=Cell((1.0, 2.0)))
    with pytest.raises(KeyboardInterrupt):
        evolve(TNMSE(SMALL, "pcm", compile=False), space, popsize=5, max_generations=6, tol=0, checkpoint=ckpt,
               progress=interrupt)
    assert json.loads(ckpt.read_text())["generation"] == 0
    resumed = _run(tmp_path, generations=6)
    assert resumed.history == whole.history and np.array_equal(resumed.x, whole.x)
    assert resumed.evaluations == whole.evaluations
    assert json.loads(ckpt.read_text())["generation"] == 6  # the last generation is always written


def test_checkpoint_from_other_settings_refused(tmp_path):
    _run(tmp_path, generations=1)
    objective = TNMSE(SMALL, "pcm", compile=False, seed=9)
    space = StrategySpace(make_grid(4, "quantile", SMALL.u), cell=Cell((1.0, 2.0)))
    with pytest.raises(ValueError, match="other settings"):
        evolve(objective, space, popsize=5, max_generations=2, checkpoint=tmp_path / "ckpt.json")


def test_budget_stops_the_search():
    r = _run(generations=1000, budget=0.0)
    assert r.generations == 0 and "budget" in r.message


def test_search_compiles_only_long_runs(monkeypatch):
    """`compile="auto"`: the default run's searches (at most 5,000 kernel calls) stay eager, where
    compiling costs more than it saves; a long one compiles where torch.compile works."""
    from weightprog.search import run

    monkeypatch.setattr(run, "compile_available", lambda: True)
    settings = OptimizeSettings()
    spaces = run._spaces(SMALL, get_device("pcm"), settings, run.candidate_cells(settings))
    assert not run.compile_search(settings, spaces)
    assert run.compile_search(replace(settings, compile=True), spaces)
    assert run.compile_search(replace(settings, max_generations=1000), spaces)
    monkeypatch.setattr(run, "compile_available", lambda: False)  # no compiler: eager whatever the size
    assert not run.compile_search(replace(settings, max_generations=1000), spaces)


def test_optimize_beats_f1_baselines_and_other_device_differs(tmp_path):
    settings = OptimizeSettings(max_generations=4, popsize=4, rescore_blocks=2, compile=False, f_max=2,
                                polish_steps=3)
    values = load_distribution()
    pcm = optimize(SMALL, values, "pcm", settings)
    assert pcm.runs[pcm.chosen].polish["steps"] == 3  # the chosen search was polished
    assert pcm.scores.optimised.mean < pcm.scores.best_f1_baseline.score.mean
    best = pcm.scores.best_f("lsp-first").score
    assert pcm.scores.optimised.mean <= best.mean + best.stderr
    rram = tmp_path / "rram.yaml"
    rram.write_text("kind: tabulated\nname: rram-like\ng_min: 1.0\ng_max: 40.0\n"
                    "programming: {g: [1, 40], std: [1.5, 2.5]}\n"
                    "drift: {g: [1, 40], nu_mean: [0.01, 0.005], nu_std: [0.005, 0.002]}\n"
                    "read_noise: {g: [1, 40], q: [0.05, 0.02]}\n")
    other = optimize(SMALL, values, str(rram), settings)
    other.strategy.check_range(1.0, 40.0)
    assert not torch.equal(other.strategy.conductances, pcm.strategy.conductances)


def test_an_expressible_optimum_is_its_own_aihwkit_export():
    """DE's strategies represent every grid weight exactly (W_hw(1) = beta): the optimised strategy
    itself goes to strategy.aihwkit.json, with no note; the report names the strategy as the CLI does."""
    settings = OptimizeSettings(max_generations=2, popsize=3, rescore_blocks=2, compile=False, f_max=2,
                                polish=False, method="de", bound=False)
    result = optimize(SMALL, load_distribution(), "pcm", settings)
    assert result.expressible and result.method == "de"
    assert result.aihwkit_strategy is result.strategy and result.aihwkit_note is None
    assert "aihwkit_export" not in OptimizeRecord.of(result, "default").to_json()
    assert result.strategy.name == "optimised" and result.candidates["de"].name == "de"  # renamed copies


@pytest.mark.parametrize("pairs,sig", [(1, "auto"), (3, "1,2,4")])
def test_cli_optimize_writes_everything(tmp_path, pairs, sig):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["optimize", "--pairs", str(pairs), "--significance", sig,
                                       "--max-generations", "2", "--popsize", "3", "--grid", "4",
                                       "--rescore-blocks", "2", "--times", "1s,1d,1y", "--no-polish",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    for key in ("device", "cell", "times_s", "seed", "wall_time_s", "tnmse", "search"):
        assert key in report
    for key in ("optimised", "single_pair", "lsp_first", "msp_first"):
        assert set(report["tnmse"][key]) >= {"mean", "stderr", "per_time"}
        assert len(report["tnmse"][key]["per_time"]) == 3
    assert report["cell"]["pairs"] == pairs
    # the table names strategies as the CLI spells them; its numbers are report.json's
    rows = {line[:24].strip(): line[24:].split() for line in result.output.splitlines()}
    for name, key in [("optimised", "optimised"), ("single-pair F=1", "single_pair"), ("lsp-first F=1", "lsp_first"),
                      ("msp-first F=1", "msp_first"), (f"lsp-first F={report['tnmse']['lsp_first_best']['f']} (best F)",
                                                       "lsp_first_best")]:
        assert float(rows[name][0]) == pytest.approx(report["tnmse"][key]["mean"], rel=1e-4)
    assert not any(name.endswith("_best") or name == "lsp_first" for name in rows)
    strategy = Strategy.load(out / "strategy.json")
    assert strategy.pairs == pairs
    aihwkit = json.loads((out / "strategy.aihwkit.json").read_text())
    assert len(aihwkit["g_lst"]) == 2 * pairs
    assert set(aihwkit) <= {"f_lst", "g_lst", "g_max", "g_min", "invertibility_test"}  # converter args only
    assert json.loads((out / "strategy.json").read_text())["meta"]["aihwkit"]["file"] == "strategy.aihwkit.json"
    for png in ("strategy.png", "tnmse_vs_time.png", "error_distribution.png", "convergence.png"):
        assert (out / png).stat().st_size > 1000


def test_cli_optimize_figures_drawn_in_two_processes_equal_those_drawn_in_one(tmp_path, monkeypatch):
    args = ["optimize", "--max-generations", "2", "--popsize", "3", "--grid", "4", "--rescore-blocks", "2",
            "--times", "1s,1y", "--no-polish", "--f-max", "2"]
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "forked")]).exit_code == 0
    monkeypatch.delattr("os.fork")  # beside_fork: one after the other
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "serial")]).exit_code == 0
    for png in ("strategy.png", "tnmse_vs_time.png", "error_distribution.png", "convergence.png"):
        assert (tmp_path / "forked" / png).read_bytes() == (tmp_path / "serial" / png).read_bytes(), png


def test_cli_baselines_prints_the_library_numbers():
    from weightprog.baselines import BASELINES, baseline
    from weightprog.devices import get_device

    result = CliRunner().invoke(main, ["baselines", "--device", "ecram", "--f", "2", "--times", "1s,1y", "--seed", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("device ecram, cell f=1,2,") and lines[1].split() == ["strategy", "TNMSE", "1s", "1y"]
    dev = get_device("ecram")
    objective = TNMSE(default_sample(seed=3), dev, (1.0, 365 * 86400.0), seed=3, compile=False)
    for line, name in zip(lines[2:], BASELINES, strict=True):
        r = objective.evaluate(baseline(name, Cell.with_pairs(2, 2.0), dev.g_min, dev.g_max))
        expected = [float(r.mean[0]), *r.per_time[0].tolist()]
        assert line.split()[0] == name
        assert [float(x) for x in line.split()[1:]] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("args,message", [
    (["--weights", "missing.pt"], "missing.pt: weights file not found"),
    (["--pairs", "2", "--significance", "1,2,3"], "--significance"),
    (["--times", "1s,0s"], "times"),
    (["--device", "nope"], "unknown device"),
    (["--distribution", "nope"], "--distribution"),
])
def test_cli_bad_arguments(tmp_path, args, message):
    result = CliRunner().invoke(main, ["optimize", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_cli_unreadable_weight_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["optimize", "--weights", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "bad.pt: not a file of plain tensors" in result.output


def test_cli_reads_real_weight_files(tmp_path):
    """Every format reaches the search as the same values (the command's own reader); one full run."""
    from weightprog.cli.inputs import load_values

    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    np.savez(tmp_path / "m.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    values = {name: load_values(str(tmp_path / name), None, "column")[0] for name in ("m.pt", "m.npz", "m.safetensors")}
    assert values["m.pt"].numel() == 32 * 64 + 64 * 16
    assert torch.equal(values["m.pt"], values["m.npz"]) and torch.equal(values["m.pt"], values["m.safetensors"])
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["optimize", "--weights", str(tmp_path / "m.safetensors"), "--significance",
                                       "1,2", "--max-generations", "1", "--popsize", "2", "--grid", "3",
                                       "--rescore-blocks", "2", "--times", "1s,1y", "--no-polish", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["weights"] == str(tmp_path / "m.safetensors")


def test_cli_per_layer(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["optimize", "--weights", str(tmp_path / "m.pt"), "--significance", "1,2",
                                       "--per-layer", "--max-generations", "1", "--popsize", "2", "--grid", "3",
                                       "--rescore-blocks", "2", "--times", "1s,1y", "--no-polish", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())["per_layer"]
    assert [r["layer"] for r in rows] == ["0.weight", "2.weight"]
    for r in rows:
        assert Strategy.load(out / r["strategy"]).pairs == 2
        assert r["tnmse_layer_strategy"]["mean"] > 0 and r["tnmse_network_strategy"]["mean"] > 0
    result = CliRunner().invoke(main, ["optimize", "--per-layer", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "--per-layer needs --weights" in result.output


def test_pointwise_method_bound_report_and_evaluate(tmp_path):
    """--method pointwise: a dense, clipping strategy better than lsp-first, the bound and the gaps in
    report.json and the summary, an aihwkit export in converter form, and `evaluate` takes it."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["optimize", "--method", "pointwise", "--f-max", "2", "--rescore-blocks", "2",
                                       "--times", "1s,1d,1y", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "pointwise" and report["expressible"] is False
    bound = report["bound"]
    assert [row["f"] for row in bound["per_f"]] == [1.0, 2.0]
    assert bound["tnmse"] == min(row["bound"] for row in bound["per_f"])
    assert bound["tnmse"] <= bound["compensated_tnmse"]
    t = report["tnmse"]
    for key, gap in report["gap_to_bound"].items():
        assert gap == pytest.approx(t[key]["mean"] / bound["tnmse"] - 1)
        assert gap > -0.01 - 3 * t[key]["stderr"] / t[key]["mean"]  # nothing below the bound beyond its error
    assert t["optimised"]["mean"] < 0.99 * t["lsp_first_best"]["mean"]  # same fresh draws for both
    assert "bound:" in result.output and "gaps to the bound" in result.output
    assert "% below the best hand-crafted" in result.output
    strategy = Strategy.load(out / "strategy.json")
    assert strategy.grid.numel() > 20
    assert float(strategy.beta[0]) > float(strategy.hardware_weight(strategy.conductances)[0, -1])
    meta = json.loads((out / "strategy.json").read_text())["meta"]["aihwkit"]
    assert meta["strategy"] == report["aihwkit_export"]["strategy"] and "cannot express" in meta["note"]
    aihwkit = json.loads((out / "strategy.aihwkit.json").read_text())
    g = torch.tensor(aihwkit["g_lst"]).T  # (points, 2P): the export's largest weight is its scale
    w_hw = (g[:, 0] - g[:, 1]) * aihwkit["f_lst"][0] + (g[:, 2] - g[:, 3]) * aihwkit["f_lst"][1]
    assert float(w_hw[-1]) == pytest.approx(meta["beta"], rel=1e-4)
    optimum = meta["optimum"]  # the optimum itself, for weights mapped by psi (weightprog.aihwkit_export)
    assert (out / optimum["converter"]).is_file() and (out / optimum["weight_map"]).is_file()
    assert optimum["points"] >= 101 and "aihwkit: the optimised strategy itself: replace" in result.output
    from weightprog.cli.evaluate import evaluate
    ev = CliRunner().invoke(evaluate, ["--model", "nn_helpers:tiny_entry", "--strategy", str(out / "strategy.json"),
                                       "--times", "1s,1y", "--repeats", "1", "--no-progress",
                                       "--out", str(tmp_path / "ev")])
    assert ev.exit_code == 0, ev.output
