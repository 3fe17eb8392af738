"""The C heap's policy for the processes weightprog owns (the command line, the local workers of
sweeps and studies): freed memory kept for reuse rather than handed back to the kernel.

glibc hands a freed block back to the kernel when it was mapped on its own (above a threshold that
starts at 128 KiB and follows the largest block freed) or when the free top of its heap exceeds a
trim threshold (twice that); the next tensor of that size then faults in each of its pages afresh,
in system time. A network pass allocates and frees tensors of tens of MB in every layer, and an
analogue pass more of them than a digital one: the issue's hidden CNN from the command line
(`benchmarks/cnn8_spec.py`, 10 analogue passes) took 1.1–1.6 M page faults and 3.4–4.5 s of
system time, against 0.31 M and 1.4–1.6 s with blocks up to 32 MiB served from the heap and its
top kept (benchmarks/RESULTS.md).

A setting of the whole process that cannot be undone (glibc's adaptive threshold does not come
back once set), so the library never calls it: the code that owns the process does.
"""

from __future__ import annotations

import ctypes
import functools
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
"""Blocks up to this size come from the heap (glibc's largest allowed value)."""
TRIM_THRESHOLD = (1 << 31) - 1
"""Free heap top kept before any is handed back (mallopt takes an int)."""


@functools.cache
def keep_freed_memory() -> bool:
    """Set the process's heap to keep freed memory (glibc on Linux; once per process). Returns
    whether the setting is in force: False elsewhere (another C library leaves it as it is)."""
    return sys.platform.startswith("linux") and _mallopt()


def _mallopt() -> bool:
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    # glibc returns 1 on success; musl's mallopt is a stub that returns 0
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
