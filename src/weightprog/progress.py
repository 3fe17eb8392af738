"""One progress protocol: every long-running entry point takes `progress: Callable[[Event], None]`
(or None) and calls it with an `Event`.

The entry points and the events they send (`task`):

* `search`: `evolve` after each generation (and once where it resumes from a checkpoint), with
  the search's `Progress` as `detail`; `optimize` names each search (its cell label, `path`),
  `compare_devices` puts the device in front, `optimize_per_layer` names it by its layer.
* `phase`: what `optimize` does after its searches (the polish, bounds and re-score), once as it
  starts (`path` ends with its name; no count).
* `evaluate`: `evaluate_over_time` (and `select_on_network`): realisations × times done of all,
  once at the start (0) and after each.
* `advise`: `advise`, as each device variant's optimisation starts (`path`: the variant; also
  `run_flip_search`'s checks).
* `flipsearch`: `search_direction` (flipsearch.py) before each generation of the search over a
  device's property factors and once at its end (`path`: the direction).
* `sweep`: `run_sweep` (and `run_flip_map`), once at the start and after each finished or failed
  job, with the sweep's `SweepProgress` as `detail` (`path`: the job's id).
* `study`: `run_study`, after each finished or failed job (`path`: the job's id).

Library code never draws or prints progress; the command line's bars (`report/progress.py`) are
callbacks of this one form. Light on purpose: no torch, numpy or tqdm here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Event:
    """What a long-running call has done so far."""

    task: str
    """`search`, `phase`, `evaluate`, `advise`, `flipsearch`, `sweep` or `study` (see the module's docstring)."""
    path: tuple[str, ...] = ()
    """Which one, outermost first: `("pcm", "f=1,2")` for a compared device's search of cell
    f=1,2, `("polish, bounds and re-score",)` for a phase, `(job_id,)` for a sweep's job."""
    done: int = 0
    """How much is done: generations, realisations × times, optimisations started before this
    one, or jobs finished (done or failed)."""
    total: int = 0
    """Of how much (a search's generation limit: it may stop sooner, converged or out of time)."""
    detail: Any = None
    """The task's own state: a search's `Progress`, a sweep's `SweepProgress`; else None."""

    @property
    def label(self) -> str:
        """`path` as one name (`"pcm f=1,2"`)."""
        return " ".join(self.path)

    def within(self, *names: str) -> Event:
        """The same event, named inside `names` (a device, a layer)."""
        return replace(self, path=(*names, *self.path))


ProgressCallback = Callable[[Event], None]
"""The one signature every entry point's `progress` has."""


def within(progress: ProgressCallback | None, *names: str) -> ProgressCallback | None:
    """`progress` receiving every event named inside `names` (None stays None)."""
    if progress is None:
        return None
    callback = progress
    return lambda event: callback(event.within(*names))
