"""docs/VALIDATION.md's generated parts, rendered from the cross-check's results.json.

`render(record)` gives one markdown block per part; `splice(doc, blocks)` puts each between its
markers `<!-- crosscheck:NAME -->` … `<!-- /crosscheck:NAME -->` in the doc. Every number and every
agreement sentence in those blocks comes from the record, so the doc says what the run measured
(tests/test_crosscheck.py re-renders the committed results and compares).

    python scripts/crosscheck_tables.py docs/validation_results.json --doc docs/VALIDATION.md [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

MOMENT_TIMES = ("1", "3600", "86400", "3.1536e+07")
MOMENT_LABELS = ("1s", "1h", "1d", "1y")
NET_TIMES = ("1s", "1h", "1d", "30d", "1y")
SE_NOTE = "± is the std over realisations; a mean's standard error is std/√{r}"


def pct(a: float, b: float) -> str:
    return f"{100.0 * (a / b - 1.0):+.1f} %" if b else "—"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


# --- device law ------------------------------------------------------------------------------
def moments_block(parts: list[dict]) -> str:
    lines = []
    for part in parts:
        lines += [f"#### {part['device']} vs aihwkit PCMLikeNoiseModel(prog_noise_scale={part['scale']:g}, "
                  f"read_noise_scale={part['scale']:g}), {part['devices']:,} devices per target", ""]
        head = ["g_T µS", "g_prog mean wp / ak", "g_prog std wp / ak", "ν mean wp / ak", "ν std wp / ak"]
        head += [f"std g({t}) wp / ak (Δ)" for t in MOMENT_LABELS] + ["mean g(1y) Δ"]
        rows, worst = [], (0.0, "", "")
        for r in part["rows"]:
            cells = [f"{r['g_target']:g}"]
            for key in ("prog_mean", "prog_std", "nu_mean", "nu_std"):
                cells.append(f"{r[key + '_wp']:.4g} / {r[key + '_ak']:.4g}")
            for t, label in zip(MOMENT_TIMES, MOMENT_LABELS):
                w, k = r[f"std_{t}_wp"], r[f"std_{t}_ak"]
                cells.append(f"{w:.4g} / {k:.4g} ({pct(w, k)})")
                if abs(w / k - 1) > worst[0]:
                    worst = (abs(w / k - 1), f"{r['g_target']:g} µS", label)
            cells.append(pct(r["mean_1y_wp"], r["mean_1y_ak"]))
            rows.append(cells)
        lines += table(head, rows)
        se = 100 / math.sqrt(2 * part["devices"])
        lines += ["", f"Independent draws per simulator (relative standard error of a std ≈ {se:.2f} % per "
                      f"simulator, normal theory); the largest difference of a read std is "
                      f"{100 * worst[0]:.1f} % (g_T {worst[1]}, {worst[2]}). Fed the same standard normals, the "
                      f"two give the same g_prog, ν and g(t) for every device: max |difference| "
                      f"{part['same_draws_max_abs_diff']:.3g} (µS or ν) over all targets and times.", ""]
    return "\n".join(lines).rstrip()


# --- networks --------------------------------------------------------------------------------
def se_diff(a: dict, b: dict, key: str, k: int, r: int) -> float:
    return math.sqrt((a[f"{key}_std"][k] ** 2 + b[f"{key}_std"][k] ** 2) / r)


def agreement(a: dict, b: dict, r: int, names: tuple[str, str]) -> str:
    """One sentence from the numbers: how far `a` is from `b`, in accuracy and weight NMSE, and in
    standard errors of the difference."""
    out = []
    if "accuracy_mean" in a and "accuracy_mean" in b:
        d = [100 * (x - y) for x, y in zip(a["accuracy_mean"], b["accuracy_mean"])]
        z = [abs(a["accuracy_mean"][k] - b["accuracy_mean"][k]) / max(se_diff(a, b, "accuracy", k, r), 1e-12)
             for k in range(len(d))]
        k = max(range(len(z)), key=z.__getitem__)
        lo, hi = round(min(d), 1) + 0, round(max(d), 1) + 0  # + 0: no "-0.0"
        out.append(f"accuracy {lo:+.1f} to {hi:+.1f} points (largest {z[k]:.1f} standard errors of the "
                   f"difference, at {NET_TIMES[k]})")
    rel = [100 * (x / y - 1) for x, y in zip(a["nmse_mean"], b["nmse_mean"])]
    z = [abs(a["nmse_mean"][k] - b["nmse_mean"][k]) / max(se_diff(a, b, "nmse", k, r), 1e-15) for k in range(len(rel))]
    k = max(range(len(z)), key=z.__getitem__)
    out.append(f"weight NMSE {min(rel):+.1f} to {max(rel):+.1f} % ({z[k]:.1f} standard errors at {NET_TIMES[k]})")
    return f"{names[0]} against {names[1]}: " + "; ".join(out) + "."


def advantage(opt: dict, base: dict) -> tuple[float, float]:
    """NMSE at the last time of `opt` relative to `base` (−0.1 = 10 % lower) and its standard error,
    from the realisations (paired: the same seeds for both strategies)."""
    a, b = opt["nmse_last"], base["nmse_last"]
    mean_b = sum(b) / len(b)
    d = [(x - y) / mean_b for x, y in zip(a, b)]
    m = sum(d) / len(d)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1)) if len(d) > 1 else 0.0
    return m, sd / math.sqrt(len(d))


def net_table(columns: dict[str, dict], r: int) -> list[str]:
    names = list(columns)
    accuracy = [n for n in names if "accuracy_mean" in columns[n]]
    head = ["time"] + [f"acc % {n}" for n in accuracy] + [f"weight NMSE {n}" for n in names]
    rows = []
    for k, t in enumerate(NET_TIMES):
        c = columns
        rows.append([t] + [f"{100 * c[n]['accuracy_mean'][k]:.1f} ± {100 * c[n]['accuracy_std'][k]:.1f}"
                           for n in accuracy]
                    + [f"{c[n]['nmse_mean'][k]:.4g} ± {c[n]['nmse_std'][k]:.2g}" for n in names])
    rescale = [f"{n} {c['rescale']:.3f}×" for n, c in columns.items() if "rescale" in c]
    return table(head, rows) + ["", f"{r} realisations; {SE_NOTE.format(r=r)}. aihwkit re-derives the "
                                    f"conductances from the programmed weights at every drift step, scaled by "
                                    f"their own max|w|; that is larger than the target's by a factor "
                                    f"{', '.join(rescale)} (mean over tiles and realisations)."]


def mlp_block(parts: list[dict], model: dict) -> str:
    lines = [f"Digital accuracy {100 * model['digital_accuracy']:.1f} % on {model['test_images']} test images.", ""]
    for part in parts:
        c, r = part["columns"], part["repeats"]
        lines += [f"#### single pair, noise ×{part['scale']:g} (weightprog device `{part['device']}`)", ""]
        lines += net_table(c, r) + [""]
        lines += ["* " + agreement(c["aihwkit"], c["wp programmed"], r, ("aihwkit", "wp programmed")),
                  "* " + agreement(c["aihwkit kept state"], c["wp programmed"], r,
                                   ("aihwkit kept state", "wp programmed")), ""]
    return "\n".join(lines).rstrip()


def strategy_block(part: dict) -> str:
    c, r = part["columns"], part["repeats"]
    meta, gaps, sides = part["export_meta"], part["export_gaps"], part["sides"]
    closest = min(gaps, key=gaps.__getitem__)
    cell = ",".join(f"{f:g}" for f in part["cell"])
    opt, lsp = part["tnmse"]["optimised"], part["tnmse"]["lsp_first_best"]
    lines = [f"Optimum on `{part['device']}`: cell f = {cell}, β = {part['beta']:.1f} µS, method `{part['method']}`, "
             f"ψ(1) = W_hw(1)/β = {sides['optimum']['psi_1']:.3f}; `weightprog optimize` re-scored its TNMSE "
             f"(per-column compensation) at {opt['mean']:.4g}, {pct(opt['mean'], lsp['mean'])} against the best "
             f"lsp-first (F = {lsp['f']}, {lsp['mean']:.4g}).",
             f"`strategy.aihwkit.json` holds `{meta.get('strategy') or 'optimised'}` (strategy.json's meta); read "
             f"back as aihwkit reads it, it is {closest} to {gaps[closest]:.2g} µS (every target at the file's "
             f"weights; weightprog's side runs the strategy read back from the file).",
             "Same strategy on both sides — max |Δg| between the targets aihwkit's converter gives the weights "
             "it is handed and weightprog's targets for the layer's own weights: "
             + "; ".join(f"{n} {s['max_dg_us']:.2g} µS ({100 * s['within_0.1us']:.2f} % of weights within "
                         f"0.1 µS; table of {s['points']} points)" for n, s in sides.items())
             + f". ψ was raised by at most {sides['optimum']['psi_moved']:.1e} to make it strictly increasing.", ""]
    lines += net_table(c, r) + [""]
    sims = ("wp", "aihwkit", "aihwkit kept state")
    head = ["at 1y", "weightprog", "aihwkit", "aihwkit kept state", "aihwkit vs weightprog"]
    head += [f"vs lsp-first F=2, {s}" for s in ("weightprog", "aihwkit", "aihwkit kept state")]
    rows = []
    for n in sides:
        wp, ak = c[f"{n} wp"], c[f"{n} aihwkit"]
        z = abs(wp["nmse_mean"][-1] - ak["nmse_mean"][-1]) / se_diff(wp, ak, "nmse", -1, r)
        cells = [n] + [f"{c[f'{n} {s}']['nmse_mean'][-1]:.4g}" for s in sims]
        cells.append(f"{pct(ak['nmse_mean'][-1], wp['nmse_mean'][-1])} ({z:.1f} se)")
        for s in sims:
            m, se = advantage(c[f"{n} {s}"], c[f"lsp-first F=2 {s}"])
            cells.append(f"{round(100 * m, 1) + 0:+.1f} ± {100 * se:.1f} %" if n != "lsp-first F=2" else "—")
        rows.append(cells)
    lines += ["Weight NMSE at 1 year (± here: the standard error of the paired difference over the "
              "realisations, which share their seeds across strategies):", ""] + table(head, rows) + [""]
    for n in sides:
        lines.append("* " + agreement(c[f"{n} aihwkit"], c[f"{n} wp"], r, (f"{n}, aihwkit", "weightprog")))
        lines.append("* " + agreement(c[f"{n} aihwkit kept state"], c[f"{n} wp"], r,
                                      (f"{n}, aihwkit kept state", "weightprog")))
    return "\n".join(lines).rstrip()


def summary_block(record: dict) -> str:
    """The page's summary: the headline numbers of each part, from the record."""
    lines = []
    if "moments" in record:
        same = max(p["same_draws_max_abs_diff"] for p in record["moments"])
        lines.append(f"* **Device law.** Fed the same standard normals, the two simulators give the same programmed "
                     f"conductance, drift exponent and read conductance for every device (largest difference "
                     f"{same:.2g} µS or ν, float32 rounding) at noise ×1 and ×4; with independent draws, see §2.")
    for part in record.get("mlp", []):
        c = part["columns"]
        lines.append(f"* **Digits MLP, one pair, noise ×{part['scale']:g}.** "
                     + agreement(c["aihwkit"], c["wp programmed"], part["repeats"], ("aihwkit", "weightprog")))
    for key, what in (("strategy_mlp", "digits MLP"), ("strategy_builtin", "built-in distribution's sample")):
        if key not in record:
            continue
        part = record[key]
        c, r = part["columns"], part["repeats"]
        adv = {s: advantage(c[f"optimum {s}"], c[f"lsp-first F=2 {s}"]) for s in ("wp", "aihwkit",
                                                                                  "aihwkit kept state")}
        gap = (adv["aihwkit"][0] - adv["wp"][0]) / math.hypot(adv["aihwkit"][1], adv["wp"][1])
        wp, ak = c["optimum wp"]["nmse_mean"][-1], c["optimum aihwkit"]["nmse_mean"][-1]
        z = abs(wp - ak) / se_diff(c["optimum wp"], c["optimum aihwkit"], "nmse", -1, r)
        each = ", ".join(f"{100 * m:+.1f} ± {100 * se:.1f} % in {s.replace('wp', 'weightprog')}"
                         for s, (m, se) in adv.items())
        lines.append(f"* **The optimum in aihwkit, {what} (`{part['device']}`).** Weight NMSE at 1 year against "
                     f"lsp-first F=2: {each} (the optimum through the weight map ψ): aihwkit's and weightprog's "
                     f"advantages differ by {abs(gap):.1f} standard errors. On the optimum itself aihwkit's NMSE is "
                     f"{pct(ak, wp)} from weightprog's ({z:.1f} standard errors).")
    return "\n".join(lines)


def render(record: dict) -> dict[str, str]:
    """NAME -> markdown for each part the record has."""
    sig = record["signature"]
    blocks = {"run": f"`{record['command']}` — aihwkit {record['aihwkit']}, torch {record['torch']}, "
                     f"wall time {record['wall_time_s']:.0f} s.",
              "signature": f"aihwkit {record['aihwkit']}: `CustomPairConductanceConverter({', '.join(sig['params'])})`"
                           f" — {'the' if sig['matches'] else 'NOT the'} arguments `strategy.aihwkit.json` holds "
                           f"(`{', '.join(sig['expected'])}`, hard-coded in tests/test_strategy.py)."}
    blocks["summary"] = summary_block(record)
    if "moments" in record:
        blocks["moments"] = moments_block(record["moments"])
    if "mlp" in record:
        blocks["mlp"] = mlp_block(record["mlp"], record["mlp_model"])
    for key in ("strategy_mlp", "strategy_builtin"):
        if key in record:
            blocks[key] = strategy_block(record[key])
    return blocks


def splice(doc: str, blocks: dict[str, str]) -> str:
    """`doc` with each block between its markers (a block without markers in the doc is an error)."""
    for name, text in blocks.items():
        pattern = re.compile(rf"(<!-- crosscheck:{name} -->\n)(?:.*?\n)?(<!-- /crosscheck:{name} -->)", re.S)
        if not pattern.search(doc):
            raise ValueError(f"no markers <!-- crosscheck:{name} --> … <!-- /crosscheck:{name} --> in the doc")
        doc = pattern.sub(lambda m, t=text: m.group(1) + t + "\n" + m.group(2), doc)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results")
    parser.add_argument("--doc", required=True)
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc differs, write nothing")
    args = parser.parse_args()
    doc = Path(args.doc).read_text()
    new = splice(doc, render(json.loads(Path(args.results).read_text())))
    if args.check:
        return int(new != doc)
    Path(args.doc).write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
