"""torch's thread count for a block of work (`torch_threads`), for the code that owns it: the command
line and the workers of sweeps and studies. The library itself never sets it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SEARCH_THREADS = 1
"""Threads of a search: the expected model's small chunks run fastest on one, and its float32 sums
depend on the count (the numbers the docs quote are one-thread numbers)."""

SEARCH_WORKERS = 2
"""Threads for the independent parts of `optimize` (its searches with the limits per F; its polish
with the pointwise tables): each runs on one torch thread (`SEARCH_THREADS`), so the numbers are
those of one thread, and two of them use two cores (the GIL is let go inside torch's operations)."""

FIGURE_THREADS = 1
"""torch threads for a run's figures: their simulations (one programming of the search sample per
strategy shown) are small, and a second thread's synchronisation costs more than it saves (on a
busy machine, seconds)."""


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's thread count set to `n` for the block (None: left as it is), then restored."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
