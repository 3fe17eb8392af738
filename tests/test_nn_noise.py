"""The periphery's counter-based output noise: its moments, independence, and the same values on
every path (eager, fused kernel), from the run's generator alone."""

import math

import pytest
import torch

from weightprog.nn import noise

pytestmark = pytest.mark.usefixtures("one_thread")


def _draw(n=1 << 20, seed=12345):
    return noise.like(torch.empty(n), torch.tensor(seed, dtype=torch.int32)).double()


def test_moments_are_those_of_a_four_uniform_sum():
    z = _draw()
    n = z.numel()
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert float(z.var()) == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    kurtosis = float(((z - z.mean()) ** 4).mean() / z.var() ** 2)
    assert kurtosis == pytest.approx(3 - 1.2 / 4, abs=0.02)  # Irwin–Hall n = 4: 2.7, a Gaussian's 3
    assert float(z.abs().max()) <= 510 * noise._SCALE + 1e-6  # bounded at ±3.46 σ


def test_neighbours_and_seeds_are_uncorrelated():
    a, b = _draw(seed=1), _draw(seed=2)
    tol = 5 / math.sqrt(a.numel())
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < tol
    assert abs(float(torch.corrcoef(torch.stack([a[1:], a[:-1]]))[0, 1])) < tol


def test_compiled_equals_eager_and_the_generator_decides():
    y = torch.empty(4, 3, 5)
    seed = noise.seed(torch.Generator().manual_seed(7), y.device)
    assert seed.dtype == torch.int32 and seed.dim() == 0
    assert torch.equal(noise.like(y, seed), torch.compile(noise.like)(y, seed))
    again = noise.seed(torch.Generator().manual_seed(7), y.device)
    assert torch.equal(noise.like(y, seed), noise.like(y, again))
    assert noise.like(y, seed).shape == y.shape and noise.like(y.double(), seed).dtype == torch.float64


def test_seeds_in_one_draw_are_the_seeds_drawn_one_by_one():
    """A recurrent block draws its steps' seeds at once: the same values, in order, as a seed per step."""
    one, many = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    cpu = torch.device("cpu")
    apart = torch.stack([noise.seed(one, cpu) for _ in range(5)])
    assert torch.equal(noise.seeds(many, cpu, (5,)), apart)
    assert torch.equal(noise.seed(one, cpu), noise.seed(many, cpu))  # and the streams go on alike
