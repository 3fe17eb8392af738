"""Cross-check weightprog against IBM aihwkit 1.2.0: same physics, same network, same strategy.

Runs only where aihwkit is importable (docs/VALIDATION.md: scripts/build_aihwkit.sh builds it). It
writes results.json and report.md to --out and, with --doc, the tables of docs/VALIDATION.md
(scripts/crosscheck_tables.py renders them from results.json; tests/test_crosscheck.py checks the
doc against the committed results):

1. the converter's signature against the arguments `strategy.aihwkit.json` holds;
2. device-law moments of the reference PCM model at several target conductances, noise ×1 and ×4,
   with independent draws and with the same draws (identity);
3. a scikit-learn digits MLP, one pair, matched settings (per-tile normalisation and drift
   compensation against the programmed state, ideal periphery), noise ×1 and ×4;
4. strategies found by `weightprog optimize` — for the MLP (noise ×4) and for the built-in weight
   distribution (the README's main job, noise ×1) — each run on both sides: the optimum (in
   aihwkit through `weightprog.aihwkit_export.prepare`, weights mapped by ψ), what
   `strategy.aihwkit.json` holds (weightprog runs the strategy read back from that file), and
   lsp-first F=2. Before running, the script checks that both sides program the same conductances
   for the same weights (max |Δg|) and names what the plain export holds.

    python scripts/crosscheck_aihwkit.py [--out DIR] [--doc docs/VALIDATION.md] [--fast]

`--fast` (the part CI runs): fewer devices, realisations and epochs, short searches.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crosscheck_tables import render, splice  # noqa: E402
from weightprog.aihwkit_export import prepare, read_out, rpu_config  # noqa: E402
from weightprog.baselines import baseline  # noqa: E402
from weightprog.cell import Cell  # noqa: E402
from weightprog.devices import get_device  # noqa: E402
from weightprog.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from weightprog.hardware import Mapping  # noqa: E402
from weightprog.nn.evaluate import evaluate_over_time  # noqa: E402
from weightprog.sample import default_sample  # noqa: E402
from weightprog.search.run import hand_crafted  # noqa: E402
from weightprog.strategy import Strategy  # noqa: E402

CONVERTER_ARGS = ("f_lst", "g_lst", "g_max", "g_min", "invertibility_test")  # tests/test_strategy.py's
TARGETS_US = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 25.0)
MOMENT_TIMES_S = (1.0, 3600.0, 86400.0, 365 * 86400.0)
NET_TIMES_S = (1.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
TILE = 512
FAST = {"devices": 20_000, "repeats": 6, "epochs": 20, "optimize_budget": 20.0}


def load_aihwkit():
    """The aihwkit pieces used here, or None with the reason."""
    try:
        import aihwkit
        from aihwkit.inference.converter.conductance import (
            CustomPairConductanceConverter,
            SinglePairConductanceConverter,
        )
        from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
        from aihwkit.nn import AnalogLinear
        from aihwkit.nn.conversion import convert_to_analog
        from aihwkit.simulator.parameters.io import IOParameters
    except ImportError as exc:
        return None, str(exc)
    return {"version": getattr(aihwkit, "__version__", "?"), "CustomPair": CustomPairConductanceConverter,
            "SinglePair": SinglePairConductanceConverter, "PCM": PCMLikeNoiseModel, "Linear": AnalogLinear,
            "convert": convert_to_analog, "IO": IOParameters}, ""


def scaled_device(scale: float) -> str:
    return "pcm" if scale == 1.0 else f"pcm:programming={scale:g},read={scale:g}"


# --- 1, 2. converter and device law -----------------------------------------------------------
def signature(ak) -> dict:
    params = [p for p in inspect.signature(ak["CustomPair"].__init__).parameters if p != "self"]
    return {"params": params, "expected": list(CONVERTER_ARGS), "matches": tuple(params) == CONVERTER_ARGS}


def weightprog_moments(device: str, g_t: float, n: int, seed: int) -> dict:
    dev = get_device(device)
    gen = torch.Generator().manual_seed(seed)
    state = dev.program(torch.full((n,), g_t), generator=gen)
    return {"prog": state.g_prog, "nu": state.nu, **{t: dev.read(state, t, generator=gen) for t in MOMENT_TIMES_S}}


def aihwkit_moments(ak: dict, scale: float, g_t: float, n: int, seed: int) -> dict:
    torch.manual_seed(seed)  # aihwkit draws from torch's global generator, in the order weightprog does
    model = ak["PCM"](g_max=25.0, prog_noise_scale=scale, read_noise_scale=scale)
    g = torch.full((n,), g_t)
    g_prog = model.apply_programming_noise_to_conductance(g.clone())
    nu = model.generate_drift_coefficients(g.clone())
    return {"prog": g_prog, "nu": nu,
            **{t: model.apply_drift_noise_to_conductance(g_prog, nu, t) for t in MOMENT_TIMES_S}}


def moments(ak, scale: float, args) -> dict:
    """Per target: mean/std of g_prog and ν, std of g(t), mean of g(1y), both sides (independent
    draws); and the largest difference when both are fed the same draws."""
    rows, same = [], 0.0
    for i, g_t in enumerate(TARGETS_US):
        wp = weightprog_moments(scaled_device(scale), g_t, args.devices, args.seed + i)
        a = aihwkit_moments(ak, scale, g_t, args.devices, args.seed + i + 1_000_003)
        shared = aihwkit_moments(ak, scale, g_t, args.devices, args.seed + i)
        same = max(same, max(float((wp[k] - shared[k]).abs().max()) for k in wp))
        row = {"g_target": g_t}
        for side, d in (("wp", wp), ("ak", a)):
            for key in ("prog", "nu"):
                row[f"{key}_mean_{side}"] = float(d[key].double().mean())
                row[f"{key}_std_{side}"] = float(d[key].double().std())
            row.update({f"std_{t:g}_{side}": float(d[t].double().std()) for t in MOMENT_TIMES_S})
            row[f"mean_1y_{side}"] = float(d[MOMENT_TIMES_S[-1]].double().mean())
        rows.append(row)
    return {"device": scaled_device(scale), "scale": scale, "devices": args.devices, "rows": rows,
            "same_draws_max_abs_diff": same}


# --- 3. networks on both sides ----------------------------------------------------------------
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


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def weightprog_net(model, evaluate, strategy, device: str, reference: str, args) -> dict:
    mapping = Mapping(TILE, TILE, normalise="tile", compensation="tile", reference=reference)
    result = evaluate_over_time(copy.deepcopy(model), evaluate or (lambda _m: 0.0), strategy, device,
                                times=NET_TIMES_S, repeats=args.repeats, seed=args.seed, mapping=mapping)
    return {"accuracy": result.metrics[0].numpy() if evaluate else None, "nmse": result.weight_nmse[0].numpy()}


def analog_weights(ak, analog: nn.Module) -> list[torch.Tensor]:
    """Effective weights of every analog linear layer, measured as a chip would: one-hot inputs
    (perfect periphery, digital bias subtracted), so they include the drift compensation α."""
    out = []
    with torch.no_grad():
        for module in analog.modules():
            if isinstance(module, ak["Linear"]):
                eye = torch.eye(module.in_features)
                out.append((module(eye) - module(torch.zeros(1, module.in_features))).T)
    return out


def kept_state_model(ak, **kwargs):
    """aihwkit's PCM noise model, except that drift and read noise act on each device's own
    programmed conductance (aihwkit re-derives the conductances from the programmed weights at
    every drift step). Diagnostic only; aihwkit's own per-conductance laws; the device state
    travels in the list the tile hands back to `apply_drift_noise`."""

    class KeptState(ak["PCM"]):
        def apply_programming_noise(self, weights):
            targets, params = self.g_converter.convert_to_conductances(weights)
            g_prog = [self.apply_programming_noise_to_conductance(g) for g in targets]
            nu = [self.generate_drift_coefficients(g) for g in targets]
            return self.g_converter.convert_back_to_weights(g_prog, params), [(g_prog, nu, params)]

        def apply_drift_noise(self, weights, drift_noise_parameters, t_inference):
            g_prog, nu, params = drift_noise_parameters[0]
            g_t = [self.apply_drift_noise_to_conductance(g, n, t_inference) for g, n in zip(g_prog, nu)]
            return self.g_converter.convert_back_to_weights(g_t, params)

    return KeptState(**kwargs)


def aihwkit_net(ak, model, mapped, config, evaluate, args, kept_state: bool = False) -> dict:
    """`mapped` (the weights handed to aihwkit) converted with `config`, ideal periphery; accuracy
    and weight NMSE against `model`'s own weights at every time, per realisation."""
    config = copy.deepcopy(config)
    config.forward = ak["IO"](is_perfect=True)
    if kept_state:
        noise = config.noise_model
        config.noise_model = kept_state_model(ak, g_converter=noise.g_converter, g_max=noise.g_max,
                                              prog_noise_scale=noise.prog_noise_scale,
                                              read_noise_scale=noise.read_noise_scale)
    analog = ak["convert"](copy.deepcopy(mapped), config)
    analog.eval()
    targets = [m.weight.detach().double() for m in linears(model)]
    energy = sum(float(w.square().sum()) for w in targets)
    acc = np.zeros((args.repeats, len(NET_TIMES_S)))
    nmse, rescale = np.zeros_like(acc), []
    for r in range(args.repeats):
        torch.manual_seed(args.seed * 100_003 + r)
        analog.program_analog_weights()
        # aihwkit re-derives conductances from the programmed weights at every drift step, scaled by
        # their own max|w|: how much larger that is than the target's (every conductance shrinks by it)
        rescale += [float(t.programmed_weights.abs().max() / t.reference_combined_weights.abs().max())
                    for t in analog.analog_tiles()]
        for k, t in enumerate(NET_TIMES_S):
            analog.drift_analog_weights(t)
            acc[r, k] = evaluate(analog) if evaluate else 0.0
            nmse[r, k] = sum(float((w.double() - w0).square().sum())
                             for w, w0 in zip(analog_weights(ak, analog), targets)) / energy
    return {"accuracy": acc if evaluate else None, "nmse": nmse,
            **({} if kept_state else {"rescale": float(np.mean(rescale))})}


def summarise(columns: dict[str, dict]) -> dict:
    out = {}
    for name, c in columns.items():
        out[name] = {k: v for k, v in c.items() if k not in ("accuracy", "nmse")}
        for key in ("accuracy", "nmse"):
            if c.get(key) is not None:
                x = c[key]
                out[name][f"{key}_mean"] = x.mean(0).tolist()
                out[name][f"{key}_std"] = (x.std(0, ddof=1) if len(x) > 1 else 0 * x[0]).tolist()
        out[name]["nmse_last"] = c["nmse"][:, -1].tolist()  # per realisation (same seeds across strategies)
    return out


def mlp_single_pair(ak, model, evaluate, scale: float, args) -> dict:
    device = scaled_device(scale)
    config = rpu_config(ak["SinglePair"](g_max=25.0), device, TILE)
    columns = {"aihwkit": aihwkit_net(ak, model, model, config, evaluate, args),
               "aihwkit kept state": aihwkit_net(ak, model, model, config, evaluate, args, kept_state=True),
               "wp programmed": weightprog_net(model, evaluate, "single-pair", device, "programmed", args),
               "wp read": weightprog_net(model, evaluate, "single-pair", device, "read", args)}
    return {"device": device, "scale": scale, "repeats": args.repeats, "columns": summarise(columns)}


# --- 4. strategies from weightprog optimize on both sides --------------------------------------
def run_optimize(out: Path, device: str, args, weights: Path | None) -> Path:
    """`weightprog optimize` on the MLP's weights, or (no weights) the README's main job."""
    cmd = ["optimize", "--device", device, "--budget", f"{args.optimize_budget:g}", "--out", str(out)]
    if weights is not None:
        cmd += ["--weights", str(weights), "--normalise", "tensor", "--pairs", "2", "--f-max", str(args.f_max),
                "--times", ",".join(f"{t:g}" for t in NET_TIMES_S), "--rescore-blocks", "2"]
    print(f"running: weightprog {' '.join(cmd)}", file=sys.stderr)
    subprocess.run([sys.executable, "-c", "from weightprog.cli import main; main()", *cmd], check=True,
                   env={**os.environ, "WEIGHTPROG_COMPILE": os.environ.get("WEIGHTPROG_COMPILE", "0")})
    return out


def strategy_from_aihwkit(args: dict, name: str) -> Strategy:
    """The strategy aihwkit runs from converter arguments: the table's half w ≥ 0 on its uniform
    grid, read back at the table's maximum (β = max|W_hw|), as aihwkit does."""
    g = torch.tensor(args["g_lst"], dtype=torch.float64).T  # (points, 2P), w from −1 to +1
    half = g[g.shape[0] // 2:]
    f = torch.tensor(args["f_lst"], dtype=torch.float64)
    w_hw = ((g[:, 0::2] - g[:, 1::2]) * f).sum(1)
    return Strategy(torch.linspace(0, 1, half.shape[0], dtype=torch.float64), half, f, float(w_hw.abs().max()),
                    args.get("g_min", 0.0), args.get("g_max", 25.0), [name])


def table_gap(held: Strategy, other: Strategy) -> float:
    """max |Δ target| (µS) between a strategy read from a file and another, at the file's points."""
    if held.pairs != other.pairs:
        return float("inf")
    return float((held.conductances[0] - other.targets(held.grid)[0]).abs().max())


def programmed_gap(ak, config, model, mapped, strategy: Strategy) -> dict:
    """How far the targets aihwkit's converter gives the weights handed to it are from weightprog's
    targets for the model's own weights (one tile per layer here): max |Δg| (µS) and the share of
    weights whose devices are all within 0.1 µS — the same strategy on both sides."""
    converter, gaps = config.noise_model.g_converter, []
    for layer, handed in zip(linears(model), linears(mapped)):
        w = layer.weight.detach().double()
        g_ak, _ = converter.convert_to_conductances(handed.weight.detach().double())
        gaps.append((torch.stack(g_ak, -1) - strategy.targets(w / w.abs().max())[0]).abs().amax(-1).flatten())
    gap = torch.cat(gaps)
    return {"max_dg_us": float(gap.max()), "within_0.1us": float((gap <= 0.1).double().mean())}


def strategy_section(ak, model, evaluate, run: Path, device: str, args) -> dict:
    optimum = Strategy.load(run / "strategy.json")
    meta = json.loads((run / "strategy.json").read_text())["meta"].get("aihwkit", {})
    plain_args = json.loads((run / "strategy.aihwkit.json").read_text())
    held = strategy_from_aihwkit(plain_args, "strategy.aihwkit.json")
    known = {"optimum": optimum} | {f"{n} F={f:g}": s for (n, f), s in hand_crafted(2, get_device(device), 3).items()}
    gaps = {n: table_gap(held, s) for n, s in known.items()}
    lsp2 = baseline("lsp-first", Cell((1.0, 2.0)))
    runs: dict[str, dict] = {}
    columns: dict[str, dict] = {}
    for label, strategy in (("optimum", optimum), ("strategy.aihwkit.json", held), ("lsp-first F=2", lsp2)):
        if label == "strategy.aihwkit.json":  # the plain file, as a user loads it: weights unmapped
            mapped, config = model, rpu_config(ak["CustomPair"](**plain_args), device, TILE)
        else:
            mapped, config = prepare(model, strategy, device, TILE)
        runs[label] = {"psi_1": float(read_out(strategy).psi[-1]), "psi_moved": read_out(strategy).deviation,
                       "points": len(config.noise_model.g_converter.g_lst[0]),
                       **programmed_gap(ak, config, model, mapped, strategy)}
        columns[f"{label} aihwkit"] = aihwkit_net(ak, model, mapped, config, evaluate, args)
        columns[f"{label} aihwkit kept state"] = aihwkit_net(ak, model, mapped, config, evaluate, args, True)
        columns[f"{label} wp"] = weightprog_net(model, evaluate, strategy, device, "programmed", args)
    report = json.loads((run / "report.json").read_text())
    return {"device": device, "repeats": args.repeats, "run": str(run), "cell": optimum.significance[0].tolist(),
            "beta": float(optimum.beta[0]), "method": report.get("method"), "tnmse": report["tnmse"],
            "export_meta": {k: meta.get(k) for k in ("strategy", "note", "exact")}, "export_gaps": gaps,
            "sides": runs, "columns": summarise(columns)}


def builtin_layer() -> nn.Module:
    """The built-in distribution's sample (10,240 weights, 512 rows × 20 columns) as one layer."""
    layer = nn.Linear(512, 20, bias=False)
    with torch.no_grad():
        layer.weight.copy_(default_sample().u)
    return nn.Sequential(layer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200_000, help="devices per target conductance")
    parser.add_argument("--repeats", type=int, default=20, help="programming realisations per network setting")
    parser.add_argument("--epochs", type=int, default=60, help="MLP training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--f-max", type=int, default=3, help="weightprog optimize --f-max (MLP)")
    parser.add_argument("--strategy-scale", type=float, default=4.0, help="noise scale of the MLP's strategy")
    parser.add_argument("--optimize-budget", type=float, default=240.0, help="weightprog optimize --budget (s)")
    parser.add_argument("--parts", default="moments,mlp,strategy,builtin", help="which parts to run")
    parser.add_argument("--fast", action="store_true", help=f"CI's quick run: {FAST}")
    parser.add_argument("--out", default="runs/crosscheck_aihwkit", help="folder for optimize runs and results")
    parser.add_argument("--doc", help="rewrite the generated tables of this file (docs/VALIDATION.md)")
    args = parser.parse_args()
    if args.fast:
        vars(args).update(FAST)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if parts - {"moments", "mlp", "strategy", "builtin"}:
        parser.error("--parts: use moments, mlp, strategy, builtin")
    ak, why = load_aihwkit()
    if ak is None:
        print(f"error: aihwkit is not importable here ({why}). This cross-check needs IBM aihwkit 1.2.0, "
              f"a C++ build: bash scripts/build_aihwkit.sh (docs/VALIDATION.md).", file=sys.stderr)
        return 2
    if parts & {"mlp", "strategy"} and importlib.util.find_spec("sklearn") is None:
        print("error: the MLP parts need scikit-learn (its digits data set): pip install scikit-learn",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record: dict = {"command": " ".join(["python", "scripts/crosscheck_aihwkit.py"] + sys.argv[1:]),
                    "aihwkit": ak["version"], "torch": torch.__version__, "signature": signature(ak),
                    "settings": {k: v for k, v in vars(args).items() if k not in ("out", "doc")}}
    if "moments" in parts:
        record["moments"] = [moments(ak, s, args) for s in (1.0, 4.0)]
    if parts & {"mlp", "strategy"}:
        model, x_test, y_test = digits_mlp(args.seed, args.epochs)
        evaluate = accuracy_fn(x_test, y_test)
        record["mlp_model"] = {"digital_accuracy": evaluate(model), "test_images": len(x_test)}
        if "mlp" in parts:
            record["mlp"] = [mlp_single_pair(ak, model, evaluate, s, args) for s in (1.0, 4.0)]
        if "strategy" in parts:
            torch.save(model.state_dict(), out / "mlp.pt")
            device = scaled_device(args.strategy_scale)
            run = run_optimize(out / "optimize-mlp", device, args, out / "mlp.pt")
            record["strategy_mlp"] = strategy_section(ak, model, evaluate, run, device, args)
    if "builtin" in parts:
        run = run_optimize(out / "optimize-builtin", "pcm", args, None)
        record["strategy_builtin"] = strategy_section(ak, builtin_layer(), None, run, "pcm", args)
    record["wall_time_s"] = time.perf_counter() - start
    atomic_write_json(out / "results.json", record)
    blocks = render(record)
    atomic_write_text(out / "report.md", "\n\n".join(blocks.values()) + "\n")
    print("\n\n".join(blocks.values()))
    if args.doc:
        doc = Path(args.doc)
        atomic_write_text(doc, splice(doc.read_text(), blocks))
        atomic_write_json(doc.with_name("validation_results.json"), record)
    return 0 if record["signature"]["matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
