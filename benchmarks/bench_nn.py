"""Network evaluation over time vs digital evaluation of the same model, side by side.

    python benchmarks/bench_nn.py [--batch 64 256] [--repeats 2] [--threads 2]

For a ResNet-32-sized CNN (CIFAR-style, 3 stages × 5 basic blocks, 16/32/64 channels, 32×32
inputs) and a 2×200 LSTM language model (10k vocabulary), with random weights and inputs (timing
does not depend on them): the digital evaluation time, the time per (realisation, time point) of
`evaluate_over_time` with the PCM device and ideal periphery (programming amortised over the time
points, as in a real run), their ratio, and the device-state memory of one realisation.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from weightprog.baselines import baseline
from weightprog.cell import Cell
from weightprog.nn import ProgrammedModel, evaluate_over_time, find_analog_weights, mapping_report
from weightprog.timeunits import DEFAULT_TIMES_S
from weightprog.workloads.fmnist_resnet import ResNetCifar


class LSTMLM(nn.Module):
    def __init__(self, vocab: int = 10000, hidden: int = 200):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        return self.decoder(h)


def cnn_case(batch: int):
    torch.manual_seed(0)
    model = ResNetCifar(n=5, in_channels=3).eval()  # ResNet-32, CIFAR-sized inputs
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    @torch.no_grad()
    def evaluate_fn(m):
        return float((m(x).argmax(1) == y).float().mean())
    return model, evaluate_fn


def lstm_case(batch: int, steps: int = 35):
    torch.manual_seed(0)
    model = LSTMLM().eval()
    tokens = torch.randint(0, 10000, (batch, steps + 1))

    @torch.no_grad()
    def evaluate_fn(m):
        logits = m(tokens[:, :-1])
        return float(torch.exp(nn.functional.cross_entropy(logits.reshape(-1, 10000), tokens[:, 1:].reshape(-1))))
    return model, evaluate_fn


def best_of(fn, n: int = 3) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(name: str, case, batch: int, repeats: int, strategy) -> dict:
    model, evaluate_fn = case(batch)
    times = DEFAULT_TIMES_S
    points = repeats * len(times)
    evaluate_fn(model)  # warm-up
    # Side by side, alternating so that load from other processes hits both alike:
    # the digital evaluation, the full analog run, and the analog run with a no-op evaluation
    # (programming + reads + swaps only). Each analog run also evaluates once digitally (the FP
    # reference), which is taken out.
    digital, analog, overhead = [], [], []
    for _ in range(2):
        t = time.perf_counter()
        evaluate_fn(model)
        digital.append(time.perf_counter() - t)
        t = time.perf_counter()
        evaluate_over_time(model, evaluate_fn, [strategy], "pcm", times, repeats, seed=0)
        analog.append((time.perf_counter() - t - digital[-1]) / points)
        t = time.perf_counter()
        evaluate_over_time(model, lambda m: 0.0, [strategy], "pcm", times, repeats, seed=0)
        overhead.append((time.perf_counter() - t) / points)
    weights = find_analog_weights(model)
    state = ProgrammedModel(weights, strategy, "pcm").state_bytes
    report = mapping_report(model, weights)
    d, a, o = min(digital), min(analog), min(overhead)
    return {"model": name, "batch": batch, "analog_weights": report.analog_weights, "tiles": report.tiles,
            "digital_ms": 1e3 * d, "per_point_ms": 1e3 * a, "ratio": a / d, "overhead_ms": 1e3 * o,
            "ratio_from_overhead": (d + o) / d, "state_mib": state / 2 ** 20,
            "model_mib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2 ** 20}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--lstm-batch", type=int, nargs="+", default=[20, 80])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lstm-steps", type=int, default=35)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    strategy = baseline("lsp-first", Cell((1.0, 2.0)))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; PCM, lsp-first f=1,2, ideal periphery, "
          f"{len(DEFAULT_TIMES_S)} times × {args.repeats} realisations")
    print(f"{'model':<10}{'batch':>6}{'weights':>10}{'tiles':>6}{'digital ms':>12}{'per (r,t) ms':>14}"
          f"{'ratio':>7}{'overhead ms':>13}{'(d+o)/d':>9}{'state MiB':>11}{'model MiB':>11}")
    rows = [run("resnet32", cnn_case, b, args.repeats, strategy) for b in args.batch]
    rows += [run("lstm2x200", lstm_case, b, args.repeats, strategy) for b in args.lstm_batch]
    for r in rows:
        print(f"{r['model']:<10}{r['batch']:>6}{r['analog_weights']:>10,}{r['tiles']:>6}{r['digital_ms']:>12.1f}"
              f"{r['per_point_ms']:>14.1f}{r['ratio']:>7.2f}{r['overhead_ms']:>13.1f}{r['ratio_from_overhead']:>9.2f}"
              f"{r['state_mib']:>11.1f}"
              f"{r['model_mib']:>11.1f}")


if __name__ == "__main__":
    main()
