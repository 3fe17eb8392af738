"""The torch thread count of a command's search, owned here (the library leaves it to its caller)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def search_threads() -> Iterator[None]:
    """One torch thread while a search runs, then the process's count again: the expected model's
    small chunks run fastest on one thread, and its float32 sums depend on the count (the numbers
    the docs quote are one-thread numbers)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
