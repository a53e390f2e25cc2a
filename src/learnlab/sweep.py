"""Grids of runs. Each grid point is one run in the store.

The executor is an interface (``Executor``): the local process pool is the default;
``RayExecutor`` (a Ray task a point, on a cluster you already run) and ``SlurmExecutor``
(a SLURM job a point, through submitit) run points elsewhere. Remote points run into a
store of their own on the worker and send the finished run back; only the driver writes
the sweep's store (no SQLite writes across nodes). Every point is validated before any
runs, so a bad grid writes nothing; a restarted sweep skips the points the store already
holds as completed (by config hash), so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from learnlab import config as config_lib
from learnlab._lifecycle import die_with_parent
from learnlab.errors import ConfigError
from learnlab.experiments import get_experiment, resolve_preset
from learnlab.runner import RunOutcome, check_seed, config_hash, execute
from learnlab.store import Store, export_run, import_run

__all__ = ["SweepPoint", "Executor", "LocalPoolExecutor", "RayExecutor", "SlurmExecutor", "expand_grid", "run_sweep",
           "run_point_isolated"]


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
        check_seed(cfg)
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
    """A pool of ``jobs`` local processes (``spawn``, so each worker starts clean); the
    workers exit when the driver does, however it dies (``_lifecycle.die_with_parent``)."""

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
        with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_run_point, p, str(store_path), device, True, threads): p for p in points}
            for future in as_completed(futures):
                point = futures[future]
                try:
                    yield point, future.result()
                except Exception as error:  # a worker that died takes only its own point down
                    yield point, RunOutcome("", "failed", f"{type(error).__name__}: {error}")


def run_point_isolated(point: SweepPoint, device: str, threads: int | None = None) -> tuple[RunOutcome, dict]:
    """Run one point into a temporary store of its own (on a remote worker); return its
    outcome and the exported run (``store.export_run``) for the driver to merge."""
    with tempfile.TemporaryDirectory(prefix="learnlab-point-") as directory:
        path = Path(directory) / "point.sqlite"
        outcome = _run_point(point, str(path), device, True, threads)
        store = Store(path)
        try:
            return outcome, export_run(store, outcome.run_id)
        finally:
            store.close()


def _record_failure(store: Store, point: SweepPoint, error: str) -> RunOutcome:
    """A point whose worker died (no run came back): a failed run with the error, so the store says so."""
    import uuid

    run_id = uuid.uuid4().hex[:10]
    store.create_run(run_id, experiment=point.experiment, preset=point.preset, config=point.config,
                     config_hash=config_hash(point.experiment, point.config), seed=int(point.config.get("seed", 0)),
                     git_commit=None, versions={}, device="")
    store.set_status(run_id, "failed", error)
    return RunOutcome(run_id, "failed", error)


class _RemoteExecutor:
    """Shared by Ray and SLURM: submit points, merge finished runs into the driver's store,
    resubmit a failed point up to ``retries`` more times, record the last failure."""

    retries: int

    def _submit(self, point: SweepPoint, device: str):  # -> a handle
        raise NotImplementedError

    def _wait(self, handles: list) -> tuple[Any, tuple[RunOutcome, dict | None] | BaseException]:
        raise NotImplementedError

    def map(self, points, store_path, device, quiet):
        store = Store(store_path)
        try:
            pending = {self._submit(point, device): (point, 0) for point in points}
            while pending:
                handle, result = self._wait(list(pending))
                point, attempt = pending.pop(handle)
                if isinstance(result, BaseException):
                    outcome, exported = RunOutcome("", "failed", f"{type(result).__name__}: {result}"), None
                else:
                    outcome, exported = result
                if outcome.status != "completed" and attempt < self.retries:
                    pending[self._submit(point, device)] = (point, attempt + 1)
                    continue
                if exported is not None:
                    import_run(store, exported)
                    yield point, outcome
                else:
                    yield point, _record_failure(store, point, outcome.error or "the worker returned nothing")
        finally:
            store.close()


class RayExecutor(_RemoteExecutor):
    """Each point a Ray task with its CPU/GPU request, on the cluster at ``address`` (None:
    a cluster already initialised in this process, or a local one started here)."""

    def __init__(self, address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
                 retries: int = 1, local_cpus: int | None = None):
        try:
            import ray
        except ImportError as error:
            raise ConfigError("--executor ray needs Ray: pip install learnlab[ray]") from error
        if cpus_per_run <= 0 or gpus_per_run < 0 or retries < 0:
            raise ConfigError("cpus per run must be > 0, GPUs per run >= 0 and retries >= 0")
        self.ray, self.retries = ray, retries
        if not ray.is_initialized():  # local_cpus: the size of a local instance started here
            ray.init(address=address, num_cpus=local_cpus if address is None else None, log_to_driver=False)
        self._task = ray.remote(run_point_isolated).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                                             max_retries=0)
        self.threads = max(1, int(cpus_per_run))

    def _submit(self, point, device):
        return self._task.remote(point, device, self.threads)

    def _wait(self, handles):
        [done], _ = self.ray.wait(handles, num_returns=1)
        try:
            return done, self.ray.get(done)
        except Exception as error:  # the task raised or its worker died
            return done, error


class SlurmExecutor(_RemoteExecutor):
    """Each point a SLURM job through submitit (``partition``, ``time`` in minutes, ``gpus``
    per job). ``cluster="local"`` runs the jobs as local processes (submitit's LocalExecutor),
    for tests and for a machine without SLURM; ``"debug"`` runs them in this process."""

    def __init__(self, folder: str | Path, partition: str | None = None, time: int = 60, gpus: int = 0,
                 cpus: int = 1, retries: int = 1, cluster: str | None = None):
        try:
            import submitit
        except ImportError as error:
            raise ConfigError("--executor slurm needs submitit: pip install learnlab[slurm]") from error
        if time < 1 or gpus < 0 or cpus < 1 or retries < 0:
            raise ConfigError("--time must be >= 1 minute, --gpus >= 0, cpus >= 1 and retries >= 0")
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        parameters = {"timeout_min": time, "cpus_per_task": cpus}
        if gpus:
            parameters["gpus_per_node"] = gpus
        if partition is not None and self.executor.cluster == "slurm":
            parameters["slurm_partition"] = partition
        self.executor.update_parameters(**parameters)
        self.retries, self.threads = retries, cpus

    def _submit(self, point, device):
        return self.executor.submit(run_point_isolated, point, device, self.threads)

    def _wait(self, handles):
        import time

        while True:
            for job in handles:
                if job.done():
                    try:
                        return job, job.result()
                    except Exception as error:
                        return job, error
            time.sleep(0.2)


def pending_points(points: Sequence[SweepPoint], store: Store) -> list[SweepPoint]:
    """The points the store does not hold as a completed run (same experiment and config)."""
    done = store.completed_config_hashes()
    return [p for p in points if config_hash(p.experiment, p.config) not in done]


def run_sweep(points: Sequence[SweepPoint], *, store: Store, executor: Executor, device: str = "auto",
              quiet: bool = False, skip_completed: bool = True) -> Iterator[tuple[SweepPoint, RunOutcome]]:
    """Run every point (only those not completed yet, by default) through ``executor``;
    yield ``(point, outcome)`` in completion order, as each finishes."""
    todo = pending_points(points, store) if skip_completed else list(points)
    yield from executor.map(todo, store.path, device, quiet)
