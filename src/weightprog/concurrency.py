"""Independent parts of one run on a few threads, with the results and the progress they would have
one after the other (`in_order`): `optimize`'s searches (one per F) and its bounds. torch and numpy
let go of the GIL inside their operations, so parts that run eager torch kernels on one torch
thread each use as many cores as there are threads; each part computes exactly what it computes
alone (nothing is shared but read-only inputs), so the numbers do not depend on the thread count.
`beside_fork` runs two parts that only write files in two processes (a run's figures: matplotlib
holds the GIL while it draws, so threads would take turns). Light on purpose: no torch here."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, CancelledError, ThreadPoolExecutor, wait
from typing import Generic, TypeVar, cast

from .progress import Event, ProgressCallback

T = TypeVar("T")

Part = Callable[[ProgressCallback | None], T]
"""A part of a run: called with the progress callback its events go to."""


def quiet(fn: Callable[..., T], *args: object) -> Part[T]:
    """`fn(*args)` as a part that sends no progress."""
    return lambda _progress: fn(*args)


class Once(Generic[T]):
    """A value computed on first use, once, by whichever thread asks first (the others wait): work
    two parts share without either having to come first."""

    def __init__(self, compute: Callable[[], T]):
        self._compute: Callable[[], T] | None = compute
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._compute is not None:
                self._value, self._compute = self._compute(), None
        return cast(T, self._value)


class Stopped(Exception):
    """Raised in a part's progress callback when the run stops (Ctrl-C, or another part failed)."""


class _InOrder:
    """The parts' progress passed on in part order: a part's events as they come once every part
    before it is done, buffered until then; `Stopped` raised in a part once the run stops."""

    def __init__(self, progress: ProgressCallback | None, parts: int):
        self.progress, self.parts = progress, parts
        self.lock = threading.Lock()
        self.waiting: list[list[Event]] = [[] for _ in range(parts)]
        self.done = [False] * parts
        self.current = 0  # the first part not yet done: its events pass straight on
        self.stop = threading.Event()

    def callback(self, part: int) -> ProgressCallback:
        def receive(event: Event) -> None:
            if self.stop.is_set():
                raise Stopped
            with self.lock:
                if part != self.current:
                    self.waiting[part].append(event)
                elif self.progress is not None:
                    self.progress(event)
        return receive

    def finished(self, part: int) -> None:
        with self.lock:
            self.done[part] = True
            while self.current < self.parts and self.done[self.current]:
                self.current += 1
                if self.current < self.parts and not self.stop.is_set():  # stopped: the rest unsaid, as on one thread
                    for event in self.waiting[self.current]:
                        if self.progress is not None:
                            self.progress(event)
                    self.waiting[self.current].clear()


def in_order(parts: Sequence[Part[T]], workers: int, progress: ProgressCallback | None = None) -> list[T]:
    """Run the parts on up to `workers` threads (one after the other for 1); their results in order.

    Parameters
    ----------
    parts
        Each is called with its progress callback (None where `progress` is None and workers is 1).
    workers
        Threads.
    progress
        Receives the parts' events in part order, as if they had run one after the other.

    Returns
    -------
    list
        The parts' results, in order.

    Raises
    ------
    Exception
        The first failure in part order, once every running part has stopped (at its next progress
        event) or ended; on Ctrl-C the same, then KeyboardInterrupt.
    """
    if workers <= 1 or len(parts) <= 1:
        return [part(progress) for part in parts]
    order = _InOrder(progress, len(parts))

    def run(i: int) -> T:
        try:
            return parts[i](order.callback(i))
        except BaseException:
            order.stop.set()  # before `finished`: the parts after this one are not heard from
            raise
        finally:
            order.finished(i)

    pool = ThreadPoolExecutor(min(workers, len(parts)), thread_name_prefix="weightprog-part")
    futures = [pool.submit(run, i) for i in range(len(parts))]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:  # a failure or Ctrl-C: the running parts stop at their next event, the others never start
        if not all(f.done() and f.exception() is None for f in futures):
            order.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    for f in futures:
        try:
            f.result()
        except (Stopped, CancelledError):
            continue  # stopped because another part failed
    return [f.result() for f in futures]


def preload(*modules: str) -> threading.Thread:
    """Import `modules` on a thread of their own (join it before using the module, or before a fork):
    a run whose cores are busy in torch's operations imports its figure code beside them, where
    the import would otherwise wait for the search and then hold up the figures."""
    thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in modules], name="preload",
                              daemon=True)
    thread.start()
    return thread


def beside_fork(child: Callable[[], object], parent: Callable[[], object]) -> None:
    """`child` in a forked copy of this process while this one runs `parent`; returns once both are
    done. For parts whose results are files (nothing comes back but success or the child's error):
    two figures drawn at once use both cores, where two threads would take turns on the GIL. Where
    the system has no fork, one after the other.

    Raises
    ------
    RuntimeError
        The child failed: its exception, in one line (after `parent` ran and the child ended).
    Exception
        What `parent` raised (after the child ended).
    """
    if not hasattr(os, "fork"):
        child()
        parent()
        return
    for stream in (sys.stdout, sys.stderr):  # else the child's copy of a buffer is written twice
        stream.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, say how it went on the pipe, leave without the parent's exit handlers
        os.close(read_end)
        status = 0
        try:
            child()
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent, which raises
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode(errors="replace")[:4000])
            status = 1
        finally:
            sys.stderr.flush()  # a warning the child printed
            os._exit(status)
    os.close(write_end)
    try:
        parent()
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(message or f"forked part ended with status {status}")
