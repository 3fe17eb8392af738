"""Test-wide settings: no torch.compile in short runs (tests that check the fused path ask for
it explicitly with compile=True)."""

import os

os.environ.setdefault("WEIGHTPROG_COMPILE", "0")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread for every test: tiny tensors run fastest on one, and on a shared 2-core
    machine OpenMP threads that spin-wait for each other make such tests ~10x slower. Restored
    after each test (a test that wants more sets them itself). Modules that still name it
    (`pytest.mark.usefixtures("one_thread")`) get the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
