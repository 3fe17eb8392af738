"""report.html: built from the run's files, self-contained, and checked in a real browser.

Small optimize, evaluate and compare-devices runs go through the `weightprog` command line once
per module; every page is then checked without a browser (numbers tagged with JSON pointers equal
the files; nothing external is referenced) and, where Debian's chromium and the `playwright`
package are installed (CI installs both), in headless chromium from file://: no console errors, no
network requests, every figure drawn at a non-zero size, and the headline numbers on the page equal
those in report.json / results.json / comparison.json.

WEIGHTPROG_REPORT_SCREENSHOTS=DIR also saves a full-page screenshot of each page there
(docs/figures/report_*.png are made that way).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from weightprog.cli import main
from weightprog.report.html import bound_items, write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SEARCH = ["--max-generations", "2", "--popsize", "5", "--grid", "4", "--no-polish", "--significance", "1,2",
          "--times", "1s,1d,1y", "--sample-size", "1024"]  # 1,024 weights: 2 crossbar columns, fast on 2 cores


def run(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{kind: (folder, data file)} of three small runs made through the command line."""
    base = tmp_path_factory.mktemp("runs")
    cwd = os.getcwd()
    os.chdir(Path(__file__).parent)  # evaluate imports nn_helpers:tiny_entry from here
    try:
        run("optimize", *SEARCH, "--rescore-blocks", "2", "--out", str(base / "optimize"))
        run("evaluate", "--model", "nn_helpers:tiny_entry", "--strategy", "single-pair", "--strategy", "lsp-first",
            "--strategy", str(base / "optimize" / "strategy.json"), "--significance", "1,2", "--times", "1s,1h,1y",
            "--repeats", "2", "--no-progress", "--out", str(base / "evaluate"))
        run("compare-devices", "pcm", "pcm-lowdrift", *SEARCH, "--out", str(base / "compare"))
    finally:
        os.chdir(cwd)
    return {"optimize": (base / "optimize", "report.json"), "evaluate": (base / "evaluate", "results.json"),
            "compare-devices": (base / "compare", "comparison.json")}


KINDS = ["optimize", "evaluate", "compare-devices"]


def pointer(data, key: str):
    for part in key.strip("/").split("/"):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def shown_equals(text: str, value: float) -> bool:
    """The number as shown (4 significant digits, or a percentage with one decimal) is `value`."""
    number = float(re.search(r"[-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?", text).group().replace(",", ""))
    if text.strip().endswith("%"):
        return abs(number - 100 * value) <= 0.05 + 1e-9
    return abs(number - value) <= 5e-4 * abs(value) + 1e-12


TAG = re.compile(r'<span class="num" data-file="([^"]*)" data-key="([^"]*)" data-value="([^"]*)">([^<]*)</span>')


@pytest.mark.parametrize("kind", KINDS)
def test_page_numbers_are_the_files_numbers(runs, kind):
    folder, data_file = runs[kind]
    text = (folder / "report.html").read_text()
    tags = TAG.findall(text)
    assert len(tags) >= 4
    for file, key, value, shown in tags:
        data = json.loads((folder / file).read_text())
        assert float(value) == pointer(data, key), key
        assert shown_equals(shown, pointer(data, key)), (key, shown)
    # self-contained: no external resource, no script
    assert not re.search(r'(src|href)="(?!data:|#)', text)  # inline images, links inside an SVG
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert re.findall(r"https?://[^\s\"]*", text) == re.findall(r'xmlns(?::\w+)?="(https?://[^"]*)"', text)
    command = json.loads((folder / "command.json").read_text())
    assert command["argv"][:2] == ["weightprog", kind] and "--out" in command["argv"]
    assert " ".join(command["argv"][1:3]) in text.replace("&#x27;", "'")


def test_headlines_name_the_results(runs):
    opt = (runs["optimize"][0] / "report.html").read_text()
    report = json.loads((runs["optimize"][0] / "report.json").read_text())
    assert "optimised TNMSE" in opt and "best hand-crafted" in opt and "best F=1 baseline" in opt
    assert opt.index("Result") < opt.index("Question and inputs") < opt.index("Figures") < opt.index("Reproduce")
    assert f'data-key="/tnmse/optimised/mean" data-value="{report["tnmse"]["optimised"]["mean"]!r}"' in opt
    assert opt.count("data:image/png;base64,") == 4 and opt.count("<svg") >= 1  # 4 figures + device curves
    ev = (runs["evaluate"][0] / "report.html").read_text()
    assert "digital (FP) accuracy" in ev and "optimised at 1y" in ev and "lsp-first (f=1,2) at 1y" in ev
    cmp = (runs["compare-devices"][0] / "report.html").read_text()
    data = json.loads((runs["compare-devices"][0] / "comparison.json").read_text())
    assert data["ranking"]["sentence"] in cmp.replace("&lt;", "<")


def test_report_command_rebuilds_and_reads_interrupted_runs(runs, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(runs["optimize"][0], folder)
    (folder / "report.html").unlink()
    result = run("report", str(folder))
    assert "optimize results" in result.output
    text = (folder / "report.html").read_text()
    assert (runs["optimize"][0] / "command.json").read_text() == (folder / "command.json").read_text()
    assert "--max-generations 2" in text  # the recorded command, not one rebuilt from settings
    # interrupted: only the search checkpoints exist
    partial = tmp_path / "partial"
    partial.mkdir()
    for p in runs["optimize"][0].glob("checkpoint_*.json"):
        shutil.copy(p, partial)
    result = run("report", str(partial))
    assert "partial results" in result.output
    text = (partial / "report.html").read_text()
    assert "interrupted" in text and "<svg" in text and "generations done" in text
    # an interrupted compare-devices: its per-device checkpoints
    shutil.copytree(runs["compare-devices"][0] / "checkpoints", tmp_path / "cmp" / "checkpoints")
    assert "compare-devices partial results" in run("report", str(tmp_path / "cmp")).output
    text = (tmp_path / "cmp" / "report.html").read_text()
    assert "checkpoints/pcm-lowdrift/checkpoint_f1_2.json" in text and "<svg" in text


def test_report_command_bad_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    (tmp_path / "report.json").write_text("{not json")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "report.json" in result.output and "Traceback" not in result.output


def test_bound_and_gap_fields_are_shown_when_present(runs, tmp_path):
    """Any field named *bound* / gap* is shown, whatever its form (the generic path)."""
    folder = tmp_path / "bound"
    shutil.copytree(runs["optimize"][0], folder)
    report = json.loads((folder / "report.json").read_text())
    for key in ("bound", "gap_to_bound", "gap_to_compensated"):  # the form the next test covers
        report.pop(key, None)
    report["bound"] = {"expected_tnmse": 7.5e-4, "note": "text is not a number"}
    report["gap_to_bound"] = 0.175
    report["expected"] = {"optimised": 8e-4, "bound": {"per_time": [1e-4, 2e-4]}}
    (folder / "report.json").write_text(json.dumps(report))
    assert [(label, key) for label, key, _ in bound_items(report)] == [
        ("bound.expected_tnmse", "/bound/expected_tnmse"), ("gap_to_bound", "/gap_to_bound")]
    text = write_report(folder).path.read_text()
    assert 'data-key="/bound/expected_tnmse" data-value="0.00075">7.500e-04<' in text
    assert 'data-key="/gap_to_bound" data-value="0.175">0.175<' in text
    assert 'data-key="/expected/bound/per_time/1" data-value="0.0002">2.000e-04<' in text  # in the table
    assert "Bound and gap" in text and "/expected/optimised" not in text
    check_tags(folder, text, 8)


def test_the_bound_section_of_report_json(runs, tmp_path):
    """report.json's `bound`, `gap_to_bound` and `gap_to_compensated` (search/run.py bound_report):
    two headline cards with the optimised strategy's gaps, a per-F table, a gap column per limit."""
    folder = tmp_path / "bound"
    shutil.copytree(runs["optimize"][0], folder)
    report = json.loads((folder / "report.json").read_text())
    opt = report["tnmse"]["optimised"]["mean"]
    report["bound"] = {"tnmse": opt / 1.25, "f": 2.0, "compensated_tnmse": opt / 1.1, "compensated_f": 2.0,
                       "compensated_beta": 70.0, "note": "expected TNMSE of the best mapping",
                       "per_f": [{"f": 1.0, "bound": opt / 1.2, "compensated": opt / 1.05, "beta": 60.0,
                                  "wall_time_s": 1.0},
                                 {"f": 2.0, "bound": opt / 1.25, "compensated": opt / 1.1, "beta": 70.0,
                                  "wall_time_s": 1.0}]}
    report["gap_to_bound"] = {k: v["mean"] / report["bound"]["tnmse"] - 1 for k, v in report["tnmse"].items()}
    report["gap_to_compensated"] = {k: v["mean"] / report["bound"]["compensated_tnmse"] - 1
                                    for k, v in report["tnmse"].items()}
    (folder / "report.json").write_text(json.dumps(report))
    text = write_report(folder).path.read_text()
    check_tags(folder, text, 20)
    head = text[text.index("Result"):text.index("Question and inputs")]
    assert 'data-key="/bound/tnmse"' in head and 'data-key="/bound/compensated_tnmse"' in head
    assert 'data-key="/gap_to_bound/optimised"' in head and ">+25.0 %<" in head and ">+10.0 %<" in head
    assert "Bound per significance factor F" in text and 'data-key="/bound/per_f/1/compensated"' in text
    assert text.count('data-key="/gap_to_compensated/') == len(report["tnmse"]) + 1  # the table and the card
    assert "Bound and gap (as report.json records them)" not in text


# --- in a real browser ------------------------------------------------------------------------------

def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; CI does)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (apt-get install -y chromium; CI does)")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser()
    profile = tempfile.mkdtemp(prefix="weightprog-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS, viewport={"width": 1200, "height": 900})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.parametrize("kind", KINDS)
def test_page_in_chromium(runs, browser, kind):
    tags = check_in_chromium(browser, kind, runs[kind][0])
    if kind != "evaluate":
        assert any(file == runs[kind][1] and key.endswith("optimised/mean") for file, key, _, _ in tags)


def check_in_chromium(browser, kind: str, folder: Path) -> list:
    """Load folder/report.html from file://: no console error, no request but the page itself and
    its data: images, every figure drawn, every tagged number equal to its file's; the tags."""
    page = browser.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    url = (folder / "report.html").resolve().as_uri()
    page.goto(url, wait_until="load")
    assert errors == []
    assert requests and all(u == url or u.startswith("data:") for u in requests), requests
    sizes = page.eval_on_selector_all("img, main > section svg, figure > svg",
                                      "els => els.map(e => [e.getBoundingClientRect().width, "
                                      "e.getBoundingClientRect().height, "
                                      "e.complete === undefined || e.naturalWidth > 0])")
    assert len(sizes) >= FIGURES[kind]
    for width, height, loaded in sizes:
        assert width > 100 and height > 50 and loaded
    tags = page.eval_on_selector_all("[data-key]", "els => els.map(e => [e.dataset.file, e.dataset.key, "
                                     "e.dataset.value, e.innerText])")
    assert len(tags) >= (0 if kind in ("sweep", "study") else 3)  # theirs come from CSV files (test_study_page)
    for file, key, value, shown in tags:
        data = json.loads((folder / file).read_text())
        assert float(value) == pointer(data, key) and shown_equals(shown, pointer(data, key)), (key, shown)
    shots = os.environ.get("WEIGHTPROG_REPORT_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        height = min(1500, page.evaluate("document.documentElement.scrollHeight"))  # the top: question, result, inputs
        name = kind.replace("-devices", "").replace("-", "_")
        page.screenshot(path=str(Path(shots) / f"report_{name}.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1200, "height": height})
    page.close()
    return tags


# --- the other commands' pages -------------------------------------------------------------------------

def check_tags(folder: Path, text: str, least: int) -> None:
    tags = TAG.findall(text)
    assert len(tags) >= least
    for file, key, value, shown in tags:
        data = json.loads((folder / file).read_text())
        assert float(value) == pointer(data, key) and shown_equals(shown, pointer(data, key)), (key, shown)


@pytest.fixture(scope="module")
def more_runs(tmp_path_factory):
    """{kind: (folder, data file)}: a small sweep and a device fit through the command line, and a
    study folder from a constructed record (its tables and figure by the study's own writers)."""
    from study_helpers import tiny_settings, tiny_workloads
    from weightprog.study import run_study

    base = tmp_path_factory.mktemp("more")
    (base / "s.yaml").write_text("name: small\nkind: [optimize, compare]\ndevices: [pcm, pcm-lowdrift]\n"
                                 "cells: [\"1,2\"]\ngrid_points: 3\ntimes: \"1s,1d\"\nseeds: [0]\nsettings:\n"
                                 "  max_generations: 1\n  popsize: 5\n  rescore_blocks: 1\n  compile: false\n"
                                 "  polish: false\n  sample_size: 1024\n  rows: 512\n")
    run("sweep", str(base / "s.yaml"), "--out", str(base / "sweep"), "--workers", "0")
    run("device", "simulate", "rram-hfox", "--out", str(base / "fit" / "m.csv"), "--devices", "40",
        "--times", "1s,1d,1y")
    run("device", "fit", str(base / "fit" / "m.csv"), "--out", str(base / "fit" / "dev.yaml"), "--min-devices", "20")
    with tiny_workloads():
        run_study(tiny_settings(roles=("naive", "optimised"), repeats=2, block=1), base / "study")
        write_report(base / "study")
    return {"sweep": (base / "sweep", "sweep.json"), "device-fit": (base / "fit", "dev.fit.json"),
            "study": (base / "study", "results.csv")}


def test_sweep_page(more_runs, tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(more_runs["sweep"][0], folder)
    text = (folder / "report.html").read_text()
    assert "3 of 3" in text and "summary.png" in text and text.count("data:image/png;base64,") == 1
    rows = (folder / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and all(r.split(",")[0] in text for r in rows[1:])
    # a job's record gone: the page says so (rebuilt from the folder)
    next((folder / "jobs").glob("*.json")).unlink()
    result = run("report", str(folder))
    assert "partial results" in result.output and "2 of 3 jobs finished" in (folder / "report.html").read_text()


def test_device_fit_page(more_runs):
    folder = more_runs["device-fit"][0]
    fit = json.loads((folder / "dev.fit.json").read_text())
    assert fit["devices"] == 440 and fit["reads"] == 3 * 440 and len(fit["bins"]) >= 2
    text = (folder / "report.html").read_text()
    check_tags(folder, text, 2 * len(fit["bins"]) + 1)
    assert "Curves not drawn" not in text and "<svg" in text and "dev.png" in text
    assert json.loads((folder / "command.json").read_text())["argv"][:3] == ["weightprog", "device", "fit"]


def test_study_page(more_runs):
    from weightprog.study import StudyData, paired_rows, summary_rows

    folder = more_runs["study"][0]
    text = (folder / "report.html").read_text()
    data = StudyData.load(folder / "data")
    last = [r for r in summary_rows(data) if r.role == "optimised" and r.time_s == 86400.0]
    assert len(last) == 2  # one card per trained variant, the mean with its interval
    for r in last:
        assert f"{r.mean:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]" in text
    p = next(p for p in paired_rows(data) if p.versus == "naive" and p.time_s == 86400.0)
    assert f"vs naive: {p.diff:+.4g} [{p.ci_low:+.4g}, {p.ci_high:+.4g}] {p.verdict}" in text
    assert "tiny_pcm_metric_vs_time.png" in text and "Paired differences" in text
    assert "jobs finished" not in text  # a finished study


FIGURES = {"optimize": 5, "evaluate": 2, "compare-devices": 2, "sweep": 1, "device-fit": 2, "study": 2,
           "device-advise": 1, "device-flipmap": 1}
"""Least figures (img or svg) on each kind of page."""


@pytest.mark.parametrize("kind", ["sweep", "device-fit", "study"])
def test_other_pages_in_chromium(more_runs, browser, kind):
    check_in_chromium(browser, kind, more_runs[kind][0])


def test_search_bars_count_to_convergence():
    from weightprog.report.progress import search_fraction
    from weightprog.search.evolve import Progress

    def at(generation, spread, elapsed=0.0):
        return search_fraction(Progress(generation, 1.0, spread, 0, elapsed), 1.0, 1e-3, 200)
    assert at(10, 1e-3) == 1.0  # converged after 10 of 200 generations: done, not at 5 %
    assert abs(at(10, 10 ** -1.5) - 0.5) < 1e-12  # half-way on the log scale from 1 to tol
    assert at(50, 0.5) == 0.25  # no convergence yet: the generation count
    assert at(200, 0.5) == 1.0
    assert search_fraction(Progress(1, 1.0, 0.9, 0, 30.0), 1.0, 1e-3, 200, budget_s=60.0) == 0.5


def test_one_colour_per_strategy_across_commands():
    """The names optimize, evaluate, compare-devices and study give one strategy map to one colour."""
    from weightprog.report.palette import FAMILIES, strategy_colour, strategy_label, strategy_style

    names = {"optimised": ["optimised", "optimised (f=1,2)", "optimised:layer1.weight"],
             "lsp-first": ["lsp_first", "lsp-first (f=1,1)", "lsp-first (f=1,2)", "naive (lsp_first F=1)", "naive",
                           "lsp_first_best", strategy_label("lsp_first"), strategy_label("lsp_first_best", {"f": 3})],
             "msp-first": ["msp_first", "msp-first (f=1,2)", "msp_first_best"],
             "single-pair": ["single_pair", "single-pair (f=1)", strategy_label("single_pair")]}
    for family, forms in names.items():
        assert {strategy_colour(n) for n in forms} == {FAMILIES[family]}, family
    assert len(set(FAMILIES.values())) == len(FAMILIES)
    assert strategy_style("lsp-first (f=1,2)")["ls"] == "--" and strategy_style("lsp-first (f=1,1)")["ls"] == "-"
    assert strategy_style("naive (lsp_first F=1)")["ls"] == "-" and strategy_style("lsp_first_best")["ls"] == "--"
    # any other name: a colour fixed by the name alone, the same in a process with another hash seed
    code = "from weightprog.report.palette import strategy_colour; print(strategy_colour('my_strategy.json'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()
    assert other == strategy_colour("my_strategy.json")
    assert len({strategy_colour(f"run{i}.json") for i in range(12)}) > 1  # names spread over the pool
    assert strategy_colour("my_strategy.json") not in FAMILIES.values()


def test_search_bars_take_every_api_s_events(capsys):
    from weightprog.progress import Event
    from weightprog.report.progress import SearchBars
    from weightprog.search.evolve import Progress

    def search(*path, p):
        return Event("search", path, p.generation, 10, p)
    for lines in (False, True):  # bars on a terminal, plain lines in a log
        with SearchBars(tol=1e-3, max_generations=10, lines=lines) as bars:
            bars(search("f=1,2", p=Progress(1, 1.0, 1.0, 10, 0.1)))
            bars(search("pcm", "f=1,2", p=Progress(1, 1.0, 1.0, 10, 0.1)))  # compare_devices: device, cell label
            bars(search("pcm", "f=1,2", p=Progress(5, 1.0, 1e-3, 50, 0.5)))
            bars(Event("advise", ("pcm",), 0, 2))  # not a search's: no bar
            assert bars.done == {"f=1,2": 0.1, "pcm f=1,2": 1.0}
            bars(Event("phase", ("pcm", "re-score")))
        err = capsys.readouterr().err
        assert ("search pcm f=1,2: 100%" in err and "pcm: re-score" in err) if not lines else (
            "search f=1,2: started" in err and "search pcm f=1,2: done at gen 5" in err and "\r" not in err
            and "pcm: re-score: started" in err and "pcm: re-score: done in" in err)


def test_a_foreign_report_html_is_never_replaced(runs, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(runs["optimize"][0], folder)
    (folder / "report.html").write_text("<html>my own notes</html>")
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 2 and "is not a page weightprog wrote" in result.output
    assert (folder / "report.html").read_text() == "<html>my own notes</html>"
    # a command into a folder holding someone's report.html: refused before any work (issue 26)
    (tmp_path / "m").mkdir()
    run("device", "simulate", "rram-hfox", "--out", str(tmp_path / "m" / "m.csv"), "--devices", "40", "--times",
        "1s,1d,1y")
    (tmp_path / "m" / "report.html").write_text("theirs")
    result = CliRunner().invoke(main, ["device", "fit", str(tmp_path / "m" / "m.csv"), "--out",
                                       str(tmp_path / "m" / "dev.yaml"), "--min-devices", "20"])
    assert result.exit_code == 2 and "report.html: exists and is not listed" in result.output
    assert not (tmp_path / "m" / "dev.yaml").exists()
    assert (tmp_path / "m" / "report.html").read_text() == "theirs"


def test_the_recorded_command_reproduces_the_run(tmp_path, monkeypatch):
    """A command invoked on its own (not through the group) has its options rebuilt from the parsed
    values; running the recorded command again gives the same numbers."""
    from weightprog.cli.evaluate import evaluate

    monkeypatch.chdir(Path(__file__).parent)
    args = ["--model", "nn_helpers:tiny_entry", "--strategy", "lsp-first", "--strategy", "single-pair",
            "--significance", "1,2", "--times", "1s,1h,1y", "--repeats", "2", "--seed", "7", "--no-progress"]
    result = CliRunner().invoke(evaluate, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    argv = json.loads((tmp_path / "a" / "command.json").read_text())["argv"]
    assert argv[:2] == ["weightprog", "evaluate"] and sorted(argv[2:]) == sorted([*args, "--out", str(tmp_path / "a")])
    again = [str(tmp_path / "b") if a == str(tmp_path / "a") else a for a in argv[1:]]
    run(*again)
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert first["summary"] == second["summary"] and first["rows"] == second["rows"]


def test_advise_and_flipmap_pages_in_chromium(tmp_path, browser):
    """`device advise` and `device flipmap` folders get their own pages, checked like the others."""
    fast = ["--pairs", "1", "--max-generations", "3", "--rescore-blocks", "1"]
    run("device", "advise", "pcm", "--property", "read", "--no-polish", *fast, "--sample-size", "1024",
        "--out", str(tmp_path / "advise"))
    run("device", "flipmap", "pcm", "--x", "drift_std=0.5,2", "--y", "read=1", "--workers", "0", *fast,
        "--out", str(tmp_path / "flipmap"))
    for kind, folder in (("device-advise", "advise"), ("device-flipmap", "flipmap")):
        tags = check_in_chromium(browser, kind, tmp_path / folder)
        assert {file for file, _, _, _ in tags} == {"advice.json" if folder == "advise" else "flipmap.json"}
