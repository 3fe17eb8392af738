"""The aihwkit cross-check (scripts/crosscheck_aihwkit.py) and docs/VALIDATION.md.

The doc's generated parts must be exactly what the script renders from the committed results
(docs/validation_results.json, written by the same run). The fast cross-check runs aihwkit itself
and is skipped, with the reason, where aihwkit is not installed (.ci/run builds it).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from crosscheck_tables import render, splice  # noqa: E402

DOC = ROOT / "docs" / "VALIDATION.md"
RESULTS = ROOT / "docs" / "validation_results.json"


def test_validation_md_tables_are_the_scripts_output():
    record = json.loads(RESULTS.read_text())
    doc = DOC.read_text()
    assert splice(doc, render(record)) == doc, \
        "docs/VALIDATION.md differs from its results: python scripts/crosscheck_tables.py " \
        "docs/validation_results.json --doc docs/VALIDATION.md"
    for part in ("moments", "mlp", "strategy_mlp", "strategy_builtin"):  # the full run, every part
        assert part in record, part
    assert "--fast" not in record["command"]


def test_splice_needs_the_markers():
    with pytest.raises(ValueError, match="no markers"):
        splice("text", {"run": "x"})
    assert splice("a\n<!-- crosscheck:run -->\nold\n<!-- /crosscheck:run -->\nb", {"run": "new"}) == \
        "a\n<!-- crosscheck:run -->\nnew\n<!-- /crosscheck:run -->\nb"


def aihwkit_missing() -> str | None:
    if importlib.util.find_spec("aihwkit") is None:
        why = os.environ.get("WEIGHTPROG_AIHWKIT_BUILD", "")
        return "aihwkit is not installed" + (f" ({why})" if why else "") + \
            ": bash scripts/build_aihwkit.sh builds it (docs/VALIDATION.md)"
    if importlib.util.find_spec("sklearn") is None:
        return "scikit-learn is not installed (the digits MLP)"
    return None


@pytest.mark.slow  # CI runs it in its slow line (README test command); ~40 s alone, minutes under load
@pytest.mark.skipif(aihwkit_missing() is not None, reason=str(aihwkit_missing()))
def test_fast_crosscheck(tmp_path):
    """The cross-check's fast part: same device law, same strategies programmed on both sides, the
    optimum's advantage over lsp-first F=2 in both simulators, and the two agreeing."""
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "crosscheck_aihwkit.py"), "--fast",
                          "--parts", "moments,strategy", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["signature"]["matches"]
    for part in record["moments"]:  # fed the same draws, the laws give the same numbers (float32)
        assert part["same_draws_max_abs_diff"] < 1e-4
    part = record["strategy_mlp"]
    assert all(s["max_dg_us"] < 0.5 for s in part["sides"].values()), part["sides"]
    c = part["columns"]
    for side in ("wp", "aihwkit"):
        assert c[f"optimum {side}"]["nmse_mean"][-1] < c[f"lsp-first F=2 {side}"]["nmse_mean"][-1], side
    for name in part["sides"]:
        wp, ak = c[f"{name} wp"]["nmse_mean"][-1], c[f"{name} aihwkit"]["nmse_mean"][-1]
        assert abs(ak / wp - 1) < 0.2, (name, wp, ak)
