"""Cross-check weightprog against IBM aihwkit 1.2.0: same physics, same network, side by side.

Runs only where aihwkit is importable (optional extra `aihwkit`; aihwkit 1.2.0 is a source
distribution that needs a C++ build — docs/VALIDATION.md says how). It prints, as markdown:

1. the converter check: `strategy.aihwkit.json` keys against the signature of aihwkit's
   `CustomPairConductanceConverter` (the one the unit tests hard-code);
2. device-law moments of the reference PCM model (programmed mean/std, ν mean/std, the read
   conductance's mean/std at several times) at several target conductances, noise ×1 and ×4;
3. a scikit-learn digits MLP (64-128-10): accuracy and weight NMSE vs time under both
   simulators with matched settings (one pair, per-tile normalisation, one drift-compensation
   factor per tile against the programmed state, ideal periphery), noise ×1 and ×4, and
   weightprog's default compensation reference (a noisy read) beside it, and aihwkit with each
   device's programmed state kept through drift (a diagnostic noise-model subclass) beside that;
4. a strategy found by `weightprog optimize` for that MLP (noise ×4 by default, where accuracy
   shows the error), loaded into aihwkit as `CustomPairConductanceConverter(**json.load(f))` and
   evaluated there and in weightprog, beside single-pair programming.

    python scripts/crosscheck_aihwkit.py [--devices 200000] [--repeats 20] [--out DIR]

`--weightprog-only` prints weightprog's side alone (to check the script where aihwkit is missing).
Numbers are Monte-Carlo estimates: each table states its sample sizes; the differences that matter
are those beyond their standard errors.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from weightprog.devices import get_device
from weightprog.fileio import atomic_write_json, atomic_write_text
from weightprog.hardware import Mapping
from weightprog.nn.evaluate import evaluate_over_time
from weightprog.strategy import Strategy
from weightprog.timeunits import format_time

# the constructor arguments tests/test_strategy.py hard-codes (aihwkit is no test dependency)
CONVERTER_ARGS = ("f_lst", "g_lst", "g_max", "g_min", "invertibility_test")
TARGETS_US = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 25.0)
MOMENT_TIMES_S = (1.0, 3600.0, 86400.0, 365 * 86400.0)
NET_TIMES_S = (1.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
TILE = 512


def load_aihwkit():
    """The aihwkit pieces used here, or None with the reason."""
    try:
        import aihwkit
        from aihwkit.inference.compensation.drift import GlobalDriftCompensation
        from aihwkit.inference.converter.conductance import (
            CustomPairConductanceConverter,
            SinglePairConductanceConverter,
        )
        from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
        from aihwkit.nn.conversion import convert_to_analog
        from aihwkit.simulator.configs import InferenceRPUConfig
        from aihwkit.simulator.parameters.io import IOParameters
    except ImportError as exc:
        return None, str(exc)
    return {"version": getattr(aihwkit, "__version__", "?"), "GDC": GlobalDriftCompensation,
            "CustomPair": CustomPairConductanceConverter, "SinglePair": SinglePairConductanceConverter,
            "PCM": PCMLikeNoiseModel, "convert": convert_to_analog, "RPUConfig": InferenceRPUConfig,
            "IO": IOParameters}, ""


def pct(a: float, b: float) -> str:
    return f"{100.0 * (a / b - 1.0):+.1f} %" if b else "—"


# --- 2. device-law moments ------------------------------------------------------------------
def weightprog_moments(device: str, g_t: float, n: int, seed: int) -> dict:
    dev = get_device(device)
    gen = torch.Generator().manual_seed(seed)
    state = dev.program(torch.full((n,), g_t), generator=gen)
    out = {"prog": state.g_prog, "nu": state.nu}
    for t in MOMENT_TIMES_S:
        out[t] = dev.read(state, t, generator=gen)
    return out


def aihwkit_moments(ak: dict, scale: float, g_t: float, n: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = ak["PCM"](g_max=25.0, prog_noise_scale=scale, read_noise_scale=scale)
    g = torch.full((n,), g_t)
    g_prog = model.apply_programming_noise_to_conductance(g.clone())
    nu = model.generate_drift_coefficients(g.clone())
    out = {"prog": g_prog, "nu": nu}
    for t in MOMENT_TIMES_S:
        out[t] = model.apply_drift_noise_to_conductance(g_prog, nu, t)
    return out


def moments_section(ak, args) -> tuple[list[str], list[dict]]:
    lines, records = [], []
    for scale in (1.0, 4.0):
        device = scaled_device(scale)
        lines += [f"\n### {device} vs aihwkit PCMLikeNoiseModel(prog_noise_scale={scale:g}, "
                  f"read_noise_scale={scale:g}), {args.devices:,} devices per target\n"]
        head = ["g_T µS", "g_prog mean wp / ak", "g_prog std wp / ak", "ν mean wp / ak", "ν std wp / ak"]
        head += [f"std g({format_time(t)}) wp / ak (Δ)" for t in MOMENT_TIMES_S] + ["mean g(1y) Δ"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        same_draws = 0.0
        for i, g_t in enumerate(TARGETS_US):
            wp = weightprog_moments(device, g_t, args.devices, args.seed + i)
            a = None
            if ak:  # independent draws for the moments; the same draws for the identity check
                a = aihwkit_moments(ak, scale, g_t, args.devices, args.seed + i + 1_000_003)
                shared = aihwkit_moments(ak, scale, g_t, args.devices, args.seed + i)
                same_draws = max(same_draws, max(float((wp[k] - shared[k]).abs().max()) for k in wp))
            rec = {"device": device, "scale": scale, "g_target": g_t}
            cells = [f"{g_t:g}"]
            for key, label in (("prog", "g_prog"), ("nu", "nu")):
                for stat in ("mean", "std"):
                    w = float(getattr(wp[key].double(), stat)())
                    rec[f"{label}_{stat}_wp"] = w
                    if a is None:
                        cells.append(f"{w:.4g}")
                    else:
                        k = float(getattr(a[key].double(), stat)())
                        rec[f"{label}_{stat}_ak"] = k
                        cells.append(f"{w:.4g} / {k:.4g}")
            for t in MOMENT_TIMES_S:
                w = float(wp[t].double().std())
                rec[f"std_{t:g}_wp"] = w
                if a is None:
                    cells.append(f"{w:.4g}")
                else:
                    k = float(a[t].double().std())
                    rec[f"std_{t:g}_ak"] = k
                    cells.append(f"{w:.4g} / {k:.4g} ({pct(w, k)})")
            t_last = MOMENT_TIMES_S[-1]
            w_mean = float(wp[t_last].double().mean())
            rec["mean_1y_wp"] = w_mean
            if a is None:
                cells.append(f"{w_mean:.4g}")
            else:
                k_mean = float(a[t_last].double().mean())
                rec["mean_1y_ak"] = k_mean
                cells.append(pct(w_mean, k_mean))
            lines.append("| " + " | ".join(cells) + " |")
            records.append(rec)
        lines.append(f"\nIndependent draws per simulator; relative standard error of a std from "
                     f"{args.devices:,} devices ≈ {100 / math.sqrt(2 * args.devices):.2f} % per simulator.")
        if ak:
            lines.append(f"Fed the same standard normals (both seeded alike; they consume torch's CPU "
                         f"generator in the same order), the two give the same g_prog, ν and g(t) for every "
                         f"device: max |difference| {same_draws:.3g} (µS or ν) over all targets and times.")
            records.append({"device": device, "same_draws_max_abs_diff": same_draws})
    return lines, records


# --- 3. the MLP ------------------------------------------------------------------------------
def digits_mlp(seed: int, epochs: int):
    """64-128-10 MLP on scikit-learn's digits (seeded 80/20 split): model and test tensors."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    train, test = order[:cut], order[cut:]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.split(train[torch.randperm(len(train))], 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    model.eval()
    return model, x[test], y[test]


def accuracy_fn(x_test, y_test):
    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return float((model(x_test).argmax(1) == y_test).double().mean())
    return evaluate


def weightprog_net(model, x_test, y_test, strategy, device: str, reference: str, args) -> dict:
    mapping = Mapping(TILE, TILE, normalise="tile", compensation="tile", reference=reference)
    result = evaluate_over_time(copy.deepcopy(model), accuracy_fn(x_test, y_test), strategy, device,
                                times=NET_TIMES_S, repeats=args.repeats, seed=args.seed, mapping=mapping)
    return {"accuracy": result.metrics[0].numpy(), "nmse": result.weight_nmse[0].numpy(),
            "digital": result.digital}


def analog_weights(analog: nn.Module) -> list[torch.Tensor]:
    """Effective weights of every analog linear layer, measured as a chip would: one-hot inputs
    (perfect periphery, digital bias subtracted), so they include the drift compensation α."""
    from aihwkit.nn import AnalogLinear

    out = []
    with torch.no_grad():
        for module in analog.modules():
            if isinstance(module, AnalogLinear):
                eye = torch.eye(module.in_features)
                out.append((module(eye) - module(torch.zeros(1, module.in_features))).T)
    return out


def kept_state_model(ak, **kwargs):
    """aihwkit's PCM noise model, except that drift and read noise act on each device's own
    programmed conductance. (aihwkit itself re-derives the conductances from the programmed
    weights at every drift step.) Diagnostic only: it isolates that one design difference. Uses
    aihwkit's own per-conductance laws; the device state travels in the list the tile hands back
    to `apply_drift_noise`."""

    class KeptState(ak["PCM"]):
        def apply_programming_noise(self, weights):
            targets, params = self.g_converter.convert_to_conductances(weights)
            g_prog, nu = [], []
            for g in targets:
                g_prog.append(self.apply_programming_noise_to_conductance(g))
                nu.append(self.generate_drift_coefficients(g))
            return self.g_converter.convert_back_to_weights(g_prog, params), [(g_prog, nu, params)]

        def apply_drift_noise(self, weights, drift_noise_parameters, t_inference):
            g_prog, nu, params = drift_noise_parameters[0]
            g_t = [self.apply_drift_noise_to_conductance(g, n, t_inference) for g, n in zip(g_prog, nu)]
            return self.g_converter.convert_back_to_weights(g_t, params)

    return KeptState(**kwargs)


def aihwkit_net(ak, model, x_test, y_test, converter, scale: float, args, kept_state: bool = False) -> dict:
    config = ak["RPUConfig"]()
    config.forward = ak["IO"](is_perfect=True)
    noise = dict(g_converter=converter, prog_noise_scale=scale, read_noise_scale=scale)
    config.noise_model = kept_state_model(ak, **noise) if kept_state else ak["PCM"](**noise)
    config.drift_compensation = ak["GDC"]()
    config.mapping.max_input_size = TILE
    config.mapping.max_output_size = TILE
    analog = ak["convert"](copy.deepcopy(model), config)
    analog.eval()
    evaluate = accuracy_fn(x_test, y_test)
    targets = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Linear)]
    energy = sum(float(w.double().square().sum()) for w in targets)
    acc = np.zeros((args.repeats, len(NET_TIMES_S)))
    nmse = np.zeros_like(acc)
    rescale = []
    for r in range(args.repeats):
        torch.manual_seed(args.seed * 100_003 + r)
        analog.program_analog_weights()
        # aihwkit re-derives conductances from the programmed weights at every drift step, scaled
        # by their own max|w|: how much larger that is than the target's (conductances shrink by it)
        if not kept_state:
            rescale += [float(tile.programmed_weights.abs().max() / tile.reference_combined_weights.abs().max())
                        for tile in analog.analog_tiles()]
        for k, t in enumerate(NET_TIMES_S):
            analog.drift_analog_weights(t)
            acc[r, k] = evaluate(analog)
            err = sum(float((w.double() - w0.double()).square().sum())
                      for w, w0 in zip(analog_weights(analog), targets))
            nmse[r, k] = err / energy
    return {"accuracy": acc, "nmse": nmse, **({"rescale": float(np.mean(rescale))} if rescale else {})}


def mean_sd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), x.std(0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1:])


def net_table(title: str, columns: dict[str, dict], args) -> list[str]:
    """One row per time: accuracy (%) and weight NMSE, mean ± std over realisations, per column."""
    names = list(columns)
    head = ["time"] + [f"acc % {n}" for n in names] + [f"weight NMSE {n}" for n in names]
    lines = [f"\n### {title} ({args.repeats} realisations; ± is the std over realisations, the "
             f"standard error of a mean is std/√{args.repeats})\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    stats = {n: (mean_sd(c["accuracy"]), mean_sd(c["nmse"])) for n, c in columns.items()}
    for n, c in columns.items():
        if "rescale" in c:
            lines.insert(1, f"{n}: at each drift step the conductances are re-derived from the programmed "
                            f"weights, whose max|w| is {c['rescale']:.3f}× the target's (mean over tiles and "
                            f"realisations).\n")
    for k, t in enumerate(NET_TIMES_S):
        cells = [format_time(t)]
        cells += [f"{100 * stats[n][0][0][k]:.1f} ± {100 * stats[n][0][1][k]:.1f}" for n in names]
        cells += [f"{stats[n][1][0][k]:.4f} ± {stats[n][1][1][k]:.4f}" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_record(columns: dict[str, dict]) -> dict:
    return {n: {"accuracy_mean": mean_sd(c["accuracy"])[0].tolist(), "accuracy_std": mean_sd(c["accuracy"])[1].tolist(),
                "nmse_mean": mean_sd(c["nmse"])[0].tolist(), "nmse_std": mean_sd(c["nmse"])[1].tolist(),
                **({"rescale": c["rescale"]} if "rescale" in c else {})}
            for n, c in columns.items()}


def mlp_section(ak, model, x_test, y_test, args) -> tuple[list[str], dict]:
    lines, record = [], {}
    for scale in (1.0, 4.0):
        device = scaled_device(scale)
        columns = {}
        if ak:
            pair = ak["SinglePair"](g_max=25.0)
            columns["aihwkit"] = aihwkit_net(ak, model, x_test, y_test, pair, scale, args)
            columns["aihwkit kept state"] = aihwkit_net(ak, model, x_test, y_test, pair, scale, args, kept_state=True)
        columns["wp programmed"] = weightprog_net(model, x_test, y_test, "single-pair", device, "programmed", args)
        columns["wp read"] = weightprog_net(model, x_test, y_test, "single-pair", device, "read", args)
        lines += net_table(f"single pair, noise ×{scale:g} (weightprog device `{device}`)", columns, args)
        record[f"x{scale:g}"] = to_record(columns)
    return lines, record


# --- 4. an optimised strategy in aihwkit -----------------------------------------------------
def scaled_device(scale: float) -> str:
    return "pcm" if scale == 1.0 else f"pcm:programming={scale:g},read={scale:g}"


def run_optimize(model, out: Path, device: str, args) -> Path:
    """`weightprog optimize` on the MLP's weights (normalised per tensor = per tile here)."""
    weights = out / "mlp.pt"
    torch.save({k: v for k, v in model.state_dict().items()}, weights)
    times = ",".join(f"{t:g}" for t in NET_TIMES_S)
    cmd = [sys.executable, "-c", "from weightprog.cli import main; main()", "optimize",
           "--device", device, "--weights", str(weights), "--normalise", "tensor", "--pairs", "2",
           "--f-max", str(args.f_max),
           "--times", times, "--budget", str(args.optimize_budget), "--rescore-blocks", "2",
           "--out", str(out / "optimize")]
    print(f"running: {' '.join(cmd[3:])}", file=sys.stderr)
    subprocess.run(cmd, check=True, env={**os.environ, "WEIGHTPROG_COMPILE": os.environ.get("WEIGHTPROG_COMPILE", "0")})
    return out / "optimize"


def strategy_section(ak, model, x_test, y_test, out: Path, args) -> tuple[list[str], dict]:
    scale = args.strategy_scale
    device = scaled_device(scale)
    run = run_optimize(model, out, device, args)
    strategy = Strategy.load(run / "strategy.json")
    args_file = run / "strategy.aihwkit.json"
    converter_args = json.loads(args_file.read_text())
    cell = ",".join(f"{f:g}" for f in strategy.significance[0].tolist())
    lines = [f"\nStrategy: `{run / 'strategy.json'}`, optimised for `{device}` (cell f = {cell}, "
             f"β = {float(strategy.beta[0]):g} µS); "
             f"aihwkit: `CustomPairConductanceConverter(**json.load(open('{args_file.name}')))`."]
    columns = {}
    if ak:
        converter = ak["CustomPair"](**converter_args)
        columns["aihwkit optimised"] = aihwkit_net(ak, model, x_test, y_test, converter, scale, args)
        columns["aihwkit optimised kept state"] = aihwkit_net(ak, model, x_test, y_test, converter, scale, args,
                                                              kept_state=True)
        columns["aihwkit single pair"] = aihwkit_net(ak, model, x_test, y_test, ak["SinglePair"](g_max=25.0),
                                                     scale, args)
    columns["wp optimised"] = weightprog_net(model, x_test, y_test, strategy, device, "programmed", args)
    columns["wp single pair"] = weightprog_net(model, x_test, y_test, "single-pair", device, "programmed", args)
    lines += net_table(f"optimised (2 pairs) vs single pair, noise ×{scale:g}, compensation against the "
                       f"programmed state", columns, args)
    return lines, {"strategy": str(run / "strategy.json"), "device": device, "cell": cell, **to_record(columns)}


def signature_section(ak) -> tuple[list[str], bool]:
    params = [p for p in inspect.signature(ak["CustomPair"].__init__).parameters if p != "self"]
    same = tuple(params) == CONVERTER_ARGS
    lines = [f"aihwkit {ak['version']}: CustomPairConductanceConverter({', '.join(params)}) — "
             f"{'matches' if same else 'DIFFERS FROM'} the arguments tests/test_strategy.py hard-codes "
             f"({', '.join(CONVERTER_ARGS)})."]
    return lines, same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200_000, help="devices per target conductance")
    parser.add_argument("--repeats", type=int, default=20, help="programming realisations per network setting")
    parser.add_argument("--epochs", type=int, default=60, help="MLP training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--f-max", type=int, default=3, help="weightprog optimize --f-max")
    parser.add_argument("--strategy-scale", type=float, default=4.0,
                        help="noise scale (programming and read) the strategy is optimised and evaluated at")
    parser.add_argument("--optimize-budget", type=float, default=240.0, help="weightprog optimize --budget (s)")
    parser.add_argument("--parts", default="moments,mlp,strategy", help="which parts to run")
    parser.add_argument("--out", default="runs/crosscheck_aihwkit", help="folder for the optimize run and results.json")
    parser.add_argument("--weightprog-only", action="store_true", help="weightprog's side only (no aihwkit needed)")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"moments", "mlp", "strategy"}
    if unknown:
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))}; use moments, mlp, strategy")
    ak = None
    if not args.weightprog_only:
        ak, why = load_aihwkit()
        if ak is None:
            print(f"error: aihwkit is not importable here ({why}). This cross-check needs IBM aihwkit "
                  f"1.2.0: pip install -e '.[aihwkit]' builds it from source (C++: cmake, pybind11, a BLAS, "
                  f"torch headers; docs/VALIDATION.md). --weightprog-only prints weightprog's side alone.",
                  file=sys.stderr)
            return 2
    if parts & {"mlp", "strategy"} and importlib.util.find_spec("sklearn") is None:
        print("error: the MLP parts need scikit-learn (its digits data set): pip install scikit-learn, "
              "or --parts moments", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = [f"# weightprog vs aihwkit cross-check\n\n`{' '.join(['python'] + sys.argv)}`; torch "
              f"{torch.__version__}, aihwkit {ak['version'] if ak else '(not run)'}\n"]
    record: dict = {"argv": sys.argv, "aihwkit": ak["version"] if ak else None}
    ok = True
    if ak:
        lines, ok = signature_section(ak)
        report += ["## 1. Converter arguments\n"] + lines
    if "moments" in parts:
        lines, record["moments"] = moments_section(ak, args)
        report += ["\n## 2. Device-law moments (PCM, g_max 25 µS)"] + lines
    if parts & {"mlp", "strategy"}:
        model, x_test, y_test = digits_mlp(args.seed, args.epochs)
        digital = accuracy_fn(x_test, y_test)(model)
        report.append(f"\nMLP 64-128-10 on scikit-learn digits, {len(x_test)} test images, digital "
                      f"accuracy {100 * digital:.1f} %.")
        record["digital_accuracy"] = digital
        if "mlp" in parts:
            lines, record["mlp"] = mlp_section(ak, model, x_test, y_test, args)
            report += ["\n## 3. MLP, one pair, per-tile normalisation and compensation, ideal periphery"] + lines
        if "strategy" in parts:
            lines, record["strategy"] = strategy_section(ak, model, x_test, y_test, out, args)
            report += ["\n## 4. A weightprog-optimised strategy in aihwkit"] + lines
    report.append(f"\nwall time {time.perf_counter() - start:.0f} s")
    text = "\n".join(report)
    print(text)
    atomic_write_json(out / "results.json", record)
    atomic_write_text(out / "report.md", text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
