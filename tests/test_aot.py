"""The fused kernels built ahead of time (`weightprog.aot`): the compiled values, one build per
signature whatever the sizes, and a fresh process that runs them without dynamo."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from weightprog import aot
from weightprog.nn import fused


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh kernel cache for this test, and the process's loaded kernels forgotten after it."""
    monkeypatch.setattr(aot, "_process", aot._Process())
    aot.use_kernel_cache(tmp_path)
    return tmp_path


def _inputs(rows: int, cols: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bias = torch.nn.Parameter(torch.randn(cols, generator=g))  # a layer's bias: requires grad
    return (torch.randn(rows, cols, generator=g) * 2, torch.tensor(1234, dtype=torch.int32),
            torch.rand(cols, generator=g) * 0.1, torch.rand(cols, generator=g) + 1, 127,
            torch.rand(rows, 1, generator=g), bias)


def test_a_built_kernel_gives_the_eager_values_for_any_size_and_loads_without_dynamo(cache, monkeypatch):
    with torch.no_grad():
        for rows, cols in ((300, 40), (70, 900)):  # one build serves both
            args = _inputs(rows, cols)
            got = aot.run(fused._adc, args)
            want = fused._adc(*args)
            assert torch.equal(got[0], want[0]) and int(got[1]) == int(want[1]) > 0
    assert len(list(cache.glob("*.so"))) == 1
    # a call like one before runs its library without working out the key again (a pass makes hundreds)
    keys = []
    original = aot._Call.key
    monkeypatch.setattr(aot._Call, "key", lambda self, *a: keys.append(1) or original(self, *a))
    with torch.no_grad():
        again = aot.run(fused._adc, args)
        other = aot.run(fused._adc, _inputs(33, 40))  # new sizes: the key, then the same library
    assert torch.equal(again[0], got[0]) and other is not None and keys == [1]
    index = json.loads(next(cache.glob("adc-*.json")).read_text())
    assert len(index) == 1 and all(isinstance(d, str) for d in index[0]["spec"][0])  # both sizes free
    # a fresh process loads it: no dynamo imported, the same values
    code = textwrap.dedent(f"""
        import sys, torch
        from weightprog import aot
        from weightprog.nn import fused
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from test_aot import _inputs
        aot.use_kernel_cache({str(cache)!r})
        torch.set_num_threads({torch.get_num_threads()})
        args = _inputs(50, 60, seed=1)
        with torch.no_grad():
            got = aot.run(fused._adc, args)
            want = fused._adc(*args)
        print(torch.equal(got[0], want[0]), int(got[1]) == int(want[1]), "torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "True", "False"], out.stderr


def test_a_failed_build_leaves_the_call_to_torch_compile(cache, monkeypatch):
    def refuse(*a, **kw):
        raise RuntimeError("cannot export")
    monkeypatch.setattr(torch.export, "export", refuse)
    with torch.no_grad(), pytest.warns(UserWarning, match="not run built ahead of time"):
        assert aot.run(fused._adc, _inputs(30, 40)) is None
    assert len(aot._process.failed) == 1 and not list(cache.glob("*.so"))


def test_a_damaged_library_leaves_the_call_to_torch_compile(cache, tmp_path_factory):
    """A library file that does not load (truncated by a full disk, say) is not a crash."""
    with torch.no_grad():
        args = _inputs(30, 40)
        assert aot.run(fused._adc, args) is not None
        damaged = tmp_path_factory.mktemp("damaged")  # another path: this process has the first one loaded
        for f in cache.iterdir():
            (damaged / f.name).write_bytes(b"not a library" if f.suffix == ".so" else f.read_bytes())
        aot.use_kernel_cache(damaged)
        aot._process.runners.clear()  # as in a fresh process: it loads from disk
        with pytest.warns(UserWarning, match="not run built ahead of time"):
            assert aot.run(fused._adc, args) is None


def test_calls_it_cannot_build_for_are_left_alone(cache):
    args = _inputs(30, 40)
    assert aot.run(fused._adc, (args[0][::2], *args[1:])) is None  # a layout with gaps
    assert aot.run(fused._adc, args) is None  # grad enabled and a tensor that requires it
    assert not list(cache.glob("*"))


def test_a_build_admits_sizes_by_its_spec():
    assert aot._matches([["s0", 4], ["s0"]], [[7, 4], [7]])
    assert not aot._matches([["s0", 4], ["s0"]], [[7, 2], [7]])  # a fixed size differs
    assert not aot._matches([["s0", 4], ["s0"]], [[7, 4], [8]])  # one symbol, two sizes
    assert not aot._matches([["s0"]], [[7, 4]])  # another rank



def test_a_size_the_export_fixed_is_kept_as_a_number():
    class Sym:  # a SymInt as the export leaves it: its text
        def __init__(self, text):
            self.text = text

        def __str__(self):
            return self.text
    assert aot._size(Sym("4")) == 4 and aot._size(Sym("s27")) == "s27" and aot._size(3) == 3


@pytest.mark.slow
def test_a_read_over_four_devices_and_one_over_two_are_two_builds(cache):
    """The fused read loops over a weight's devices, so the export fixes their count: a read of
    two-device weights must not run the four-device library."""
    g = torch.Generator().manual_seed(0)
    seed = torch.tensor(5, dtype=torch.int32)
    for devices in (4, 2, 4):
        n = 5000
        g_prog, nu, q = (torch.rand(n, devices, generator=g) * s for s in (20.0, 0.1, 0.05))
        factors, mask = torch.arange(devices, dtype=torch.float32) - 1.5, torch.ones(n)
        law = (torch.tensor(2.3), torch.tensor(1.1), seed)
        got = aot.run(fused._device_read, (g_prog, nu, q, factors, mask, *law))
        want = fused._whole_read(g_prog, nu, q, factors, mask, *law)  # equal to a few float32 ulps (log, cos)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    assert len(list(cache.glob("device_read-*.so"))) == 2


def _twice_and_none(x: torch.Tensor, scale: float):
    return x * scale, None, x.sum()


@pytest.mark.slow
def test_a_kernel_built_for_fixed_sizes_and_returning_none(cache):
    """`dynamic=False` (the recurrent blocks): every size built in, so another size is another
    build; a None among the outputs (a GRU block's cell state) comes back where it was."""
    for rows in (12, 20, 12):
        x = torch.randn(rows, 30)
        got = aot.run(_twice_and_none, (x, 3.0), dynamic=False)
        assert torch.equal(got[0], x * 3.0) and got[1] is None
        assert torch.allclose(got[2], x.sum())  # a sum in another order: round-off
    assert len(list(cache.glob("twice_and_none-*.so"))) == 2


@pytest.mark.slow
def test_a_channels_last_output_is_built_for_its_own_layout(cache):
    """ResNet-32's convolutions give channels-last outputs, whose flattened view (N, C, H·W) is dense
    in another order: built for that order, equal to the eager ADC, one build for two sizes."""
    seed = torch.tensor(7, dtype=torch.int32)
    for n, c, hw in ((20, 16, 14), (12, 16, 7)):
        y = torch.randn(n, c, hw, hw).contiguous(memory_format=torch.channels_last)
        bound, scale = torch.rand(c, 1, 1) + 2, torch.rand(n, 1, 1, 1) + 1
        with torch.no_grad():
            got = fused.adc(y, seed, bound / 127, bound, 8, scale)
        want = fused._adc(y, seed, bound / 127, bound, 127, scale)
        assert torch.equal(got[0], want[0]) and int(got[1]) == int(want[1])
    assert len(list(cache.glob("adc-*.so"))) == 1
