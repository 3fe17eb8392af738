"""Adam as `torch.optim.Adam(params, lr)` computes it on CPU tensors, step for step, without
torch.optim: its `step()` imports `torch._dynamo` on first use, 1.5–3 s of CPU that the polishes
of `weightprog optimize` paid for a few hundred small steps (benchmarks/RESULTS.md, issue 26).
tests/test_adam.py checks that both give the same bits."""

from __future__ import annotations

from collections.abc import Sequence

import torch

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
"""torch.optim.Adam's defaults."""


class Adam:
    """torch.optim.Adam's single-tensor update with default betas and eps, no weight decay, no
    amsgrad: `zero_grad()`, a backward pass, then `step()`."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float):
        self.params, self.lr, self.steps = list(params), float(lr), 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        step = float(self.steps)  # torch keeps it in a float32 tensor and reads it back as a float
        bias_correction1 = 1 - BETA1 ** step
        bias_correction2_sqrt = (1 - BETA2 ** step) ** 0.5
        step_size = self.lr / bias_correction1
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - BETA1)
            v.mul_(BETA2).addcmul_(p.grad, p.grad, value=1 - BETA2)
            p.addcdiv_(m, (v.sqrt() / bias_correction2_sqrt).add_(EPS), value=-step_size)
