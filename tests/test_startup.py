"""What the command line loads before it runs anything, and what the library leaves alone (issue 25):
`import weightprog.cli`, `--help` and argument errors load none of torch, matplotlib, scipy, numpy
(what is imported is tested here, not how long it takes: benchmarks/bench_startup.py times it),
and a whole `optimize` run leaves torch's thread count, matplotlib's backend and sys.path as they were."""

import json
import os
import subprocess
import sys
from pathlib import Path

import weightprog

HEAVY = ("torch", "matplotlib", "scipy", "numpy")
SRC = str(Path(weightprog.__file__).parent.parent)


def _python(code: str, cwd: Path | None = None) -> str:
    """stdout of `code` run by a fresh interpreter that imports this checkout's weightprog."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_command_line_loads_no_heavy_package():
    loaded = _python(f"import sys, weightprog, weightprog.cli; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert loaded.strip() == "[]"


def test_help_and_argument_errors_load_no_heavy_package():
    """Every command's --help, and a usage error of each kind, answered with the library unloaded."""
    code = f"""
import sys, click
from click.testing import CliRunner
from weightprog.cli import main

def walk(group, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from walk(cmd, (*path, name))

runner = CliRunner()
calls = [["--help"], ["--bogus"], ["nope"], ["optimize", "--pairs", "x"], ["optimize", "--mode", "nope"],
         ["compare-devices", "--naive", "nope", "pcm"], ["study", "--periphery", "nope", "--out", "x"],
         ["evaluate", "--normalise", "nope"], ["device", "advise", "--property", "nope", "pcm"],
         ["train", "--weight-noise", "nope", "ptb-lstm"]]
calls += [[*path, "--help"] for path in walk(main)]
codes = [runner.invoke(main, args).exit_code for args in calls]
print(codes.count(0), len(calls), [m for m in {HEAVY!r} if m in sys.modules])
"""
    ok, total, loaded = _python(code).split(" ", 2)
    assert int(ok) == int(total) - 9  # the nine errors exit 2, every --help 0
    assert loaded.strip() == "[]"


def test_the_light_choices_are_the_ones_the_library_uses():
    """choices.py restates what study.py and nn/periphery.py declare (they import nothing light yet)."""
    from weightprog import choices, sample, study
    from weightprog.nn.periphery import PRESETS
    assert tuple(PRESETS) == choices.PERIPHERIES
    assert study.SEARCH_ON == choices.SEARCH_ON and study.STUDY_PERIPHERY == choices.STUDY_PERIPHERY
    assert (sample.DEFAULT_SIZE, sample.DEFAULT_ROWS) == (choices.DEFAULT_SIZE, choices.DEFAULT_ROWS)


def test_every_public_name_resolves():
    """The package root loads its names on first use: each one in __all__ is there, and in dir()."""
    for name in weightprog.__all__:
        assert getattr(weightprog, name) is not None, name
    assert set(weightprog.__all__) <= set(dir(weightprog))


def test_optimize_leaves_threads_backend_and_sys_path_alone(tmp_path):
    """Importing weightprog and running `weightprog optimize` on a tiny problem (in this process, as
    a library user would call it) changes no process-wide state: torch's threads, matplotlib's
    backend (never selected: figures are built without pyplot), sys.path."""
    code = f"""
import json, sys
import matplotlib, torch
torch.set_num_threads(3)  # not what anything in the library would set
before = (torch.get_num_threads(), dict.__getitem__(matplotlib.rcParams, "backend"), list(sys.path))
import weightprog
from click.testing import CliRunner
from weightprog.cli import main
result = CliRunner().invoke(main, ["optimize", "--sample-size", "1024", "--significance", "1,2", "--method", "de",
                                   "--no-polish", "--max-generations", "2", "--popsize", "5", "--grid", "3",
                                   "--times", "1s,1y", "--rescore-blocks", "1", "--out", {str(tmp_path / "run")!r}])
assert result.exit_code == 0, result.output
after = (torch.get_num_threads(), dict.__getitem__(matplotlib.rcParams, "backend"), list(sys.path))
print(json.dumps([str(x) for x in before] == [str(x) for x in after]), "matplotlib.pyplot" in sys.modules)
"""
    same, pyplot = _python(code, cwd=tmp_path).split()
    assert json.loads(same)
    assert pyplot == "False"  # the figures never touched pyplot's global state
    assert (tmp_path / "run" / "strategy.png").is_file() and (tmp_path / "run" / "report.html").is_file()


def test_optimize_without_a_model_loads_no_network_code_scipy_stats_or_dynamo(tmp_path):
    """A default `optimize` (DE polished and the pointwise tables: both polish by Adam) imports
    neither weightprog.nn, scipy.stats, scipy.optimize (the DE is search/de.py) nor torch._dynamo
    (torch.optim's first step would): seconds of
    the README's main job (benchmarks/RESULTS.md, issue 26)."""
    code = f"""
import sys
from click.testing import CliRunner
from weightprog.cli import main
result = CliRunner().invoke(main, ["optimize", "--sample-size", "1024", "--significance", "1,2",
                                   "--max-generations", "2", "--popsize", "5", "--grid", "3", "--times", "1s,1y",
                                   "--rescore-blocks", "1", "--out", {str(tmp_path / "run")!r}])
assert result.exit_code == 0, result.output
unwanted = (["weightprog", "nn"], ["scipy", "stats"], ["scipy", "optimize"], ["torch", "_dynamo"])
print(sorted(m for m in sys.modules if m.split(".")[:2] in unwanted))
"""
    assert _python(code, cwd=tmp_path).strip() == "[]"
    assert (tmp_path / "run" / "report.html").is_file()


def test_python_dash_m_runs_the_command_line():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "weightprog", "--help"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.startswith("Usage: weightprog") and not done.stderr
