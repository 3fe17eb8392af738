"""Progress bars for a search, counting to where it will stop: convergence, the generation limit
or the time budget, whichever is nearest.

Library functions never print; they call a `progress` callback with an `Event` (weightprog/progress.py,
one protocol for every entry point). `SearchBars` is the callback the CLI passes, and what a Python
caller passes to see the same bars:

    with wp.SearchBars(settings) as bars:
        run = wp.optimize(sample, values, "pcm", settings, progress=bars)

The same object serves `compare_devices` (one bar per device and cell) and `optimize_per_layer`.

A search stops when the population's loss spread (std / |mean|) falls to `tol`, so the bar's
convergence share is how far the spread has come, on a log scale, from its value after the first
generation to `tol`; a bar counting generations alone would stall near 25 % when the search
converges after a quarter of its generation limit.

Where stderr is not a terminal (a log file, CI), the bars are plain lines at a modest rate: each
search's start (or where it resumes), every 10 %, its end, and the re-score as its own phase.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import click
from tqdm import tqdm

from ..progress import Event


def search_fraction(progress, first_spread: float, tol: float, max_generations: int,
                    budget_s: float | None = None) -> float:
    """How far a search is towards its nearest stop, in [0, 1]."""
    parts = [progress.generation / max(max_generations, 1)]
    if budget_s:
        parts.append(progress.elapsed_s / budget_s)
    spread = progress.convergence
    if tol > 0 and first_spread > tol and math.isfinite(spread):
        parts.append(math.log(first_spread / max(spread, 1e-300)) / math.log(first_spread / tol))
    return min(1.0, max(0.0, *parts))


class CountBar:
    """A counted loop's events (`evaluate_over_time`'s realisations × times) as a tqdm bar named
    `what`, drawn from the first event, cleared when full or at `close()` (or the end of a `with`)."""

    def __init__(self, what: str):
        self.what = what
        self.bar: Any = None

    def __call__(self, event: Event) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm as auto_tqdm
            self.bar = auto_tqdm(total=event.total, desc=self.what, unit="eval", leave=False)
        self.bar.update(event.done - self.bar.n)
        if event.done >= event.total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> CountBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CountLines(CountBar):
    """A counted loop's events as lines saying `what` every 10 % and at its end (a log, CI)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.said = 0

    def __call__(self, event: Event) -> None:
        tenth = 10 * event.done // max(event.total, 1)
        if tenth > self.said:
            self.said = tenth
            click.echo(f"{self.what}: {10 * tenth} % ({event.done}/{event.total})", err=True)


def count_progress(what: str, lines: bool | None = None) -> CountBar:
    """`progress` of a counted loop (`evaluate_over_time`): a bar (`CountBar`) on a terminal;
    elsewhere lines (`CountLines`)."""
    return CountLines(what) if (not sys.stderr.isatty() if lines is None else lines) else CountBar(what)


class SearchBars:
    """One tqdm bar per search (percent towards its stop, with generation, best loss, spread);
    the previous bar closes when the next search starts; the last one at `close()` (or the end of
    a `with` block). `phase(name)` closes the searches' bars and starts one for what follows (the
    re-score). Plain lines instead where stderr is not a terminal (`lines`)."""

    def __init__(self, settings=None, *, tol: float = 1e-3, max_generations: int = 200,
                 budget_s: float | None = None, prefix: str = "search", lines: bool | None = None):
        if settings is not None:
            tol, max_generations, budget_s = settings.tol, settings.max_generations, settings.budget_s
        self.tol, self.max_generations, self.budget_s, self.prefix = tol, max_generations, budget_s, prefix
        self.lines = not sys.stderr.isatty() if lines is None else lines
        self.bars: dict[str, tqdm] = {}
        self.first: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.said: dict[str, int] = {}  # lines: the last tenth said of each search
        self.last: tuple[str, Any] | None = None  # lines: the open search and its last Progress
        self.open_phase: tuple[str, float] | None = None

    def __call__(self, event: Event) -> None:
        """A `search` event (from `optimize`, `compare_devices`, `optimize_per_layer`: its path names
        the bar) or a `phase` event (`phase`); other events are not a search's."""
        if event.task == "phase":
            self.phase(": ".join(event.path))
        elif event.task == "search":
            self._search(event.label, event.detail)

    def _search(self, label: str, p: Any) -> None:
        """A search's `Progress` `p`, on the bar named `label`."""
        if label not in self.done:
            self.close()
            self.first[label], self.done[label], self.said[label] = p.convergence, 0.0, 0
            if getattr(p, "resumed", False):
                self._say(f"{self.prefix} {label}: resuming from generation {p.generation} (its checkpoint)")
            elif self.lines:
                self._say(f"{self.prefix} {label}: started")
            if not self.lines:
                self.bars[label] = tqdm(total=100, desc=f"{self.prefix} {label}", unit="%", leave=True,
                                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        # the share of a search's time may only grow (the spread is not monotone)
        budget = self.budget_s  # the CLI shares a budget among searches; the bound is then conservative
        self.done[label] = max(self.done[label],
                               search_fraction(p, self.first[label], self.tol, self.max_generations, budget))
        state = f"gen {p.generation}, best {p.best:.4e}, spread {p.convergence:.1e}/{self.tol:g}"
        if self.lines:
            self.last = (label, p)
            tenth = int(10 * self.done[label])
            if 0 < tenth < 10 and tenth > self.said[label]:
                self.said[label] = tenth
                self._say(f"{self.prefix} {label}: {10 * tenth} % ({state})")
            return
        bar = self.bars[label]
        bar.n = round(100 * self.done[label], 1)
        bar.set_postfix_str(state)

    def phase(self, name: str) -> None:
        """What follows the searches (`name`, e.g. the re-score), as its own line or bar."""
        self.close()
        if self.lines:
            self._say(f"{name}: started")
            self.open_phase = (name, time.perf_counter())
        else:  # a bar that counts seconds: the searches' bars stay at 100 %, this one moves on
            self.bars[name] = tqdm(desc=name, bar_format="{desc}: {elapsed}", leave=True)

    def _say(self, line: str) -> None:
        if self.lines:
            click.echo(line, err=True)
        else:
            tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        if self.last is not None:
            label, p = self.last
            self._say(f"{self.prefix} {label}: done at gen {p.generation}, best {p.best:.4e}, "
                      f"{p.elapsed_s:.1f} s")
            self.last = None
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        if self.open_phase is not None:
            name, start = self.open_phase
            self._say(f"{name}: done in {time.perf_counter() - start:.1f} s")
            self.open_phase = None

    def __enter__(self) -> SearchBars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
