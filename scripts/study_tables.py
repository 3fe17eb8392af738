"""docs/RESULTS.md's study tables and figures, rebuilt from the study's committed CSV files.

The study (`weightprog study … --out DIR`) writes DIR/data/*.csv: every realisation's metric at
every time, the per-example variance terms of the intervals, the searches, the digital metrics and
the gradient correlation. Their copy under docs/study/ is what docs/RESULTS.md quotes; this script
recomputes the tables (and figures) from it, and tests/test_study.py checks docs/RESULTS.md holds
exactly what it prints.

    python scripts/study_tables.py docs/study                          # print the tables
    python scripts/study_tables.py docs/study --write docs/RESULTS.md  # put them between the markers
    python scripts/study_tables.py docs/study --figures docs/figures   # the metric-vs-time figures
    python scripts/study_tables.py runs/a runs/b --copy-to docs/study  # runs' data combined (and results.csv,
                                                                       # paired.csv from it), to commit
    python scripts/study_tables.py docs/study runs/c --replace --copy-to docs/study  # a part rerun: its
                                       # workload × device rows, and its workload's digital runs, replaced
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from weightprog.study import StudyData, markdown, paired_rows, summary_rows
from weightprog.study.tables import rows_csv

BEGIN, END = "<!-- study-tables -->", "<!-- /study-tables -->"


def tables(folder: Path) -> str:
    """The Markdown tables of the study data in `folder` (a run's data/ or docs/study/)."""
    return markdown(StudyData.load(folder))


def combined(runs: list[Path], replace: bool = False) -> StudyData:
    """The data of several study runs (each one's data/ folder, or a folder of the CSV files such as
    docs/study) as one: e.g. the study's parts, run one after the other into their own folders. A
    row two runs share is kept once; with `replace`, a later run's cells replace an earlier one's
    (`superseded`)."""
    parts = [StudyData.load(run / "data" if (run / "data").is_dir() else run) for run in runs]
    if replace:
        parts = superseded(parts)
    return StudyData(*(list(dict.fromkeys(row for part in parts for row in getattr(part, f.name)))
                       for f in fields(StudyData)))


def superseded(parts: list[StudyData]) -> list[StudyData]:
    """Each part less the rows a later part has its own of: a workload × device cell's realisations,
    terms and searches, and a workload's digital rows and gradient rows, each where a later part's
    differ (the same rows are kept once by `combined`). A workload's digital runs are
    the reference of every device's comparisons (paired example by example), so a later part that
    replaces them must bring every device of that workload that the earlier parts have."""
    out = []
    for i, part in enumerate(parts):
        later = parts[i + 1:]
        cells = {(r.workload, r.device) for p in later for r in p.realisations}
        mine, my_gradients = set(part.digital), set(part.gradients)
        references = {r.workload for p in later for r in p.digital if r not in mine}  # the same runs: no change
        gradients = {r.workload for p in later for r in p.gradients if r not in my_gradients}
        left = sorted({f"{r.workload}@{r.device}" for r in part.realisations
                       if r.workload in references and (r.workload, r.device) not in cells})
        if left:
            raise SystemExit(f"study_tables: a later run replaces the digital runs of {', '.join(sorted(references))}, "
                             f"but not the rows of {', '.join(left)}, which were paired with the old ones; "
                             f"give that part's new run too")
        out.append(StudyData([r for r in part.realisations if (r.workload, r.device) not in cells],
                             [r for r in part.terms if (r.workload, r.device) not in cells],
                             [r for r in part.searches if (r.workload, r.device) not in cells],
                             [r for r in part.digital if r.workload not in references],
                             [r for r in part.gradients if r.workload not in gradients]))
    return out


def derived_csvs(folder: Path) -> dict[str, str]:
    """results.csv (every cell, strategy and time with its 95 % interval) and paired.csv (every
    comparison with its interval and verdict), as computed from the data in `folder`."""
    data = StudyData.load(folder)
    return {"results.csv": rows_csv(summary_rows(data)), "paired.csv": rows_csv(paired_rows(data))}


def replace_tables(text: str, md: str) -> str:
    """`text` with what lies between BEGIN and END replaced by `md`."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n\n" + md + "\n" + text[end:]


def between(text: str) -> str:
    """What lies between the markers (as `replace_tables` put it)."""
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="+",
                    help="a folder of study CSV files (docs/study), or with --copy-to the run folders to combine")
    ap.add_argument("--write", type=Path, default=None, metavar="RESULTS_MD",
                    help=f"replace the text between {BEGIN} and {END} in this file")
    ap.add_argument("--figures", type=Path, default=None, metavar="DIR", help="write the figures here")
    ap.add_argument("--copy-to", type=Path, default=None, metavar="DIR",
                    help="copy the run's data/*.csv (DATA is the run folder) to DIR, with results.csv and paired.csv")
    ap.add_argument("--replace", action="store_true",
                    help="with --copy-to: a later folder's workload × device cells (and its workloads' digital "
                         "runs) replace an earlier folder's")
    args = ap.parse_args()
    data = args.data[0]
    if args.copy_to is not None:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        combined(args.data, args.replace).write(args.copy_to)
        data = args.copy_to
        for name, text in derived_csvs(data).items():
            (data / name).write_text(text)
    elif len(args.data) > 1:
        ap.error("several folders only with --copy-to (they are combined there)")
    md = tables(data)
    if args.write is not None:
        args.write.write_text(replace_tables(args.write.read_text(), md))
    if args.figures is not None:
        from weightprog.report.study_plots import plot_study

        for path in plot_study(StudyData.load(data), args.figures):
            print(path)
    if args.write is None and args.figures is None:
        print(md, end="")


if __name__ == "__main__":
    main()
