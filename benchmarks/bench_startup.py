"""Start-up of the command line: wall time of `weightprog --help`, `weightprog optimize --help` and an
argument error (`weightprog optimize --pairs x`), each in a fresh interpreter, and which heavy
packages `import weightprog.cli` loads (target, issue 25: ≤ 0.5 s, and none of torch, matplotlib,
scipy, numpy).

    python benchmarks/bench_startup.py [--runs 5]

Runs the package found on `sys.path` (set PYTHONPATH=src to time a checkout rather than the install).
"""

import argparse
import platform
import statistics
import subprocess
import sys
import time

ENTRY = "import sys; from weightprog.cli import main; sys.argv[0] = 'weightprog'; main()"
COMMANDS = {
    "weightprog --help": ["--help"],
    "weightprog optimize --help": ["optimize", "--help"],
    "weightprog optimize --pairs x": ["optimize", "--pairs", "x"],
    "weightprog --bogus": ["--bogus"],
}
HEAVY = ("torch", "matplotlib", "scipy", "numpy")


def heavy_imports() -> list[str]:
    """The heavy packages a fresh interpreter holds after `import weightprog.cli`."""
    code = f"import sys, weightprog.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def time_command(args: list[str], runs: int) -> list[float]:
    """Wall seconds of `runs` fresh runs of the command line with `args`."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {platform.python_version()}, {args.runs} runs each")
    print(f"import weightprog.cli loads: {', '.join(heavy_imports()) or 'none of ' + ', '.join(HEAVY)}")
    print("| command | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for label, argv in COMMANDS.items():
        t = time_command(argv, args.runs)
        print(f"| `{label}` | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")


if __name__ == "__main__":
    main()
