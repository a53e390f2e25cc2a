"""One row format for every benchmark, so ``make bench`` prints a single table.

A benchmark calls ``row(...)`` for each path it measures; the row is printed as a line
``BENCH {json}`` that ``benchmarks/all.py`` collects. Run alone, a script prints its own
human-readable output as well.
"""

from __future__ import annotations

import json

__all__ = ["row"]


def row(path: str, seconds: float, *, baseline: str | None = None, baseline_seconds: float | None = None,
        target: str = "", unit: str = "s") -> None:
    """Print one table row: ``path`` took ``seconds``; ``baseline`` (measured in the same
    run) took ``baseline_seconds``; ``target`` is the issue's goal in words."""
    ratio = None if not baseline_seconds or not seconds else baseline_seconds / seconds
    print("BENCH " + json.dumps({"path": path, "seconds": seconds, "unit": unit, "baseline": baseline,
                                 "baseline_seconds": baseline_seconds, "ratio": ratio, "target": target}), flush=True)
