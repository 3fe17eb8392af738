"""The limit's read-out (issue 22): an oracle scale per crossbar column and time, against the
hardware's drift compensation."""

import pytest
import torch

from weightprog import baseline
from weightprog.cell import Cell
from weightprog.errors import WeightprogError
from weightprog.hardware import Mapping, ProgrammedTensor
from weightprog.nn.evaluate import evaluate_over_time
from weightprog.nn.limit import oracle_read, oracle_scales

TILE = Mapping(tile_rows=64, tile_cols=64)


def _toy(out: int = 5, inputs: int = 150, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and a read of them with a gain error per weight row and noise."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inputs, generator=gen)
    read = w * (1 + 0.1 * torch.randn(out, 1, generator=gen)) + 0.2 * torch.randn(out, inputs, generator=gen)
    return w, read


def test_oracle_scale_is_each_columns_least_squares_scale():
    """150 inputs on 64-row tiles: 3 tiles of 50 rows, each output's part on each its own column."""
    w, read = _toy()
    a = oracle_scales(read, w, TILE)
    ratio = oracle_scales(read, w, TILE, unbiased=True)
    assert a.shape == (5, 3) and a.dtype == torch.float64
    scaled, held = oracle_read(read, w, TILE), oracle_read(read, w, TILE, unbiased=True)
    for o in range(5):
        for j in range(3):
            x, y = read[o, 50 * j:50 * (j + 1)].double(), w[o, 50 * j:50 * (j + 1)].double()
            best = float(x @ y / (x @ x))
            assert abs(float(a[o, j]) - best) < 1e-9
            errors = [float((s * x - y).square().sum()) for s in (best, 0.99 * best, 1.01 * best)]
            assert errors[0] <= min(errors[1:])  # least squares: a minimum
            assert torch.allclose(scaled[o, 50 * j:50 * (j + 1)].double(), best * x, atol=1e-5)
            # the ratio form: the column's realised gain is one (⟨w, a·ŵ⟩ = ⟨w, w⟩), no shrinkage
            assert abs(float(ratio[o, j]) - float(y @ y / (x @ y))) < 1e-9
            assert abs(float(held[o, 50 * j:50 * (j + 1)].double() @ y) / float(y @ y) - 1) < 1e-5
    assert oracle_read(read, w, TILE).shape == read.shape and oracle_read(read, w, TILE).dtype == read.dtype


def test_oracle_takes_conv_kernels_and_a_dead_column():
    """Conv kernels are flattened as the crossbar sees them; a column read as nothing gets 0."""
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(4, 3, 3, 3, generator=gen)
    read = 1.1 * w
    assert torch.allclose(oracle_read(read, w, TILE), w, atol=1e-5)
    assert torch.allclose(oracle_read(read, w, TILE, unbiased=True), w, atol=1e-5)
    read[2] = 0.0
    assert float(oracle_scales(read, w, TILE)[2, 0]) == 0.0 and float(oracle_scales(read, w, TILE, True)[2, 0]) == 0.0


def test_oracle_beats_the_hardware_compensation_on_weight_error():
    """The same devices read with the chip's per-column compensation (calibration read) and with
    the oracle: per column, least squares is never worse, and either oracle is better overall."""
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(96, 200, generator=gen) * torch.rand(96, 1, generator=gen)
    strategy = baseline("lsp-first", Cell((1.0, 2.0)), 0.0, 25.0)
    reads = {}
    for unit in ("column", "none"):
        programmed = ProgrammedTensor(w, strategy, "pcm", Mapping(64, 64, compensation=unit),
                                      torch.Generator().manual_seed(3))
        reads[unit] = programmed.read(3.15e7, torch.Generator().manual_seed(4))
    chip = reads["column"]

    def column_errors(x: torch.Tensor) -> torch.Tensor:
        return (x - w).double().square().view(96, 4, 50).sum(-1)  # 200 inputs: 4 tiles of 50 rows
    for unbiased in (False, True):
        oracle = oracle_read(reads["none"], w, TILE, unbiased)
        if not unbiased:
            assert (column_errors(oracle) <= column_errors(chip) * (1 + 1e-6)).all()
        assert float(column_errors(oracle).sum()) < float(column_errors(chip).sum())


def test_limit_chosen_takes_the_better_limit_on_held_out_data():
    """`limit-chosen` scores `limit` and `limit-mse` on `validate` and takes the better at each time:
    on a metric that is minus the weight error, `limit-mse` (least squares, read by least squares)
    everywhere, and its test row is that limit's own (same seeds). Without `validate`: refused."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(128, 64, bias=False)
    original = layer.weight.detach().clone()

    def metric(m: torch.nn.Module) -> float:
        return -float((m.weight.detach() - original).square().sum())
    spec = {"model": layer, "evaluate": metric, "validate": metric}
    times = (1.0, 3.1536e7)
    res = evaluate_over_time(spec, strategies=["limit-chosen", "limit", "limit-mse"], device="pcm", times_s=times,
                             repeats=2, significance="1,2")
    assert res.strategies == ["limit-chosen", "limit", "limit-mse"]
    assert torch.equal(res.metrics[0], res.metrics[2]) and not torch.equal(res.metrics[0], res.metrics[1])
    record = res.limit
    assert record is not None and record["name"] == "limit-chosen" and record["unbiased"] is False
    assert [p["unbiased"] for p in record["per_time"]] == [False, False]
    assert [row["time_s"] for row in record["held_out"]] == list(times)
    assert all(row["diff"] < 0 for row in record["held_out"])  # limit − limit-mse on validate
    with pytest.raises(WeightprogError, match="validate"):
        evaluate_over_time({"model": layer, "evaluate": metric}, strategies=["limit-chosen"], device="pcm",
                           times_s=times[:1], repeats=1, significance="1,2")


def test_gain_scan_steps_beyond_an_end_only_while_the_best_is_there():
    from weightprog.nn.limit import GAIN_RANGE, best_gains, next_gains

    means = {0.96: [3.0, 1.0], 0.98: [2.0, 2.0], 1.0: [1.0, 3.0], 1.02: [0.0, 2.5]}  # higher is better
    assert best_gains((1.0, 2.0), means, True) == {1.0: 0.96, 2.0: 1.0}
    assert next_gains(means, True) == [0.94]  # the best at 1 s is the lowest gain tried
    assert next_gains(means, False) == [0.94, 1.04]  # lower is better: 1.02 best at 1 s, 0.96 at 2 s
    assert next_gains({1.0: [1.0], 1.02: [1.0]}, True) == [0.98]  # a tie: the gain nearest 1
    low = {round(GAIN_RANGE[0] + 0.02 * k, 6): [-k] for k in range(3)}
    assert next_gains(low, True) == []  # at the range's end


def test_limit_chosen_takes_the_read_out_gain_the_held_out_metric_prefers():
    """A network whose metric is best with every weight read at 0.9 of its value (as PTB's is with
    weights read a few % small): `limit-chosen` steps its gain down from the start to 0.9 on
    `validate`, records the scan, and its test row beats `limit-mse` read at gain 1."""
    from weightprog.nn.limit import GAIN_START

    torch.manual_seed(0)
    layer = torch.nn.Linear(128, 64, bias=False)
    target = 0.9 * layer.weight.detach().clone()

    def metric(m: torch.nn.Module) -> float:
        return -float((m.weight.detach() - target).square().sum())
    spec = {"model": layer, "evaluate": metric, "validate": metric}
    res = evaluate_over_time(spec, strategies=["limit-chosen", "limit-mse"], device="pcm", times_s=(1.0, 86400.0),
                             repeats=2, significance="1,2")
    record = res.limit
    assert [p["gain"] for p in record["per_time"]] == [0.9, 0.9]
    tried = [row["gain"] for row in record["gain_scan"]]
    assert tried == sorted(tried) and set(GAIN_START) <= set(tried) and min(tried) == pytest.approx(0.88)
    assert bool((res.metrics[0] > res.metrics[1]).all())


def test_oracle_read_takes_a_gain():
    w, read = _toy()
    assert torch.allclose(oracle_read(read, w, gain=0.95), 0.95 * oracle_read(read, w))


def test_the_gain_scan_takes_gain_one_from_the_mapping_choice():
    """Gain 1 is not scored twice: the scan's entry for it is the mapping choice's own held-out
    means, and equals scoring the chosen limit at gain 1 afresh on the same draws."""
    from weightprog.devices import get_device
    from weightprog.nn.discover import find_analog_weights
    from weightprog.nn.evaluate import LIMIT_CHOICE_REPEATS, choose_limit
    from weightprog.nn.limit import compute_limit, deployed_values
    from weightprog.nn.periphery import get_periphery
    from weightprog.nn.spec import ModelSpec

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 5))
    x, y = torch.randn(100, 32), torch.randint(0, 5, (100,))

    def metric(m: torch.nn.Module) -> float:
        return -float(torch.nn.functional.cross_entropy(m(x), y).detach())
    spec = ModelSpec.of({"model": net, "evaluate": metric, "validate": metric})
    dev, times, peri = get_device("pcm"), (1.0, 3.1536e7), get_periphery("chip-8bit")
    values = deployed_values(find_analog_weights(net), Mapping())
    unbiased, mse = (compute_limit(values, dev, times, unbiased=u) for u in (True, False))
    chosen = choose_limit(spec, unbiased, mse, dev, times, 0, Mapping(), peri)
    at_one = next(row["means"] for row in chosen.gain_scan if row["gain"] == 1.0)
    again = evaluate_over_time(spec, strategies=[chosen.with_gain(1.0)], device=dev, times_s=times,
                               repeats=LIMIT_CHOICE_REPEATS, seed=0, periphery=peri, split="validate")
    assert again.metrics[0].mean(0).tolist() == at_one
