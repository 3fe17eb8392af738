"""report.html: one self-contained page per output folder, built only from the files the run wrote.

Every command that writes an output folder (optimize, evaluate, compare-devices, device fit,
study, sweep) ends by calling `write_report`; `weightprog report DIR` calls it again on a finished
or interrupted folder. The page holds everything inline — CSS, figures as embedded PNG (the
command's own figures) or SVG (drawn here from the JSON: device curves, an interrupted search's
progress) — so it opens from disk or a mail attachment with no network and no script.

Order of a page: the question the run answered (one line), the headline result, the inputs
(weights, device with its curves, cell, times, seed, version, wall time), the figures, the full
tables, and the exact command that reproduces the run. Every number is read from the run's
record (`weightprog.records`) and only formatted here; headline numbers carry `data-key` (a JSON
pointer into the file named by `data-file`) and `data-value` (the full-precision value), so a
test can check the page against the files.

Each kind of folder has its page in its own module (optimize_page, evaluate_page, compare_page,
fit_page, sweep_page, study_page, advise_html); this one picks the page and writes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from .. import runfolder
from ..errors import WeightprogError
from ..fileio import atomic_write_text
from ..records.advice import ADVICE_FILE, FLIPMAP_FILE
from ..records.fit import FIT_SUFFIX
from ..records.optimize import bound_items
from .interrupted import interrupted_page
from .page import GENERATOR, REPORT_NAME, Report, RunCommand, mark_unfinished, read_command, read_json

__all__ = ["Report", "RunCommand", "bound_items", "detect_kind", "read_command", "write_report"]


def detect_kind(folder: Path) -> str:
    """Which command wrote `folder` (from the files in it)."""
    if (folder / FLIPMAP_FILE).is_file():  # before sweep: a flip map is a sweep with a map on top
        return "device-flipmap"
    if (folder / ADVICE_FILE).is_file():
        return "device-advise"
    if (folder / "comparison.json").is_file() or list(folder.glob("checkpoints/*/checkpoint_*.json")):
        return "compare-devices"
    if (folder / "sweep.json").is_file():
        return "sweep"
    if (folder / "report.json").is_file() or list(folder.glob("checkpoint_*.json")):
        return "optimize"
    if list(folder.glob("*" + FIT_SUFFIX)):
        return "device-fit"
    from ..records.evaluate import is_evaluate_file  # here: it loads weightprog.nn (and scipy.stats)

    results = folder / "results.json"
    if results.is_file() and is_evaluate_file(read_json(results)):
        return "evaluate"
    if (folder / "study.json").is_file() or (folder / "summary.md").is_file() or list(folder.glob("*/results.json")):
        return "study"  # a study from before it ran as jobs (<workload>/results.json) gets a message saying so
    raise WeightprogError(f"{folder}: no weightprog results here (report.json, results.json, comparison.json, "
                          f"sweep.json, *.fit.json or study.json)")


PAGES = {"optimize": "optimize_page", "evaluate": "evaluate_page", "compare-devices": "compare_page",
         "study": "study_page", "sweep": "sweep_page", "device-fit": "fit_page",
         "device-advise": "advise_html:advise_page", "device-flipmap": "advise_html:flipmap_page"}
"""Each kind of folder's page builder, `module[:function]` in this package (function: the module's
name): only the page written is imported (an optimize page needs no weightprog.nn, nor scipy.stats)."""


def _builder(kind: str) -> Callable[[Path, RunCommand | None], tuple[str, bool]]:
    module, _, name = PAGES[kind].partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name or module)


def _refuse_foreign(path: Path, ours: Callable[[str], bool], what: str) -> None:
    """A file of that name that weightprog did not write is the user's: never replaced."""
    if not path.exists():
        return
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise WeightprogError(f"{path}: cannot read ({exc.strerror}); not replaced") from None
    if not ours(text):
        raise WeightprogError(f"{path}: exists and is not {what}; not replaced (move it, or write elsewhere)")


def write_report(folder: str | Path, kind: str | None = None) -> Report:
    """(Re)write `folder`/report.html from the files in `folder` and its manifest (command.json:
    the command, and whether the run finished: a run that did not is shown as interrupted, however
    complete its files look)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightprogError(f"{folder}: not a folder")
    path = folder / REPORT_NAME
    _refuse_foreign(path, lambda text: GENERATOR in text[:2000], "a page weightprog wrote")
    unfinished = runfolder.unfinished(folder)
    if unfinished and unfinished.startswith("running"):  # its run writes report.html (and lists it) at its end
        raise WeightprogError(f"{folder}: {unfinished}; its report.html comes when it finishes")
    kind = kind or runfolder.recorded_kind(folder) or detect_kind(folder)
    if kind not in PAGES:
        raise WeightprogError(f"report: no page for {kind!r} folders yet")
    command = read_command(folder)
    try:
        text, finished = _builder(kind)(folder, command)
    except (WeightprogError, OSError, KeyError):
        if not unfinished:
            raise
        text, finished = interrupted_page(kind, folder, sorted(folder.glob("**/checkpoint_*.json")), command), False
    if unfinished:
        text, finished = mark_unfinished(text, unfinished), False
    runfolder.list_file(folder, REPORT_NAME)
    atomic_write_text(path, text)
    return Report(kind, path, finished, unfinished or ("finished" if finished else "partial"))
