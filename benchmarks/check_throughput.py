"""Entries per second of `shapecalc check` on generated 10,000-entry specs.

Usage: python benchmarks/check_throughput.py [--entries N] [--runs R]

Two specs, each written as JSON and as TOML to a temporary folder:
- "model-like": convolutions and LSTMs whose sizes cycle through 57 values,
  so that layers repeat as they do in a real model (114 distinct layers);
- "all distinct": no two entries describe the same layer, so that nothing is
  shared between entries (the worst case).
Every entry has expectations. The script times the whole
`shapecalc check FILE --format json` process (parse, compute, report) for each,
without --verify, and prints the median time and entries per second; then the
check in-process, without interpreter start-up or report. The start-up ratio
against `python -c "import typer"` is in startup.py.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPECALC = [sys.executable, "-c", "from shapecalc.cli import run; run()"]


def entries(n: int, distinct: bool = False) -> list[dict]:
    """A mix of convolutions and recurrent layers, every one with expectations."""
    layers = []
    for i in range(n):
        size = 8 + (i // 2 if distinct else i % 57)
        if i % 2:
            layers.append(
                {
                    "name": f"conv{i}",
                    "type": "Conv2d",
                    "in_channels": 3,
                    "out_channels": 8,
                    "kernel_size": 3,
                    "stride": 2,
                    "padding": 1,
                    "input_shape": [4, 3, size, size],
                    "expect": {"output": [4, 8, "*", (size + 1) // 2]},
                }
            )
        else:
            layers.append(
                {
                    "name": f"lstm{i}",
                    "type": "LSTM",
                    "input_size": size,
                    "hidden_size": 16,
                    "num_layers": 2,
                    "input_shape": [12, 4, size],
                    "expect": {"h_n": [2, 4, 16]},
                }
            )
    return layers


def to_toml(layers: list[dict]) -> str:
    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    return "".join(
        "[[layer]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in e.items()) + "\n"
        for e in layers
    )


# warm bytecode caches, as after pip install (see startup.py)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_time(argv: list[str], runs: int) -> float:
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=False, env=ENV)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, check=False, env=ENV)
        times.append(time.perf_counter() - start)
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}"
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.entries:,} entries, median of {args.runs} runs")
    with tempfile.TemporaryDirectory() as tmp:
        for spec, distinct in (("model-like", False), ("all distinct", True)):
            layers = entries(args.entries, distinct)
            files = {"json": Path(tmp, "spec.json"), "toml": Path(tmp, "spec.toml")}
            files["json"].write_text(json.dumps({"layer": layers}))
            files["toml"].write_text(to_toml(layers))
            for kind, path in files.items():
                argv = [*SHAPECALC, "check", str(path), "--format", "json"]
                seconds = median_time(argv, args.runs)
                print(
                    f"{spec:12}  {kind:4}  {seconds:6.2f} s  "
                    f"{args.entries / seconds:9,.0f} entries/s  (whole process)"
                )
            print(
                f"{spec:12}  json  in-process run_files: "
                f"{in_process(files['json']):9,.0f} entries/s (no start-up, no report)"
            )


def in_process(path: Path) -> float:
    from shapecalc.specs import run_files

    best = float("inf")
    gc.disable()  # as shapecalc check runs without --verify
    for _ in range(3):
        start = time.perf_counter()
        outcomes = run_files([str(path)])
        best = min(best, time.perf_counter() - start)
    gc.enable()
    assert all(o.status == "pass" for o in outcomes)
    return len(outcomes) / best


if __name__ == "__main__":
    main()
