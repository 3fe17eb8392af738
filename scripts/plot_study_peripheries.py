"""The study's criteria figure: each workload's metric at the last time point, per device and
programming strategy, under two peripheries side by side, against the FP model's digital metric
and the issue's bound (docs/RESULTS.md).

    python scripts/plot_study_peripheries.py runs/study_r25_chip-8bit runs/study_r25_standard \
        --out docs/figures/study_peripheries_1y.png

Each folder is an output folder of the earlier study (before issue 24: its `<workload>/results.json`
files); the workloads and devices are those of the first folder. Today's study tables and figures
come from scripts/study_tables.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from weightprog.fileio import atomic_write  # noqa: E402

BOUND = {True: -0.01, False: 0.05}
"""The issue's criterion by `higher_is_better`: ≤ 1 point below (accuracy), ≤ 5 % above (perplexity)."""
MARKERS = {"naive": "o", "best hand-crafted": "s", "optimised": "D"}
ROLES = tuple(MARKERS)
"""The earlier study's strategies."""


def records(folder: Path) -> dict[str, dict]:
    """The study's results.json records in a folder, by workload."""
    out = {}
    for path in sorted(folder.glob("*/results.json")):
        rec = json.loads(path.read_text())
        out[rec["workload"]] = rec
    if not out:
        raise SystemExit(f"{folder}: no <workload>/results.json (a `weightprog study --out` folder)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs=2, type=Path, help="two study folders (periphery A, periphery B)")
    p.add_argument("--variant", default="hwa", help="trained variant to plot (default hwa)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    a = p.parse_args()
    recs = [records(f) for f in a.folders]
    names = list(recs[0])
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        first = recs[0][name]
        higher = first["higher_is_better"]
        fp = first.get("fp_digital") or next(iter(first["devices"].values()))["variants"]["fp"]["digital"]
        devices = list(first["devices"])
        for k, rec_by_name in enumerate(recs):
            rec = rec_by_name.get(name)
            if rec is None:
                continue
            for d, dev in enumerate(devices):
                vrec = rec["devices"].get(dev, {}).get("variants", {}).get(a.variant)
                if vrec is None:
                    continue
                for r, role in enumerate(ROLES):
                    s = vrec["strategies"][role]
                    x = d + (k - 0.5) * 0.4 + (r - 1) * 0.1
                    ax.errorbar(x, s["mean"][-1], yerr=s["std"][-1], fmt=MARKERS[role], ms=4, capsize=2,
                                color=f"C{k}", label=f"{rec['periphery']}: {role}" if d == 0 else None)
        ax.axhline(fp, color="k", ls=":", lw=1.2, label="FP model, digital")
        bound = fp + BOUND[True] if higher else fp * (1 + BOUND[False])
        ax.axhline(bound, color="0.5", ls="--", lw=1, label="criterion bound")
        ax.set_xticks(range(len(devices)))
        ax.set_xticklabels(devices, fontsize=8)
        ax.set_title(f"{name} ({a.variant.upper()}-trained), last time point", fontsize=9)
        ax.set_ylabel(first["metric"], fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    atomic_write(a.out, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    print(a.out)


if __name__ == "__main__":
    main()
