"""Weight sample of a synthetic 110 M-weight model: time and peak memory, streamed vs pooled.

    python benchmarks/bench_large.py [--threads 2] [--no-reference]

The model: 15 BERT-base encoder blocks (d = 768, FF 3072: q, k, v, o, ff1, ff2 linears, layer
norms) plus a 768×768 pooler and a 768×4222 head: 110,000,640 analog weights (float32, 440 MB);
its layer norms stay digital. Each measurement runs in a fresh child process so that its peak
memory is its own:

* streamed: `largescale.sample_large(model)` (10,240-weight search sample, 2^20 values for
  re-scoring), the path for large models;
* pooled (reference): `sample.sample_from_module(model)`, which pools every normalised weight.

Memory, measured three ways: the process's peak RSS (`resource.getrusage` ru_maxrss, a true
high-water mark) minus its RSS before the model existed; the highest RSS seen by a thread polling
/proc/self/statm every 2 ms during the sampling alone; and tracemalloc's peak during the sampling,
which sees Python and numpy allocations but not torch's own allocator (reported for
completeness, not as the total). The ratio that counts is (peak RSS − RSS before the model) / the
model's own weight memory: target ≤ 1.5×, and ≤ 30 s for the sampling.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import threading
import time

PAGE = None


def rss_bytes() -> int:
    global PAGE
    import os
    if PAGE is None:
        PAGE = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def build_model():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d=768, ff=3072):
            super().__init__()
            self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
            self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    class Synthetic(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(15))
            self.pooler = nn.Linear(768, 768)
            self.head = nn.Linear(768, 4222)

    with torch.device("meta"):  # no init pass: allocate once, then fill in place
        model = Synthetic()
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    return model


def child(mode: str, threads: int) -> dict:
    import tracemalloc

    import torch

    import weightprog.largescale as largescale
    from weightprog.sample import analog_tensors, sample_from_module

    torch.set_num_threads(threads)
    rss_before_model = rss_bytes()
    model = build_model()
    analog = sum(t.numel() for _, t in analog_tensors(dict(model.named_parameters())))
    model_bytes = analog * 4
    rss_model = rss_bytes()
    peak_before = peak_rss_bytes()
    polled = [rss_model]
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            polled.append(rss_bytes())
            time.sleep(0.002)

    watcher = threading.Thread(target=poll, daemon=True)
    tracemalloc.start()
    watcher.start()
    start = time.perf_counter()
    if mode == "streamed":
        streamed = largescale.sample_large(model, size=10_240, rows=512, seed=0)
        sample, values = streamed
    else:
        sample = sample_from_module(model, size=10_240, rows=512, seed=0)
        values = None
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = peak_rss_bytes()
    return {"mode": mode, "analog_weights": analog, "model_bytes": model_bytes, "seconds": seconds,
            "rss_before_model": rss_before_model, "rss_with_model": rss_model,
            "peak_rss_before_sampling": peak_before, "peak_rss": peak, "polled_peak_during_sampling": max(polled),
            "tracemalloc_peak": traced_peak, "sample": list(sample.u.shape),
            "values": None if values is None else values.numel(),
            "ratio_peak_to_model": (peak - rss_before_model) / model_bytes,
            "extra_over_model_bytes": max(peak, max(polled)) - rss_model}


def run_child(mode: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true", help="Skip the pooled reference (needs ~3 GB).")
    parser.add_argument("--child", choices=["streamed", "pooled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads)))
        return
    import torch

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    rows = [run_child("streamed", args.threads)]
    if not args.no_reference:
        rows.append(run_child("pooled", args.threads))
    mib = 2 ** 20
    m = rows[0]
    print(f"synthetic model: {m['analog_weights']:,} analog weights, {m['model_bytes'] / mib:.0f} MiB of weights")
    print(f"{'path':<10}{'time s':>8}{'peak RSS - before model MiB':>29}{'÷ model':>9}{'extra over model MiB':>22}"
          f"{'tracemalloc peak MiB':>22}")
    for r in rows:
        print(f"{r['mode']:<10}{r['seconds']:>8.2f}{(r['peak_rss'] - r['rss_before_model']) / mib:>29.0f}"
              f"{r['ratio_peak_to_model']:>9.2f}{r['extra_over_model_bytes'] / mib:>22.0f}"
              f"{r['tracemalloc_peak'] / mib:>22.1f}")
    s = rows[0]
    ok = s["seconds"] <= 30 and s["ratio_peak_to_model"] <= 1.5
    print(f"streamed: {s['seconds']:.2f} s (target ≤ 30 s), {s['ratio_peak_to_model']:.2f}× the model's weight "
          f"memory (target ≤ 1.5×): {'met' if ok else 'NOT met'}")
    if len(rows) > 1:
        p = rows[1]
        print(f"pooled reference: {p['seconds'] / s['seconds']:.1f}× the time, "
              f"{p['extra_over_model_bytes'] / max(s['extra_over_model_bytes'], 1):.0f}× the extra memory")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
