"""weightprog.adam.Adam takes the same steps as torch.optim.Adam, to the bit (the polishes' results
must not move when it replaces torch's, which imports torch._dynamo on its first step)."""

import torch

from weightprog.adam import Adam


def test_same_bits_as_torch_adam():
    gen = torch.Generator().manual_seed(0)
    for dtype, lr in ((torch.float64, 0.01), (torch.float32, 0.02)):
        start = [torch.randn(7, 3, generator=gen, dtype=dtype), torch.randn(2, generator=gen, dtype=dtype)]
        ours = [p.clone().requires_grad_(True) for p in start]
        theirs = [p.clone().requires_grad_(True) for p in start]
        mine, torch_opt = Adam(ours, lr=lr), torch.optim.Adam(theirs, lr=lr)

        def loss(ps):  # not quadratic: the steps differ in size and sign
            return (torch.sin(3 * ps[0]).sum() * ps[1].exp().sum()) ** 2

        for _ in range(60):
            for opt, ps in ((mine, ours), (torch_opt, theirs)):
                opt.zero_grad()
                loss(ps).backward()
                opt.step()
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b)


def test_a_parameter_without_gradient_is_left_alone():
    x, y = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = Adam([x, y], lr=0.1)
    (2 * x).sum().backward()
    opt.step()
    assert torch.equal(y, torch.ones(2)) and not torch.equal(x, torch.ones(2))
