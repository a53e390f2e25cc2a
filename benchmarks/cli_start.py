"""How long the ``learnlab`` command takes to print: ``--help``, ``list``, ``runs``, ``show``.

Target (issue 20): each well under 1 s. Baseline: importing every experiment module (what
``list`` did before the registry), measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import row  # noqa: E402

LEARNLAB = [sys.executable, "-m", "learnlab"]


def best_of(command: list[str], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    baseline = best_of([sys.executable, "-c", "from learnlab.experiments import EXPERIMENTS, get_experiment\n"
                        "[get_experiment(n).presets() for n in EXPERIMENTS]"], repeats=1)
    with tempfile.TemporaryDirectory() as folder:
        store = str(Path(folder) / "s.sqlite")
        for name, args in (("learnlab --help", ["--help"]), ("learnlab list", ["list"]),
                           ("learnlab runs", ["runs", "--store", store]),
                           ("learnlab show latest", ["show", "latest", "--store", store])):
            seconds = best_of(LEARNLAB + args)
            print(f"{name}: {seconds:.2f} s (importing every experiment: {baseline:.2f} s)")
            row(name, seconds, baseline="import every experiment", baseline_seconds=baseline, target="< 1 s")


if __name__ == "__main__":
    main()
