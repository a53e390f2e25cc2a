"""The results layer: typed reads of a stored run, shared by claims and figures.

A :class:`StoredRun` wraps a ``RunRecord`` (store rows) with the readers every
experiment needs, so no experiment writes its own "last value, nan if absent":

- ``series(name)``: steps and values, (T,) or (T, S) for S replicas
- ``last(name)``: the last logged value (a float, or an (S,) array per replica)
- ``at(name, step)``: the value logged at ``step`` (the last one at or before it)
- ``over_seeds(name)``: the last value per replica as an (S,) array
- ``config``: the stored config as its typed dataclass (when the experiment's
  ``Config`` is given), ``config_dict`` the plain dict

Missing metrics raise :class:`learnlab.claims.NotMeasured`, so a claim about a part that
did not run comes out ``inconclusive`` with the metric's name, never a silent NaN.

Example::

    run = StoredRun(store.get_run(run_id), Config)
    accuracy = run.over_seeds("quick/accuracy")      # (S,)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnlab.claims import NotMeasured
from learnlab.store import RunRecord, Series

__all__ = ["StoredRun", "find_run"]


def find_run(store, reference: str) -> RunRecord:
    """A run by id, unique id prefix, or ``latest`` (the newest run in the store)."""
    from learnlab.errors import StoreError

    if reference == "latest":
        runs = store.list_runs()
        if not runs:
            raise StoreError(f"No runs in {store.path}.")
        return max(runs, key=lambda r: r.started or 0)
    return store.get_run(reference)


class StoredRun:
    """Readers on one stored run (see the module docstring)."""

    def __init__(self, record: RunRecord, config_class: type | None = None):
        self.record = record
        self.config_dict: dict[str, Any] = record.config
        if config_class is not None:
            from learnlab import config as config_lib

            self.config = config_lib.from_dict(config_class, record.config)
        else:
            self.config = record.config
        self._cache: dict[str, Series] = {}

    # run identity, passed through
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def experiment(self) -> str:
        return self.record.experiment

    @property
    def preset(self) -> str | None:
        return self.record.preset

    @property
    def status(self) -> str:
        return self.record.status

    def names(self, prefix: str = "") -> list[str]:
        """The stored metric names starting with ``prefix``."""
        return [n for n in self.record.metric_names() if n.startswith(prefix)]

    def has(self, name: str) -> bool:
        return len(self.series(name)) > 0

    def series(self, name: str) -> Series:
        """Steps and values of ``name`` (empty when never logged)."""
        if name not in self._cache:
            self._cache[name] = self.record.series(name)
        return self._cache[name]

    def _required(self, name: str) -> Series:
        series = self.series(name)
        if not len(series):
            raise NotMeasured(f"metric '{name}' was not logged")
        return series

    def last(self, name: str) -> float | np.ndarray:
        """The last value of ``name``: a float for a scalar metric, (S,) for replicas."""
        values = self._required(name).values[-1]
        return float(values) if np.ndim(values) == 0 else np.asarray(values, dtype=np.float64)

    def at(self, name: str, step: int) -> float | np.ndarray:
        """The value of ``name`` at ``step`` (the last one logged at or before it)."""
        series = self._required(name)
        index = np.searchsorted(series.steps, step, side="right") - 1
        if index < 0:
            raise NotMeasured(f"metric '{name}' has no value at or before step {step}")
        values = series.values[index]
        return float(values) if np.ndim(values) == 0 else np.asarray(values, dtype=np.float64)

    def over_seeds(self, name: str) -> np.ndarray:
        """The last value per replica, (S,) (a scalar metric gives (1,))."""
        return np.atleast_1d(np.asarray(self.last(name), dtype=np.float64))

    def steps(self, name: str) -> np.ndarray:
        return self._required(name).steps

    def values(self, name: str) -> np.ndarray:
        """All values of ``name``: (T,) or (T, S)."""
        return self._required(name).values

    def artifact_path(self, name: str):
        return self.record.artifacts().get(name)

    @property
    def claims(self):
        """The claims checked when the run completed (``learnlab.claims.Claim``)."""
        return self.record.claims()

    def to_arrow(self):
        """Every metric row in long form: run, experiment, preset, seed, step, name, replica, value."""
        from learnlab.export import metrics_table

        return metrics_table(self.record.store, [self.id])

    def to_pandas(self):
        """``to_arrow()`` as a pandas DataFrame (needs pandas)."""
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return f"StoredRun({self.id!r}, {self.experiment}, preset={self.preset}, status={self.status})"
