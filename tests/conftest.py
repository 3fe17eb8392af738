"""Test-wide settings: no torch.compile in short runs (tests that check the fused path ask for
it explicitly with compile=True)."""

import os

os.environ.setdefault("WEIGHTPROG_COMPILE", "0")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and on a shared 2-core machine OpenMP threads that
    spin-wait for each other make such tests ~10x slower. Restored afterwards. A module takes it
    with `pytestmark = pytest.mark.usefixtures("one_thread")`, a test by naming it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
