"""Start-up of a shape query against `python -c "import typer"`, in one run.

Usage: python benchmarks/startup.py [--runs N]

Prints the median wall time of each command over N alternating runs and its
ratio to the baseline measured in the same run. Figures, not a test.

Bytecode caches are warm, as after `pip install` (which compiles them): the
runs ignore PYTHONDONTWRITEBYTECODE, and one untimed run of each command
writes the caches first. Otherwise every run of an editable install compiles
shapecalc from source while typer's caches are already there.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPECALC = [sys.executable, "-c", "from shapecalc.cli import run; run()"]
CONV = [
    "conv",
    "--in-channels",
    "3",
    "--out-channels",
    "16",
    "--kernel-size",
    "3",
    "--stride",
    "2",
    "--padding",
    "1",
    "--input-shape",
    "8,3,224,224",
]
COMMANDS = {
    "baseline: python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "shapecalc conv ... --format json": SHAPECALC + CONV + ["--format", "json"],
    "shapecalc conv ... --format table": SHAPECALC + CONV + ["--format", "table"],
}


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each command")
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():
        time_once(argv)  # writes the bytecode caches
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(time_once(argv))
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = next(iter(medians.values()))
    print(f"python {sys.version.split()[0]}, {runs} runs each, {Path.cwd().name}")
    for name, median in medians.items():
        print(f"{name:40} {median * 1000:7.1f} ms  {median / base:5.2f}x")


if __name__ == "__main__":
    main()
