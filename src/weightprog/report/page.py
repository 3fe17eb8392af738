"""The pieces every report.html is built from: reading a run's files, and the HTML blocks (CSS,
escaped and formatted numbers with their JSON pointers, cards, tables, figures, sections, the page).

The pages themselves are in report/html.py (one per command) and report/advise_html.py.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import WeightprogError
from ..records.jsonfile import read_json
from ..timeunits import format_times

REPORT_NAME = "report.html"
GENERATOR = '<meta name="generator" content="weightprog">'
"""How a report.html says weightprog wrote it (so a rebuild may replace it, and nothing else)."""
COMMAND_NAME = "command.json"


@dataclass
class RunCommand:
    """The command line that made an output folder, and where it ran (written to command.json)."""

    argv: list[str]
    cwd: str

    def text(self) -> str:
        return f"cd {shlex.quote(self.cwd)} && {shlex.join(self.argv)}"


@dataclass
class Report:
    """What `write_report` wrote."""

    kind: str
    path: Path
    finished: bool
    status: str = "finished"


# --- reading the folder ---------------------------------------------------------------------------


def read_command(folder: Path) -> RunCommand | None:
    path = folder / COMMAND_NAME
    if not path.is_file():
        return None
    data = read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("argv"), list) and isinstance(data.get("cwd"), str)):
        raise WeightprogError(f"{path}: expected {{argv: [...], cwd: ...}}")
    return RunCommand([str(a) for a in data["argv"]], data["cwd"])


# --- HTML pieces ------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#fafafa}
main{max-width:1080px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 8px}.question{font-size:16px;color:#333;margin:6px 0 16px}
.status{display:inline-block;padding:2px 8px;border-radius:4px;font-size:13px;background:#e6f4ea;color:#1e6b34}
.status.partial{background:#fdecea;color:#8a1c12}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid #d8d8d8;border-radius:6px;padding:10px 14px;min-width:180px;flex:1 1 180px}
.card .label{font-size:13px;color:#555}.card .big{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.card .sub{font-size:12px;color:#666}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums;font-family:ui-monospace,Menlo,monospace}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:16px 0}figure img,figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#555;margin-top:4px}
pre{background:#f4f4f4;padding:10px;overflow-x:auto;font-size:13px;white-space:pre-wrap;word-break:break-all}
.note{font-size:13px;color:#555}.name{white-space:nowrap}.se{font-size:11px;color:#666}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 4) -> str:
    """A number as the page shows it: 4 significant digits, scientific when small or large."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e5):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def vs_digital(value: float, digital: float, higher_is_better: bool = True) -> str:
    """A metric against the digital (FP) model's, signed and with its unit: a fraction (accuracy)
    in percentage points, anything else (perplexity) in % of the digital value; worse or better."""
    diff = value - digital
    points = abs(value) <= 1 and abs(digital) <= 1
    if not (math.isfinite(diff) and (points or digital != 0)):
        return "n/a vs digital"
    text = f"{100 * diff:+.2f} points" if points else f"{100 * diff / abs(digital):+.2f} %"
    verdict = "same" if diff == 0 else "better" if (diff > 0) == higher_is_better else "worse"
    return f"{text} vs digital ({verdict})"


def num(value: Any, key: str = "", file: str = "", text: str | None = None) -> str:
    """A number that names where it comes from (data-file, data-key = JSON pointer)."""
    attrs = ""
    if key:
        attrs = f' data-file="{esc(file)}" data-key="{esc(key)}" data-value="{esc(repr(value))}"'
    return f'<span class="num"{attrs}>{esc(fmt(value) if text is None else text)}</span>'


def card(label: str, big: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="label">{esc(label)}</div><div class="big">{big}</div>'
            f'<div class="sub">{sub}</div></div>')


def table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    """Cells are escaped unless they are already HTML (wrapped in Raw)."""
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            text = c.html if isinstance(c, Raw) else esc(fmt(c) if isinstance(c, (int, float)) else c)
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


@dataclass
class Raw:
    html: str


def kv_table(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v.html if isinstance(v, Raw) else esc(v)}</td></tr>"
                   for k, v in pairs if v is not None)
    return f'<div class="scroll"><table>{rows}</table></div>'


def png_figure(path: Path, caption: str) -> str:
    """A PNG file of the run, embedded."""
    if not path.is_file():
        return f'<p class="note">{esc(path.name)}: not written (the run did not get that far).</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)} ({esc(path.name)})</figcaption></figure>")


def svg_figure(fig, caption: str) -> str:
    """A matplotlib figure drawn here, inline as SVG."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: small, selectable, no glyph ids
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a figure pyplot made is dropped from its registry (one of ours needs nothing)
        pyplot.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)
    return f'<figure>{text}<figcaption>{esc(caption)}</figcaption></figure>'


def section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{body}</section>"


def page(title: str, question: str, finished: bool, sections: list[str], status_text: str = "") -> str:
    status = status_text or ("finished" if finished else "interrupted: partial results")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + GENERATOR
            + "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{esc(title)}</h1><span class=\"status{'' if finished else ' partial'}\">{esc(status)}</span>"
            f"<p class=\"question\">{question}</p>" + "".join(sections)
            + f"<p class=\"note\">Written by weightprog {esc(__version__)} from the files in this folder; "
              "no network, no script.</p></main></body></html>\n")


def mark_unfinished(text: str, status: str) -> str:
    """A page whose run did not finish (its manifest says so), however complete its files look."""
    head, _, rest = text.partition('<span class="status')
    return f'{head}<span class="status partial">{esc(status)}</span>{rest.split("</span>", 1)[1]}'


def reproduce_section(command: RunCommand | None, fallback: str = "") -> str:
    if command is not None:
        body = (f"<pre>{esc(command.text())}</pre><p class=\"note\">The same command, in the same folder, "
                "gives the same numbers (same seed); rerunning it on an interrupted run resumes it. Other "
                "settings are refused there unless --force, which removes the files command.json lists.</p>")
    else:
        body = ("<p class=\"note\">The command line was not recorded (command.json, written when a run starts, is "
                "missing)." + (" From the recorded settings:" if fallback else "") + "</p>"
                + (f"<pre>{esc(fallback)}</pre>" if fallback else ""))
    return section("Reproduce", body)


def files_section(folder: Path) -> str:
    rows = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith(".") and p.name != REPORT_NAME:
            rows.append([str(p.relative_to(folder)), p.stat().st_size])
    if len(rows) > 60:
        rows = rows[:60] + [[f"… and {len(rows) - 60} more", ""]]
    return section("Files in this folder", table(["file", "bytes"], rows, {1}))


# --- device curves (SVG) --------------------------------------------------------------------------

def device_from_describe(d: dict):
    """The device a run recorded (report.json's `device`), or None when it cannot be rebuilt
    exactly (a built-in model whose parameters differ from the recorded ones)."""
    from ..devices import BUILTIN
    from ..devices.tabulated import tabulated_from_dict

    try:
        if d.get("kind") == "tabulated" or "tables" in d:  # describe() form -> file form
            data = {k: d[k] for k in ("kind", "name", "g_min", "g_max", "t0", "t_read") if k in d}
            data.update(d.get("tables", {}))
            data["stuck"] = {"p_zero": d.get("p_stuck_min", 0.0), "p_gmax": d.get("p_stuck_max", 0.0)}
            dev = tabulated_from_dict(data, where=f"device {d.get('name')}")
            return dev if json.loads(json.dumps(dev.describe())) == json.loads(json.dumps(d)) else None
        if d.get("name") in BUILTIN:
            dev = BUILTIN[d["name"]]()
            return dev if dev.describe() == d else None
    except WeightprogError:
        return None
    return None


def device_curves_figure(describes: list[dict]) -> str:
    """σ_p(G), ν mean ± std (G) and Q(G) of each device, one colour per device, as inline SVG."""
    from .device_plots import device_curves
    from .figure import subplots
    from .palette import device_colour

    devices = [(d, device_from_describe(d)) for d in describes]
    shown = [(d, dev) for d, dev in devices if dev is not None]
    missing = [d.get("name", "?") for d, dev in devices if dev is None]
    note = (f'<p class="note">Curves not drawn for {esc(", ".join(missing))}: the recorded parameters '
            "do not rebuild the device.</p>") if missing else ""
    if not shown:
        return note
    fig, axes = subplots(1, 3, figsize=(10.5, 2.9))
    for _d, dev in shown:
        c = device_curves(dev)
        col = device_colour(dev.name)
        label = dev.name if len(shown) > 1 else None
        axes[0].plot(c["g"], c["sigma_p"], color=col, label=label)
        axes[1].plot(c["g"], c["nu_mean"], color=col)
        axes[1].fill_between(c["g"], (c["nu_mean"] - c["nu_std"]).clip(min=0), c["nu_mean"] + c["nu_std"],
                             color=col, alpha=0.18, lw=0)
        axes[2].plot(c["g"], c["q"], color=col)
    axes[0].set(xlabel="target G (µS)", ylabel="programming σ (µS)", title="programming error")
    axes[1].set(xlabel="target G (µS)", ylabel="drift exponent ν", title="drift ν: mean ± std")
    axes[2].set(xlabel="target G (µS)", ylabel="Q (relative)", title="read-noise coefficient", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(10)
    if len(shown) > 1:
        fig.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(shown), frameon=False, fontsize=9)
    fig.tight_layout()
    names = ", ".join(dev.name for _, dev in shown)
    return svg_figure(fig, f"device curves of {names} (drawn from the recorded device)") + note


def device_row(d: dict) -> str:
    src = " ".join(str(d.get("source", "")).split())
    extra = f"; stuck p {d.get('p_stuck_min', 0):g}–{d.get('p_stuck_max', 0):g}" if d.get("p_stuck_max") else ""
    return (f"{d.get('name')} ({d.get('kind')}): G {d.get('g_min'):g}–{d.get('g_max'):g} µS, t0 {d.get('t0'):g} s, "
            f"t_read {d.get('t_read'):g} s{extra}" + (f"; {src}" if src else ""))


def times_text(times_s) -> str:
    return ", ".join(format_times(times_s))


def cell_text(sig) -> str:
    return "f=" + ",".join(f"{f:g}" for f in sig)


# --- bound / gap (issue 17): rendered generically when the run recorded them ---------------------------
