"""Evaluation over time: exact with an ideal device, reproducible with noise, weights restored."""

import math
import statistics

import pytest
import torch

from nn_helpers import CASES, metrics_for
from weightprog import Cell, Mapping, WeightprogError, baseline, program_weights
from weightprog.nn import (
    ProgrammedModel,
    WeightSwap,
    evaluate_over_time,
    find_analog_weights,
    realisation_seed,
    resolve_strategies,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TIMES = (1.0, 86400.0)


def accuracy_for(inputs, target):
    @torch.no_grad()
    def evaluate_fn(model):
        logits = model(*inputs)
        return float((logits.argmax(-1) == target).float().mean())
    return evaluate_fn


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model, before):
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("case", sorted(CASES))
def test_ideal_device_equals_digital_model(case):
    model, inputs, target = CASES[case]()
    before = snapshot(model)
    strategies = ["single-pair", "lsp-first", "msp-first"]
    result = evaluate_over_time(model, accuracy_for(inputs, target), strategies, "ideal", TIMES, repeats=2,
                                seed=3, significance=(1, 2), mapping=Mapping(8, 8))
    assert result.metrics.shape == (3, 2, 2)
    assert (result.metrics == result.digital).all()  # accuracy: exactly the digital model's
    assert (result.std == 0).all()
    assert_same_state(model, before)


@pytest.mark.parametrize("case", sorted(CASES))
def test_ideal_device_reads_back_the_weights(case):
    # float32 conductance arithmetic: weights come back within a few ulp, the loss to ~1e-6
    model, inputs, target = CASES[case]()
    weights = find_analog_weights(model)
    swap = WeightSwap(weights)
    programmed = ProgrammedModel(weights, baseline("lsp-first", Cell((1, 2))), "ideal")
    loss = metrics_for(inputs, target)
    digital = loss(model)
    with programmed.applied(3600.0, swap):
        for w, original in zip(weights, swap.originals):
            scale = original.abs().max()
            assert (w.param.detach() - original).abs().max() <= 4e-7 * scale
        assert loss(model) == pytest.approx(digital, rel=1e-5)


def test_noise_repeats_differ_and_seed_reproduces():
    model, inputs, target = CASES["cnn"]()
    evaluate_fn = metrics_for(inputs, target)
    def run(seed):
        return evaluate_over_time(model, evaluate_fn, ["lsp-first", "msp-first"], "pcm", TIMES, repeats=3, seed=seed)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.metrics, b.metrics)
    assert not torch.equal(a.metrics, c.metrics)
    per_realisation = a.metrics[0, :, 0]
    assert len(set(per_realisation.tolist())) == 3  # every realisation is a different programming
    assert (a.metrics != a.digital).all()
    assert (a.std > 0).all()
    first = a.metrics[1, :, -1].tolist()  # msp-first, last time: mean and std by hand
    assert float(a.mean[1, -1]) == pytest.approx(sum(first) / 3)
    assert float(a.std[1, -1]) == pytest.approx(statistics.stdev(first))


def test_weights_restored_after_evaluation_and_after_an_error():
    model, inputs, target = CASES["lstm"]()
    before = snapshot(model)
    evaluate_over_time(model, metrics_for(inputs, target), "lsp-first", "pcm", TIMES, repeats=1)
    assert_same_state(model, before)
    calls = []

    def failing(m):
        calls.append(1)
        if len(calls) == 2:  # first analog evaluation
            raise RuntimeError("boom")
        return 0.0
    with pytest.raises(RuntimeError, match="boom"):
        evaluate_over_time(model, failing, "lsp-first", "pcm", TIMES, repeats=1)
    assert_same_state(model, before)


def test_reads_share_the_programmed_devices():
    # drift accumulates on the same devices: two reads differ only by read noise (ratio ~0.6 here,
    # 4096 weights so the norms fluctuate by ~2%), a fresh programming also by programming noise
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    weights = find_analog_weights(model)
    gen = torch.Generator().manual_seed(0)
    programmed = ProgrammedModel(weights, baseline("lsp-first", Cell((1, 1))), "pcm", Mapping(), gen)
    t = programmed.tensors[0]
    w1, w2 = t.read(3600.0, gen), t.read(3600.0, gen)
    other = ProgrammedModel(weights, baseline("lsp-first", Cell((1, 1))), "pcm", Mapping(), gen).tensors[0]
    assert not torch.equal(w1, w2)
    assert (w1 - w2).norm() < 0.8 * (w1 - other.read(3600.0, gen)).norm()


def test_tidy_table_summary_and_files_content():
    model, inputs, target = CASES["gpt2"]()
    result = evaluate_over_time(model, metrics_for(inputs, target), ["lsp-first", "single-pair"], "pcm",
                                TIMES, repeats=2, seed=5)
    rows = result.rows()
    assert len(rows) == 2 * 2 * 2
    assert rows[0].keys() == {"strategy", "realisation", "time_s", "time", "metric", "weight_nmse"}
    assert {r["time"] for r in rows} == {"1s", "1d"}
    summary = result.summary()
    assert len(summary) == 4 and summary[0]["n"] == 2
    first = [r["metric"] for r in rows if r["strategy"] == summary[0]["strategy"] and r["time_s"] == 1.0]
    assert summary[0]["mean"] == pytest.approx(sum(first) / 2)
    assert summary[0]["std"] == pytest.approx(abs(first[0] - first[1]) / math.sqrt(2))
    csv = result.to_csv().splitlines()
    assert csv[0] == "strategy,realisation,time_s,time,metric,weight_nmse" and len(csv) == 9
    data = result.to_dict()
    assert data["seed"] == 5 and data["device"]["name"] == "pcm" and data["device_state_bytes"] > 0
    assert data["mapping"]["analog_weights"] == 48 * 16 + 16 * 16 + 16 * 16


def test_progress_callback_and_argument_errors():
    model, inputs, target = CASES["gpt2"]()
    seen = []
    evaluate_over_time(model, metrics_for(inputs, target), "lsp-first", "ideal", TIMES, repeats=2,
                       progress=lambda e: seen.append((e.task, e.done, e.total)))
    assert seen[0] == ("evaluate", 0, 4) and seen[-1] == ("evaluate", 4, 4) and len(seen) == 5
    fn = metrics_for(inputs, target)
    with pytest.raises(WeightprogError, match="repeats"):
        evaluate_over_time(model, fn, "lsp-first", repeats=0)
    with pytest.raises(WeightprogError, match="times"):
        evaluate_over_time(model, fn, "lsp-first", times_s=(10.0, 1.0))
    with pytest.warns(DeprecationWarning, match="times_s"):  # the old keyword still works
        old = evaluate_over_time(model, fn, "lsp-first", "ideal", repeats=1, times=(1.0, 60.0))
    assert old.times_s == (1.0, 60.0)
    with pytest.raises(WeightprogError, match="times_s only"):
        evaluate_over_time(model, fn, "lsp-first", "ideal", (1.0,), repeats=1, times=(1.0,))
    with pytest.raises(WeightprogError, match="neither a baseline"):
        evaluate_over_time(model, fn, "best-ever")
    with pytest.raises(WeightprogError, match="evaluate_fn: must return a number"):
        evaluate_over_time(model, lambda m: "high", "lsp-first", repeats=1)


def test_strategy_files_names_and_realisation_seeds(tmp_path):
    s = baseline("msp-first", Cell((1, 2)))
    s.names = ["strategy"]
    s.save(tmp_path / "mine.json")
    resolved = resolve_strategies([tmp_path / "mine.json", "lsp-first", "lsp-first"], "pcm", "1,2")
    assert [r.name for r in resolved] == ["mine", "lsp-first (f=1,2)", "lsp-first (f=1,2) #2"]
    assert resolved[1].significance.tolist() == [[1.0, 2.0]]
    assert len({realisation_seed(0, r) for r in range(100)}) == 100
    assert realisation_seed(1, 0) != realisation_seed(0, 1)


def test_weight_nmse_is_the_error_of_the_weights_the_model_ran_on():
    """Σ(α·ŵ − w)²/Σw² per layer and overall, from the very reads swapped into the model."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    originals = [model[0].weight.detach().clone(), model[2].weight.detach().clone()]
    seen = []

    def evaluate_fn(m):
        seen.append([m[0].weight.detach().clone(), m[2].weight.detach().clone()])
        return 1.0

    result = evaluate_over_time(model, evaluate_fn, ["lsp-first"], "pcm", (1.0, 86400.0), repeats=2, seed=1)
    reads = seen[1:]  # the first call is the digital run
    assert len(reads) == 4 and result.layers == ["0.weight", "2.weight"]
    for n, (r, k) in enumerate((r, k) for r in range(2) for k in range(2)):
        errors = [float((w - o).double().square().sum()) for w, o in zip(reads[n], originals)]
        energy = [float(o.double().square().sum()) for o in originals]
        assert result.layer_nmse[0, r, k].tolist() == pytest.approx([e / s for e, s in zip(errors, energy)], rel=1e-5)
        assert float(result.weight_nmse[0, r, k]) == pytest.approx(sum(errors) / sum(energy), rel=1e-5)
    assert 1e-4 < float(result.weight_nmse.mean()) < 0.5
    data = result.to_dict()
    assert len(data["weight_nmse_per_layer"]) == 2 * 2
    assert data["summary"][0]["weight_nmse_mean"] == pytest.approx(float(result.weight_nmse[0, :, 0].mean()))
    assert "weight NMSE" in result.format()


def test_single_pair_means_one_pair_unless_asked():
    model = torch.nn.Linear(8, 8)
    result = evaluate_over_time(model, lambda m: 0.0, ["single-pair", "lsp-first"], "pcm", (1.0,), repeats=1)
    assert [len(s["significance"]) for s in result.strategy_dicts] == [1, 2]
    asked = evaluate_over_time(model, lambda m: 0.0, ["single-pair"], "pcm", (1.0,), repeats=1,
                               significance="1,2")
    assert len(asked.strategy_dicts[0]["significance"]) == 2


def test_compensation_reference_programmed_state():
    """Without read noise a read right after programming is the programmed state: both references
    give the same weights; with read noise they differ, and the reference is validated."""
    torch.manual_seed(0)
    w = torch.randn(64, 64)
    strategy = baseline("lsp-first", Cell((1, 1)))
    quiet = [program_weights(w, strategy, "pcm:read=0", (3600.0,), Mapping(reference=ref), seed=2)[0]
             for ref in ("read", "programmed")]
    assert torch.allclose(quiet[0], quiet[1], rtol=1e-5, atol=1e-6)
    noisy = [program_weights(w, strategy, "pcm", (3600.0,), Mapping(reference=ref), seed=2)[0]
             for ref in ("read", "programmed")]
    assert not torch.allclose(noisy[0], noisy[1])
    with pytest.raises(WeightprogError, match="compensation reference"):
        Mapping(reference="ideal")


def test_pass_timing_names_the_compiling_share():
    from weightprog.nn.result import PassTiming

    t = PassTiming(0.3, 12.0, 10, 4.2)
    assert "(4.2 s of it compiling kernels)" in t.describe() and t.to_dict()["compiling_s"] == 4.2
    assert PassTiming.from_dict({"digital_s": 0.3, "analogue_s": 12.0, "passes": 10}).compiling_s is None
    assert "compiling" not in PassTiming(0.3, 12.0, 10, 0.0).describe()


def test_pass_timing_compares_the_analogue_passes_with_one_digital_pass():
    model, inputs, target = CASES["cnn"]()
    fn = metrics_for(inputs, target)
    ideal = evaluate_over_time(model, fn, ["lsp-first"], "pcm", TIMES, repeats=2)
    t = ideal.timing
    assert t is not None and t.passes == 2 * 2 and t.digital_s > 0 and t.analogue_s > 0
    assert t.ratio == pytest.approx(t.analogue_s / (4 * t.digital_s))
    assert ideal.to_dict()["timing"]["ratio"] == t.ratio and "analogue passes" in ideal.format()
    assert t.compiling_s is not None and 0 <= t.compiling_s <= t.analogue_s  # torch's own record of it
    assert type(t).from_dict(t.to_dict()) == t
    # an older spec with a converter periphery calibrates on the scored data: no clean digital pass
    old = evaluate_over_time(model, fn, ["lsp-first"], "pcm", TIMES, repeats=1, periphery="io8")
    assert old.calibrated_on == "test" and old.timing.digital_s is None and old.timing.ratio is None
    assert "no clean digital pass" in old.format()
