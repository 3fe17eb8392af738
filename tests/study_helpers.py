"""A tiny stand-in workload for the study's tests (`tiny`), and a context that makes the study use it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from weightprog.study import StudySettings
from weightprog.workloads.common import Workload

POOL = 600
"""Test items the tiny workload has; it scores the first 96 unless given an eval size."""


def tiny(name, variant="fp", eval_size=None):
    """A small classifier on random items (the first 96, or `eval_size` of 600), per-example
    correctness; HWA = FP perturbed."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x, xv = torch.randn(96, 8), torch.randn(64, 8)
    with torch.no_grad():
        if eval_size is not None:  # more items drawn after those the defaults use, so those stay as they were
            x = torch.cat([x, torch.randn(POOL - 96, 8)])[:eval_size]
        y, yv = model(x).argmax(1), model(xv).argmax(1)
        if variant == "hwa":
            model[0].weight.add_(0.05 * torch.randn(32, 8))

    def correct(m, a=x, b=y):
        return (m(a).argmax(1) == b).float()
    meta = {"metric": "accuracy", "higher_is_better": True, "eval_size": len(y), "available": POOL,
            "checkpoint": {"sha256": variant},
            "loss_fn": lambda m: torch.nn.functional.cross_entropy(m(x), y)}
    return Workload(model, lambda m: float(correct(m).mean()), meta, correct,
                    lambda m: correct(m, xv, yv), lambda m: model(xv))


@contextlib.contextmanager
def tiny_workloads() -> Iterator[None]:
    """The study runs `tiny` for the workload named `tiny` (in this process: inline engine)."""
    import weightprog.workloads as workloads
    from weightprog.study import jobs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "_workload", tiny)
        mp.setattr(workloads, "WORKLOADS", workloads.WORKLOADS + ("tiny",))
        yield


def tiny_settings(**kw) -> StudySettings:
    """A study of `tiny` on pcm small enough for the default test run."""
    base = dict(workloads=("tiny",), devices=("pcm",), variants=("fp", "hwa"), times_s=(1.0, 86400.0), repeats=4,
                block=2, eval_size={}, max_generations=1, popsize=2, f_max=1, sample_size=512, polish_steps=0,
                network_repeats=1, periphery="ideal", beside=())
    return StudySettings(**{**base, **kw})
