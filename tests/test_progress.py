"""One progress protocol (issue 25): every long-running entry point takes one callback,
`progress(Event)`, and calls it with the one event type."""

from __future__ import annotations

import textwrap

import pytest
import torch

from nn_helpers import tiny_entry
from weightprog.advise import advise
from weightprog.cell import Cell
from weightprog.compare import compare_devices
from weightprog.metric import TNMSE
from weightprog.nn import evaluate_over_time
from weightprog.nn.spec import ModelSpec
from weightprog.progress import Event, within
from weightprog.sample import default_sample, load_distribution
from weightprog.search import StrategySpace, evolve, make_grid
from weightprog.search.evolve import Progress
from weightprog.search.per_layer import optimize_per_layer
from weightprog.search.run import OptimizeSettings, optimize
from weightprog.select import NetworkSettings, select_on_network
from weightprog.sweep import SweepProgress, run_sweep

SAMPLE = default_sample(size=1024)
TIMES = (1.0, 3600.0)
TINY = OptimizeSettings(pairs=1, max_generations=2, popsize=3, rescore_blocks=1, compile=False, polish=False,
                        method="de", bound=False, times_s=TIMES)


class Events(list):
    """A callback of the one form that keeps what it is sent (a list: false while empty, so every
    entry point must ask `progress is not None`, not `if progress`)."""

    def __call__(self, event: Event) -> None:
        assert isinstance(event, Event), event
        self.append(event)

    def tasks(self) -> set[str]:
        return {e.task for e in self}


def _searches_are_whole(events: Events, max_generations: int = 2) -> None:
    for e in events:
        if e.task == "search":
            assert isinstance(e.detail, Progress) and e.done == e.detail.generation and e.total == max_generations


@pytest.fixture(scope="module")
def optimized():
    events = Events()
    result = optimize(SAMPLE, load_distribution(), "pcm", TINY, progress=events)
    return result, events


def test_the_event_and_naming_it():
    e = Event("search", ("f=1,2",), 3, 10)
    assert e.within("pcm").path == ("pcm", "f=1,2") and e.within("pcm").label == "pcm f=1,2"
    assert e.path == ("f=1,2",)  # frozen: naming makes a new event
    with pytest.raises(AttributeError):
        e.done = 4  # type: ignore[misc]
    assert within(None, "pcm") is None
    seen = Events()
    named = within(seen, "pcm")
    assert named is not None
    named(e)
    assert seen == [e.within("pcm")]


def test_evolve():
    events = Events()
    space = StrategySpace(make_grid(4, "quantile", SAMPLE.u), cell=Cell((1.0, 2.0)))
    evolve(TNMSE(SAMPLE, "pcm", times_s=TIMES, compile=False), space, popsize=3, max_generations=2, tol=0,
           progress=events)
    assert [(e.task, e.path, e.done, e.total) for e in events] == [("search", (), 1, 2), ("search", (), 2, 2)]
    _searches_are_whole(events)


def test_optimize(optimized):
    _, events = optimized
    assert [e.task for e in events] == ["search", "search", "phase"]
    assert {e.path for e in events[:2]} == {("f=1",)} and events[-1].path == ("polish, bounds and re-score",)
    _searches_are_whole(events)


def test_optimize_per_layer(optimized):
    result, _ = optimized
    events = Events()
    layers = [("a", torch.randn(32, 32, generator=torch.Generator().manual_seed(1)))]
    optimize_per_layer(layers, result.strategy, "pcm", TINY, progress=events)
    assert events.tasks() == {"search"} and {e.path for e in events} == {("a",)}  # named by the layer
    _searches_are_whole(events)


def test_compare_devices():
    events = Events()
    compare_devices(["pcm", "rram-hfox"], SAMPLE, load_distribution(), TINY, progress=events)
    assert [e.path[0] for e in events] == ["pcm"] * 3 + ["rram-hfox"] * 3  # each device's optimize, named
    assert [e.task for e in events] == ["search", "search", "phase"] * 2
    _searches_are_whole(events)


def test_advise():
    events = Events()
    advise(SAMPLE, load_distribution(), "pcm", TINY, 0.2, ("read",), progress=events)
    assert [(e.task, e.label, e.done, e.total) for e in events] == [("advise", "pcm", 0, 2),
                                                                    ("advise", "pcm:read=0.8", 1, 2)]


def test_evaluate_over_time_and_select_on_network(optimized):
    events = Events()
    evaluate_over_time(*tiny_entry(), ["lsp-first"], "pcm", TIMES, repeats=2, progress=events)
    assert [(e.task, e.done, e.total) for e in events] == [("evaluate", k, 4) for k in range(5)]
    with pytest.raises(TypeError, match="not a bool"):  # the old bar is the caller's now
        evaluate_over_time(*tiny_entry(), ["lsp-first"], "pcm", TIMES, repeats=1, progress=True)
    result, _ = optimized
    events = Events()
    select_on_network(ModelSpec.of(tiny_entry()), result, result.device, NetworkSettings(repeats=1, limit=False),
                      progress=events)
    assert events.tasks() == {"evaluate"} and events[0].done == 0 and events[-1].done == events[-1].total > 0


def test_run_sweep(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        kind: optimize
        devices: [pcm]
        cells: [1]
        grid_points: 3
        times: 1s,1h
        settings: {max_generations: 1, popsize: 2, rescore_blocks: 1, compile: false, polish: false,
                   sample_size: 1024}
    """))
    events = Events()
    result = run_sweep(path, tmp_path / "out", workers=0, progress=events, summary=False)
    assert events.tasks() == {"sweep"} and all(isinstance(e.detail, SweepProgress) for e in events)
    (job,) = result.done
    assert [(e.path, e.done, e.total, e.detail.event) for e in events] == [((), 0, 1, "start"),
                                                                          ((job,), 1, 1, "done")]
