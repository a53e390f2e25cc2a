"""``make bench``: run every benchmark and print one table.

Each benchmark script prints ``BENCH {json}`` rows (``benchmarks/_table.py``): a path, its
time, the baseline measured in the same run, their ratio, and the target. The table
lists them all; a script that fails is named with its last error line.

    python benchmarks/all.py [--only mamba icl_markov] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["icl_markov", "mamba", "ensemble", "corgi2", "run", "pareto_frontiers", "linear_ar", "theory", "subtuning",
           "cli_start"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names (default: all)")
    args = parser.parse_args()
    rows, failures = [], []
    for name in args.only or SCRIPTS:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        found = [json.loads(line[6:]) for line in result.stdout.splitlines() if line.startswith("BENCH ")]
        print(f"{name}: {len(found)} rows in {seconds:.0f} s", file=sys.stderr)
        if result.returncode != 0:
            failures.append((name, (result.stderr.strip().splitlines() or ["no output"])[-1]))
        rows += [(name, r) for r in found]
    header = ("benchmark", "path", "time", "baseline (same run)", "ratio", "target")
    table = [header]
    for name, r in rows:
        time_text = f"{r['seconds'] * 1e3:.1f} ms" if r["unit"] == "s" and r["seconds"] < 1 else \
            f"{r['seconds']:.2f} {r['unit']}"
        baseline = "" if r["baseline"] is None else f"{r['baseline']}: " + (
            f"{r['baseline_seconds'] * 1e3:.1f} ms" if r["baseline_seconds"] < 1 else f"{r['baseline_seconds']:.2f} s")
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        table.append((name, r["path"], time_text, baseline, ratio, r["target"]))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for i, line in enumerate(table):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))
    for name, error in failures:
        print(f"{name} failed: {error}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
