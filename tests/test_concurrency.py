"""Parts of a run on threads (`concurrency.in_order`): results and progress in part order, the
first failure raised and the other parts stopped; `optimize` on two threads is `optimize` on one;
two file-writing parts in two processes (`beside_fork`)."""

import os
import threading

import pytest
import torch

from weightprog.concurrency import Once, Stopped, beside_fork, in_order, quiet
from weightprog.progress import Event
from weightprog.sample import default_sample, load_distribution
from weightprog.search.run import OptimizeSettings, optimize


def test_results_and_events_in_part_order_though_the_second_part_ends_first():
    second_done = threading.Event()
    seen: list[tuple[str, int]] = []

    def first(progress):
        assert second_done.wait(10)  # the second part has sent all its events and ended
        for k in range(3):
            progress(Event("search", ("a",), k))
        return "a"

    def second(progress):
        for k in range(2):
            progress(Event("search", ("b",), k))
        second_done.set()
        return "b"

    assert in_order([first, second], 2, lambda e: seen.append((e.label, e.done))) == ["a", "b"]
    assert seen == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]


def test_one_worker_runs_in_turn_with_the_callers_callback():
    order: list[int] = []
    parts = [quiet(order.append, i) for i in range(3)]
    assert in_order(parts, 1) == [None, None, None] and order == [0, 1, 2]
    assert in_order([lambda progress: progress], 1, None) == [None]  # no callback wrapped around None


def test_a_failure_stops_the_running_parts_and_is_raised():
    stopped = threading.Event()

    def endless(progress):
        try:
            while True:
                progress(Event("search", ("x",)))
        except Stopped:
            stopped.set()
            raise

    def failing(progress):
        raise ValueError("part 2 failed")

    with pytest.raises(ValueError, match="part 2 failed"):
        in_order([endless, failing, quiet(lambda: None)], 2)
    assert stopped.is_set()


def test_after_a_failure_the_later_parts_are_not_heard_from():
    """As on one thread, where they would not have started: Ctrl-C in the first search shows no
    progress of the second, which ran alongside."""
    said = threading.Event()
    seen: list[str] = []

    def interrupted(progress):
        progress(Event("search", ("a",)))
        assert said.wait(10)
        raise KeyboardInterrupt

    def alongside(progress):
        progress(Event("search", ("b",)))
        said.set()
        return "b"

    with pytest.raises(KeyboardInterrupt):
        in_order([interrupted, alongside], 2, lambda e: seen.append(e.label))
    assert seen == ["a"]


def test_the_first_failure_in_part_order_is_raised():
    release = threading.Event()

    def late_failure(progress):
        assert release.wait(10)
        raise KeyError("first part")

    def early_failure(progress):
        release.set()
        raise ValueError("second part")

    with pytest.raises(KeyError, match="first part"):
        in_order([late_failure, early_failure], 2)


def test_optimize_on_two_threads_is_optimize_on_one():
    settings = OptimizeSettings(max_generations=4, popsize=4, rescore_blocks=1, compile=False, f_max=2,
                                polish_steps=3)
    sample, values = default_sample(size=1024), load_distribution()
    events: dict[int, list[tuple[str, int]]] = {}
    results = {}
    for workers in (1, 2):
        events[workers] = []
        results[workers] = optimize(sample, values, "pcm", settings, workers=workers,
                                    progress=lambda e, w=workers: events[w].append((e.label, e.done)))
    one, two = results[1], results[2]
    assert events[1] == events[2] and len({label for label, _ in events[2]}) == 3  # 2 searches, 1 phase
    assert {k: r.history for k, r in one.runs.items()} == {k: r.history for k, r in two.runs.items()}
    assert one.chosen == two.chosen and one.method == two.method
    assert torch.equal(one.strategy.conductances, two.strategy.conductances)
    assert torch.equal(one.final.per_column, two.final.per_column)
    assert {f: (b.bound, b.compensated) for f, b in one.bounds.items()} == \
        {f: (b.bound, b.compensated) for f, b in two.bounds.items()}


def test_once_computes_its_value_once_for_every_thread_that_asks():
    calls = []
    started = threading.Event()

    def compute():
        calls.append(1)
        started.set()
        return "value"

    once = Once(compute)
    results = in_order([quiet(once.get), quiet(lambda: started.wait(10) and once.get())], 2)
    assert results == ["value", "value"] and calls == [1]


def test_beside_fork_runs_the_child_in_another_process_and_waits_for_it(tmp_path):
    here = os.getpid()

    def child():
        (tmp_path / "child").write_text(str(os.getpid()))

    def parent():
        (tmp_path / "parent").write_text(str(os.getpid()))

    beside_fork(child, parent)
    assert int((tmp_path / "parent").read_text()) == here
    assert int((tmp_path / "child").read_text()) not in (here, 0)  # written before beside_fork returned


def test_beside_fork_raises_the_childs_error_after_the_parent_ran(tmp_path):
    def child():
        raise ValueError("no figure today")

    with pytest.raises(RuntimeError, match="ValueError: no figure today"):
        beside_fork(child, lambda: (tmp_path / "parent").write_text("ran"))
    assert (tmp_path / "parent").read_text() == "ran"


def test_beside_fork_without_fork_runs_both_in_turn(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "fork")
    order = []
    beside_fork(lambda: order.append(("child", os.getpid())), lambda: order.append(("parent", os.getpid())))
    assert order == [("child", os.getpid()), ("parent", os.getpid())]
