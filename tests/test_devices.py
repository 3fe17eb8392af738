"""Device laws (docs/MODEL.md §2, §3): sample moments match the formulas within sample-size tolerances."""

import math

import pytest
import torch

from weightprog.devices import get_device, load_tabulated
from weightprog.errors import WeightprogError

N = 200_000
TARGETS = [0.5, 3.0, 8.0, 15.0, 24.0]  # µS


def pcm_sigma(g, g_max=25.0):
    r = g / g_max
    return (0.26348 + 1.9650 * r - 1.1731 * r * r) * g_max / 25


def pcm_nu(g, g_max=25.0):
    lr = math.log(max(g / g_max, 1e-7))
    return min(max(-0.0155 * lr + 0.0244, 0.049), 0.1), min(max(-0.0125 * lr - 0.0059, 0.008), 0.045)


def clipped_normal(m, s):
    """Mean and std of max(0, m + s·Z)."""
    a = m / s
    phi, cdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(a / math.sqrt(2)))
    mean = m * cdf + s * phi
    second = (m * m + s * s) * cdf + m * s * phi
    return mean, math.sqrt(second - mean * mean)


def folded_normal(m, s):
    """Mean and std of |m + s·Z|."""
    mean = s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * math.erf(m / (s * math.sqrt(2)))
    return mean, math.sqrt(m * m + s * s - mean * mean)


def pcm_q(g, g_max=25.0):
    return min(0.0088 / max((g / g_max) ** 0.65, 1e-3), 0.2)


@pytest.mark.parametrize("g", TARGETS)
def test_pcm_programming_and_drift_moments(g):
    dev = get_device("pcm")
    gen = torch.Generator().manual_seed(1)
    state = dev.program(torch.full((N,), g, dtype=torch.float64), generator=gen)
    mean, std = clipped_normal(g, pcm_sigma(g))
    assert state.g_prog.mean().item() == pytest.approx(mean, abs=5 * std / math.sqrt(N))
    assert state.g_prog.std().item() == pytest.approx(std, rel=5 * math.sqrt(2 / N))
    nu_mean, nu_std = folded_normal(*pcm_nu(g))
    assert state.nu.mean().item() == pytest.approx(nu_mean, abs=5 * nu_std / math.sqrt(N))
    assert state.nu.std().item() == pytest.approx(nu_std, rel=5 * math.sqrt(2 / N))


@pytest.mark.parametrize("t", [1.0, 3600.0, 3.15e7])
@pytest.mark.parametrize("g", TARGETS)
def test_pcm_read_noise_and_drift_at_times(g, t):
    """With programming fixed, read g(t) has mean g·drift and std g·drift·Q·c(t)."""
    dev = get_device("pcm")
    gen = torch.Generator().manual_seed(2)
    target = torch.full((N,), g, dtype=torch.float64)
    state = dev.program(target, z_prog=torch.zeros(N, dtype=torch.float64),
                        z_nu=torch.zeros(N, dtype=torch.float64))
    read = dev.read(state, t, generator=gen)
    mu, _ = pcm_nu(g)
    g_d = g * ((t + 20) / 20) ** (-mu)
    mean, std = clipped_normal(g_d, g_d * pcm_q(g) * math.sqrt(math.log((t + 20 + 2.5e-7) / 5e-7)))
    assert read.mean().item() == pytest.approx(mean, abs=5 * std / math.sqrt(N))
    assert read.std().item() == pytest.approx(std, rel=5 * math.sqrt(2 / N))


def test_read_broadcasts_over_times_and_draws_are_shared():
    dev = get_device("pcm")
    target = torch.tensor([[1.0, 10.0], [20.0, 5.0]])
    z = torch.randn(2, 2, generator=torch.Generator().manual_seed(0))
    s1 = dev.program(target, z, z)
    s2 = dev.program(target, z, z)
    assert torch.equal(s1.g_prog, s2.g_prog)
    times = torch.tensor([1.0, 60.0, 3600.0])
    zr = torch.zeros(3, 2, 2)
    reads = dev.read(s1, times, z_read=zr)
    assert reads.shape == (3, 2, 2)
    expected = s1.g_prog * torch.exp(-s1.nu * torch.log((times[:, None, None] + 20) / 20))
    torch.testing.assert_close(reads, expected)


def test_ideal_device_is_exact():
    dev = get_device("ideal")
    g = torch.rand(1000) * 25
    state = dev.program(g)
    assert torch.equal(dev.read(state, 3.15e7), g)


def test_lowdrift_drift_table():
    dev = get_device("pcm-lowdrift")
    g = torch.tensor([0.0, 5.0, 10.0, 20.0, 30.0])
    torch.testing.assert_close(dev.drift_mean(g), torch.tensor([0.08, 0.065, 0.05, 0.04, 0.03]))
    torch.testing.assert_close(dev.drift_std(g), torch.tensor([0.03, 0.025, 0.02, 0.015, 0.01]))
    assert dev.g_max == 30.0


GOOD = """kind: tabulated
name: my-rram
g_min: 0.0
g_max: 25.0
t0: 20.0
t_read: 2.5e-7
programming: {g: [0, 12.5, 25], std: [0.3, 0.7, 1.0]}
drift: {g: [0, 12.5, 25], nu_mean: [0.09, 0.05, 0.05], nu_std: [0.04, 0.01, 0.01]}
read_noise: {g: [0, 12.5, 25], q: [0.2, 0.02, 0.01]}
stuck: {p_zero: 0.01, p_gmax: 0.02}
"""


def test_tabulated_device_curves_and_stuck(tmp_path):
    path = tmp_path / "dev.yaml"
    path.write_text(GOOD)
    dev = get_device(str(path))
    assert dev.name == "my-rram"
    torch.testing.assert_close(dev.programming_std(torch.tensor([6.25, 30.0])), torch.tensor([0.5, 1.0]))
    state = dev.program(torch.full((100_000,), 10.0), generator=torch.Generator().manual_seed(0))
    at_zero = (state.g_prog == 0).float().mean().item()
    at_max = (state.g_prog == 25).float().mean().item()
    assert at_zero == pytest.approx(0.01, abs=5 * math.sqrt(0.01 / 100_000))
    assert at_max == pytest.approx(0.02, abs=5 * math.sqrt(0.02 / 100_000))


@pytest.mark.parametrize("old,new,field", [
    ("std: [0.3, 0.7, 1.0]", "std: [0.3, -0.7, 1.0]", "programming.std[1]"),
    ("drift: {g: [0, 12.5, 25]", "drift: {g: [0, 25, 12.5]", "drift.g"),
    ("read_noise: {g: [0, 12.5, 25]", "read_noise: {g: [0, 12.5, 40]", "read_noise.g"),
    ("q: [0.2, 0.02, 0.01]", "q: [0.2, .nan, 0.01]", "read_noise.q[1]"),
    ("g_max: 25.0\n", "", "g_max"),
    ("read_noise: {g: [0, 12.5, 25], q: [0.2, 0.02, 0.01]}\n", "", "read_noise"),
    ("nu_std: [0.04, 0.01, 0.01]", "nu_std: [0.04, 0.01]", "drift.nu_std"),
])
def test_bad_device_files_name_the_field(tmp_path, old, new, field):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(WeightprogError, match=field.replace("[", r"\[").replace("]", r"\]")) as info:
        load_tabulated(path)
    assert str(path) in str(info.value)


def test_unknown_device_name():
    with pytest.raises(WeightprogError, match="unknown device"):
        get_device("nonsense")
