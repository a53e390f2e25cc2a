"""The run store: one SQLite file holding runs, their metrics, artifacts and claims.

Only this module knows SQL. Experiments never see it: they talk to a ``Run`` handle
(``learnlab.runner``), and the report and CLI read ``RunRecord`` views.

SQLite is opened in WAL mode with a busy timeout, and every write is one short
``BEGIN IMMEDIATE`` transaction, so a sweep's processes can write at once without
losing rows or failing on a locked database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnlab.claims import Claim
from learnlab.errors import StoreError

__all__ = ["Store", "RunRecord", "Series", "DEFAULT_STORE", "export_run", "import_run"]

DEFAULT_STORE = Path("runs") / "learnlab.sqlite"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    preset TEXT,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    git_commit TEXT,
    versions TEXT,
    device TEXT,
    started REAL,
    ended REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    replica INTEGER,            -- NULL for a scalar, else the index of the seed in an ensemble
    value REAL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, name, step);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    statement TEXT NOT NULL,
    measured TEXT NOT NULL,
    threshold TEXT NOT NULL,
    passed INTEGER NOT NULL,
    PRIMARY KEY (run_id, position)
);
-- Checked claims (learnlab.claims.Claim as JSON): kind, verdict, statistic, interval, sources.
-- The ``claims`` table above holds claims of runs made before claim kinds existed.
CREATE TABLE IF NOT EXISTS claim_checks (
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    verdict TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
"""


@dataclass(frozen=True)
class Series:
    """A metric over steps: ``values`` is (T,) for a scalar, (T, S) for S replicas."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


@dataclass
class RunRecord:
    """One run as stored, with read access to its metrics and artifacts."""

    id: str
    experiment: str
    preset: str | None
    config: dict[str, Any]
    config_hash: str
    seed: int
    status: str
    error: str | None
    git_commit: str | None
    versions: dict[str, str]
    device: str | None
    started: float | None
    ended: float | None
    store: Store = field(repr=False, compare=False)

    def series(self, name: str) -> Series:
        return self.store.series(self.id, name)

    def metric_names(self) -> list[str]:
        return self.store.metric_names(self.id)

    def artifacts(self) -> dict[str, Path]:
        return self.store.artifacts(self.id)

    def claims(self) -> list[Claim]:
        return self.store.claims(self.id)

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


class Store:
    """The SQLite run store at ``path`` (created on first use).

    Artifacts live in ``<store dir>/<run id>/`` and are recorded by path relative to
    the store's directory, so a store folder can be moved as a whole.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, *, timeout: float = 60.0):
        self.path = Path(path)
        self.root = self.path.parent
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None

    # -- connection ------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
                conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    with _write(conn):
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                elif version != _SCHEMA_VERSION:
                    raise StoreError(f"{self.path} has store schema {version}; this learnlab reads {_SCHEMA_VERSION}.")
            except sqlite3.DatabaseError as error:
                raise StoreError(f"{self.path} is not a learnlab run store ({error}).") from None
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __getstate__(self):  # a Store can be sent to a worker process; it reconnects there
        return {"path": self.path, "root": self.root, "_timeout": self._timeout, "_conn": None}

    # -- runs ------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        experiment: str,
        preset: str | None,
        config: dict[str, Any],
        config_hash: str,
        seed: int,
        git_commit: str | None,
        versions: dict[str, str],
        device: str,
    ) -> None:
        with _write(self.conn) as conn:
            conn.execute(
                "INSERT INTO runs (id, experiment, preset, config, config_hash, seed, status, git_commit,"
                " versions, device, started) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, experiment, preset, json.dumps(config), config_hash, seed, git_commit,
                 json.dumps(versions), device, time.time()),
            )

    def set_status(self, run_id: str, status: str, error: str | None = None, *, ended: bool = True) -> None:
        with _write(self.conn) as conn:
            conn.execute(
                "UPDATE runs SET status = ?, error = ?, ended = ? WHERE id = ?",
                (status, error, time.time() if ended else None, run_id),
            )

    def get_run(self, run_id: str) -> RunRecord:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            matches = self.conn.execute("SELECT * FROM runs WHERE id LIKE ?", (run_id + "%",)).fetchall()
            if len(matches) != 1:
                raise StoreError(f"No run '{run_id}' in {self.path}." if not matches
                                 else f"Run id '{run_id}' is ambiguous in {self.path}.")
            row = matches[0]
        return self._record(row)

    def completed_config_hashes(self) -> set[str]:
        """The config hashes of completed runs (a restarted sweep skips those points)."""
        return {h for (h,) in self.conn.execute("SELECT config_hash FROM runs WHERE status = 'completed'")}

    def list_runs(self, experiment: str | None = None, status: str | None = None) -> list[RunRecord]:
        query, args = "SELECT * FROM runs WHERE 1 = 1", []
        if experiment is not None:
            query, args = query + " AND experiment = ?", args + [experiment]
        if status is not None:
            query, args = query + " AND status = ?", args + [status]
        return [self._record(row) for row in self.conn.execute(query + " ORDER BY started, rowid", args)]

    def _record(self, row: Sequence) -> RunRecord:
        (run_id, experiment, preset, config, config_hash, seed, status, error, git_commit, versions,
         device, started, ended) = row
        return RunRecord(run_id, experiment, preset, json.loads(config), config_hash, seed, status, error,
                         git_commit, json.loads(versions or "{}"), device, started, ended, store=self)

    # -- metrics ---------------------------------------------------------------------

    def add_metrics(self, rows: Iterable[tuple[str, int, str, int | None, float]]) -> None:
        """Insert ``(run_id, step, name, replica, value)`` rows in one transaction."""
        rows = list(rows)
        if rows:
            with _write(self.conn) as conn:
                conn.executemany("INSERT INTO metrics (run_id, step, name, replica, value) VALUES (?, ?, ?, ?, ?)", rows)

    def delete_metrics_after(self, run_id: str, step: int, scope: str = "") -> None:
        """Drop metrics of ``scope`` logged after ``step`` (a resumed run logs them again).

        A scope is a metric-name prefix ``scope/``; the empty scope is the names without one.
        Nested scopes (``scope/inner/...``) are left alone: they resume on their own.
        """
        if not scope:
            pattern, args = "instr(name, '/') = 0", (run_id, step)
        else:
            prefix = scope + "/"
            pattern = "substr(name, 1, length(?)) = ? AND instr(substr(name, length(?) + 1), '/') = 0"
            args = (run_id, step, prefix, prefix, prefix)
        with _write(self.conn) as conn:
            conn.execute(f"DELETE FROM metrics WHERE run_id = ? AND step > ? AND {pattern}", args)

    def metric_names(self, run_id: str) -> list[str]:
        rows = self.conn.execute("SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name", (run_id,))
        return [name for (name,) in rows]

    def series(self, run_id: str, name: str) -> Series:
        rows = self.conn.execute(
            "SELECT step, replica, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step, replica",
            (run_id, name),
        ).fetchall()
        if not rows:
            return Series(np.zeros(0, dtype=np.int64), np.zeros(0))
        steps = np.array(sorted({step for step, _, _ in rows}), dtype=np.int64)
        replicas = sorted({replica for _, replica, _ in rows if replica is not None})
        values = [np.nan if value is None else value for _, _, value in rows]
        if not replicas:
            return Series(steps, np.asarray(values, dtype=np.float64))
        table = np.full((len(steps), max(replicas) + 1), np.nan)
        step_index = {step: i for i, step in enumerate(steps)}
        for (step, replica, _), value in zip(rows, values):
            table[step_index[step], replica] = value
        return Series(steps, table)

    def final_metrics(self, run_id: str) -> dict[str, float]:
        """The last logged value of each metric (the mean over replicas for an ensemble)."""
        rows = self.conn.execute(
            "SELECT m.name, AVG(m.value) FROM metrics m JOIN ("
            " SELECT name, MAX(step) AS step FROM metrics WHERE run_id = ? GROUP BY name) last"
            " ON m.name = last.name AND m.step = last.step WHERE m.run_id = ? GROUP BY m.name ORDER BY m.name",
            (run_id, run_id),
        )
        return dict(rows.fetchall())

    def all_metrics(self, run_id: str) -> list[tuple[int, str, int | None, float]]:
        """Every metric row of a run, in a canonical order (for comparisons)."""
        return self.conn.execute(
            "SELECT step, name, replica, value FROM metrics WHERE run_id = ? ORDER BY name, step, replica",
            (run_id,),
        ).fetchall()

    # -- artifacts and claims --------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def set_artifact(self, run_id: str, name: str, path: Path) -> None:
        relative = Path(path).resolve().relative_to(self.root.resolve())
        with _write(self.conn) as conn:
            conn.execute("INSERT OR REPLACE INTO artifacts (run_id, name, path) VALUES (?, ?, ?)",
                         (run_id, name, str(relative)))

    def artifacts(self, run_id: str) -> dict[str, Path]:
        rows = self.conn.execute("SELECT name, path FROM artifacts WHERE run_id = ? ORDER BY name", (run_id,))
        return {name: self.root / path for name, path in rows}

    def set_claims(self, run_id: str, claims: Sequence[Claim]) -> None:
        with _write(self.conn) as conn:
            conn.execute("DELETE FROM claim_checks WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM claims WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT INTO claim_checks VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, i, c.name, c.kind, c.verdict, json.dumps(c.to_dict())) for i, c in enumerate(claims)],
            )

    def claims(self, run_id: str) -> list[Claim]:
        rows = self.conn.execute("SELECT data FROM claim_checks WHERE run_id = ? ORDER BY position", (run_id,))
        checked = [Claim.from_dict(json.loads(data)) for (data,) in rows]
        if checked:
            return checked
        # A run checked before claims had kinds: shown as unclassified until ``show --recheck``.
        legacy = self.conn.execute(
            "SELECT name, statement, measured, threshold, passed FROM claims WHERE run_id = ? ORDER BY position",
            (run_id,),
        )
        return [Claim(name, "unclassified", statement, "pass" if passed else "fail", threshold=threshold,
                      detail=measured) for name, statement, measured, threshold, passed in legacy]


# -- moving runs between stores (a cluster worker runs into its own store; the driver merges) --

def export_run(store: Store, run_id: str, *, max_artifact_bytes: int = 64 << 20) -> dict[str, Any]:
    """Everything of one run as plain data: its row, metrics, claims and artifact files (bytes;
    checkpoints are left out - a finished run does not need them, and they can be large)."""
    columns = [d[1] for d in store.conn.execute("PRAGMA table_info(runs)")]
    row = store.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise StoreError(f"No run '{run_id}' in {store.path}.")
    files = {}
    for name, path in store.artifacts(run_id).items():
        if name.startswith("checkpoint") or not path.is_file() or path.stat().st_size > max_artifact_bytes:
            continue
        files[name] = (str(path.relative_to(store.root / run_id)), path.read_bytes())
    metrics = store.conn.execute("SELECT step, name, replica, value FROM metrics WHERE run_id = ? ORDER BY rowid",
                                 (run_id,)).fetchall()
    return {"run": dict(zip(columns, row)), "metrics": metrics, "claims": [c.to_dict() for c in store.claims(run_id)],
            "files": files}


def import_run(store: Store, exported: dict[str, Any]) -> str:
    """Write an ``export_run`` result into ``store`` (one transaction for the rows); returns its id."""
    run = exported["run"]
    run_id = run["id"]
    directory = store.run_dir(run_id)
    paths = {}
    for name, (relative, data) in exported["files"].items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        paths[name] = str(target.resolve().relative_to(store.root.resolve()))
    with _write(store.conn) as conn:
        conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                     tuple(run.values()))
        conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
        conn.executemany("INSERT INTO metrics (run_id, step, name, replica, value) VALUES (?, ?, ?, ?, ?)",
                         [(run_id, *m) for m in exported["metrics"]])
        conn.executemany("INSERT OR REPLACE INTO artifacts (run_id, name, path) VALUES (?, ?, ?)",
                         [(run_id, name, path) for name, path in paths.items()])
    store.set_claims(run_id, [c if isinstance(c, Claim) else Claim.from_dict(c) for c in exported["claims"]])
    return run_id


class _write:
    """One ``BEGIN IMMEDIATE`` transaction: takes the write lock up front, so two writers
    wait on the busy timeout instead of deadlocking on a lock upgrade."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
