"""Grids of runs. Each grid point is one run in the store.

The executor is an interface (``Executor``): the local process pool is the default,
and a cluster engine can be added later without touching experiments. Every point is
validated before any runs, so a bad grid writes nothing.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from learnlab import config as config_lib
from learnlab.errors import ConfigError
from learnlab.experiments import get_experiment, resolve_preset
from learnlab.runner import RunOutcome, execute
from learnlab.store import Store

__all__ = ["SweepPoint", "Executor", "LocalPoolExecutor", "expand_grid", "run_sweep"]


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: the experiment, its preset and the full resolved config."""

    experiment: str
    preset: str | None
    overrides: tuple[tuple[str, str], ...]
    config: dict[str, Any]


class Executor(Protocol):
    """Runs sweep points and yields their outcomes as they finish."""

    def map(self, points: Sequence[SweepPoint], store_path: Path, device: str, quiet: bool) -> Iterator[tuple[SweepPoint, RunOutcome]]: ...


def expand_grid(experiment: str, preset: str, grid: Sequence[str], overrides: Sequence[str] = ()) -> list[SweepPoint]:
    """The cross product of ``key=v1,v2`` axes, each point validated.

    Raises ``ConfigError`` for a malformed axis or any invalid point.
    """
    module = get_experiment(experiment)
    base = config_lib.apply_overrides(resolve_preset(module, preset), list(overrides))
    axes = []
    for axis in grid:
        if "=" not in axis:
            raise ConfigError(f"Grid axis {axis!r} is not of the form key=v1,v2,...")
        key, values = axis.split("=", 1)
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not choices:
            raise ConfigError(f"Grid axis '{key}' has no values.")
        axes.append([(key.strip(), value) for value in choices])
    points = []
    for combination in itertools.product(*axes):
        cfg = config_lib.apply_overrides(base, [f"{k}={v}" for k, v in combination])
        points.append(SweepPoint(experiment, preset, tuple(combination), config_lib.to_dict(cfg)))
    return points


def _run_point(point: SweepPoint, store_path: str, device: str, quiet: bool, threads: int | None) -> RunOutcome:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    module = get_experiment(point.experiment)
    cfg = config_lib.from_dict(module.Config, point.config)
    store = Store(store_path)
    try:
        return execute(module, cfg, store=store, preset=point.preset, device=device, quiet=quiet)
    finally:
        store.close()


class LocalPoolExecutor:
    """A pool of ``jobs`` local processes (``spawn``, so each worker starts clean)."""

    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise ConfigError(f"--jobs must be an int >= 1. Got {jobs}.")
        self.jobs = jobs

    def map(self, points, store_path, device, quiet):
        if self.jobs == 1:
            for point in points:
                yield point, _run_point(point, str(store_path), device, quiet, None)
            return
        # Split the cores between workers so they do not oversubscribe each other.
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_point, p, str(store_path), device, True, threads): p for p in points}
            for future in as_completed(futures):
                point = futures[future]
                try:
                    yield point, future.result()
                except Exception as error:  # a worker that died takes only its own point down
                    yield point, RunOutcome("", "failed", f"{type(error).__name__}: {error}")


def run_sweep(points: Sequence[SweepPoint], *, store: Store, executor: Executor, device: str = "auto",
              quiet: bool = False) -> list[tuple[SweepPoint, RunOutcome]]:
    """Run every point through ``executor``; return ``(point, outcome)`` in completion order."""
    return list(executor.map(points, store.path, device, quiet))
