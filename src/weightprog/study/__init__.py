"""The paper's validation study on the reference workloads (docs/MODEL.md §9, docs/RESULTS.md).

For each workload, device and trained variant (FP, HWA): search the programming strategy for the
study's times on the network's own weights and choose among the search's candidates on held-out
data; then evaluate naive, best hand-crafted, optimised and the device's limit on the test data
over time with R programming realisations, in resumable jobs (study/jobs.py) that run in this
process, in worker processes or on Ray. Every table comes with 95 % intervals over realisations
and test examples, and every comparison is paired (same realisations and examples).

    from weightprog.study import StudySettings, run_study
    run_study(StudySettings(workloads=("fmnist-resnet32",), repeats=5), "results/study")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .settings import DEFAULT_EVAL_SIZE, ROLES, SEARCH_ON, STUDY_PERIPHERY, STUDY_TIMES_S, StudySettings

_EXPORTS = {"StudyData": ".data", "StudyJob": ".jobs", "StudyResult": ".run", "run_study": ".run",
            "write_outputs": ".run", "PairedRow": ".tables", "SummaryRow": ".tables", "markdown": ".tables",
            "paired_rows": ".tables", "summary_rows": ".tables"}
"""Names loaded on first use (they need torch); the settings are light, for the command line."""

if TYPE_CHECKING:
    from .data import StudyData
    from .jobs import StudyJob
    from .run import StudyResult, run_study, write_outputs
    from .tables import PairedRow, SummaryRow, markdown, paired_rows, summary_rows


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["DEFAULT_EVAL_SIZE", "ROLES", "SEARCH_ON", "STUDY_PERIPHERY", "STUDY_TIMES_S", "PairedRow",
           "StudyData", "StudyJob", "StudyResult", "StudySettings", "SummaryRow", "markdown", "paired_rows",
           "run_study", "summary_rows", "write_outputs"]
