"""The run store: one SQLite file holding runs, their metrics, artifacts and claims.

Only this module knows SQL. Experiments never see it: they talk to a ``Run`` handle
(``learnlab.runner``), and the report and CLI read ``RunRecord`` views.

SQLite is opened in WAL mode with a busy timeout, and every write is one short
``BEGIN IMMEDIATE`` transaction, so a sweep's processes can write at once without
losing rows or failing on a locked database.

A learnlab store is marked as one (``PRAGMA application_id``) and carries its schema
version (``PRAGMA user_version``). Any other file is refused unchanged: the header is
read before SQLite opens it, and nothing is written to a file that is not a learnlab
store. A new store's schema is built under SQLite's write lock (processes creating one
at once share one); until it is committed the file is empty, and an empty file is no
store. A store on read-only media is read without side files and refuses writes; a path
without a store reads as empty and is never created by a read.

A run being trained holds a lease: its owner process, host and a heartbeat time, in the
``runs`` row. ``acquire_lease`` refuses a live lease and takes over a stale one (its owner
is dead, or its heartbeat is older than ``LEASE_STALE_S``).
"""

from __future__ import annotations

import collections
import json
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnlab.claims import Claim
from learnlab.errors import LeaseLost, StoreError

__all__ = ["Store", "RunRecord", "Series", "DEFAULT_STORE", "export_run", "import_run", "lease_owner", "scoped_name",
           "LEASE_HEARTBEAT_S", "LEASE_STALE_S"]

DEFAULT_STORE = Path("runs") / "learnlab.sqlite"
_APPLICATION_ID = 0x6C6C6162  # "llab": PRAGMA application_id of every learnlab store
_SCHEMA_VERSION = 2  # 1: before application_id, leases and metric sequence numbers
_LEGACY_TABLES = {"runs", "metrics", "artifacts"}  # what a version-1 store (application_id 0) must hold
LEASE_HEARTBEAT_S = 30.0  # a running run refreshes its heartbeat this often
LEASE_STALE_S = 180.0  # a lease whose heartbeat is older than this is stale (its owner hung or vanished)
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
    ended REAL,
    owner_pid INTEGER,          -- the lease of a running run: its process, host and last heartbeat
    owner_host TEXT,
    heartbeat REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    replica INTEGER,            -- NULL for a scalar, else the index of the seed in an ensemble
    value REAL,
    seq INTEGER                 -- the write batch (counters.metric_batch), so a checkpoint marks what came before it
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
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
        self._empty: sqlite3.Connection | None = None  # what a read of a missing store sees
        self._heartbeats: dict[str, _Heartbeat] = {}  # leases this process holds: run id -> its heartbeat

    # -- connection ------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; the first use creates the store if there is none (a write will follow)."""
        if self._conn is None:
            self._conn = self._open(create=True)
        return self._conn

    @property
    def _reader(self) -> sqlite3.Connection:
        """A connection for reading: a missing store reads as an empty one and is not created."""
        if self._conn is not None:
            return self._conn
        if not self.exists():
            if self._empty is None:
                self._empty = sqlite3.connect(":memory:", isolation_level=None)
                with _write(self._empty):
                    _create_schema(self._empty)
            return self._empty
        self._conn = self._open(create=False)
        return self._conn

    def exists(self) -> bool:
        """Whether a store file is there (an empty file is not a store yet)."""
        try:
            return self.path.stat().st_size > 0
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _open(self, *, create: bool) -> sqlite3.Connection:
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a run store.")
        if not self.exists():
            if not create:
                raise StoreError(f"No run store at {self.path}.")
            self._create()
        key = str(self.path.resolve())
        with _OPEN_LOCK:
            # Closing any descriptor of the file drops every POSIX lock this process holds on it,
            # SQLite's included (sqlite.org/howtocorrupt.html, 2.2): read the header with a plain
            # open() only while no connection of this process has the store open.
            if not _OPEN_CONNECTIONS[key]:
                _check_header(self.path)
            _OPEN_CONNECTIONS[key] += 1
        try:
            return self._connect()
        except BaseException:
            with _OPEN_LOCK:
                _OPEN_CONNECTIONS[key] -= 1
            raise

    def _connect(self) -> sqlite3.Connection:
        writable = os.access(self.path, os.W_OK) and os.access(self.root, os.W_OK)
        try:
            if not writable:  # read-only media: no -wal / -shm files, no writes
                uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro&immutable=1"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, factory=_Connection)
                conn.readonly, conn.path = True, self.path
                version = _learnlab_version(conn, self.path)
                if version > _SCHEMA_VERSION:
                    raise StoreError(f"{self.path} has store schema {version}; this learnlab reads up to "
                                     f"{_SCHEMA_VERSION}.")
                return conn
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, factory=_Connection)
            conn.path = self.path
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
                version = _learnlab_version(conn, self.path)  # reads only: a foreign file is left as it was
                if version > _SCHEMA_VERSION:
                    raise StoreError(f"{self.path} has store schema {version}; this learnlab reads up to "
                                     f"{_SCHEMA_VERSION}.")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                if version < _SCHEMA_VERSION:
                    _migrate(conn, self.path)
            except BaseException:
                conn.close()
                raise
            return conn
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            # UnicodeDecodeError: SQLite's message quotes bytes of a damaged schema that are not UTF-8.
            raise StoreError(f"{self.path} is not a readable learnlab run store ({error}).") from None

    def _create(self) -> None:
        """Make the store file and its schema, under SQLite's write lock: of processes creating
        one at once, the first builds it and the others find it built. A reader sees no store
        until the schema is committed (the file stays empty until then)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o666))  # never truncates
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except OSError as error:
            raise StoreError(f"cannot create a run store at {self.path} ({error.strerror}).") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                empty = not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if empty and conn.execute("PRAGMA application_id").fetchone()[0] == 0:
                    _create_schema(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot create a run store at {self.path} ({error}).") from None
        finally:
            conn.close()

    def close(self) -> None:
        for beat in self._heartbeats.values():
            beat.stop()
        self._heartbeats.clear()
        if self._conn is not None:
            self._conn.close()
            with _OPEN_LOCK:
                _OPEN_CONNECTIONS[str(self.path.resolve())] -= 1
        if self._empty is not None:
            self._empty.close()
        self._conn = self._empty = None

    def __getstate__(self):  # a Store can be sent to a worker process; it reconnects there
        return {"path": self.path, "root": self.root, "_timeout": self._timeout, "_conn": None, "_empty": None,
                "_heartbeats": {}}

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
        lease: bool = False,
    ) -> None:
        """Record a new run as ``running``; ``lease=True``: held by this process (``acquire_lease``)."""
        pid, host = lease_owner() if lease else (None, None)
        with _write(self.conn) as conn:
            conn.execute(
                "INSERT INTO runs (id, experiment, preset, config, config_hash, seed, status, git_commit,"
                " versions, device, started, owner_pid, owner_host, heartbeat)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (run_id, experiment, preset, json.dumps(config), config_hash, seed, git_commit,
                 json.dumps(versions), device, time.time(), pid, host, time.time() if lease else None),
            )
        if lease:
            self._hold(run_id)

    def set_status(self, run_id: str, status: str, error: str | None = None, *, ended: bool = True) -> None:
        """Set a run's status; an ended run (``ended=True``) releases its lease."""
        if ended and run_id in self._heartbeats:
            self._heartbeats.pop(run_id).stop()
        with _write(self.conn) as conn:
            if ended:
                conn.execute("UPDATE runs SET status = ?, error = ?, ended = ?, owner_pid = NULL, owner_host = NULL,"
                             " heartbeat = NULL WHERE id = ?", (status, error, time.time(), run_id))
            else:
                conn.execute("UPDATE runs SET status = ?, error = ?, ended = NULL WHERE id = ?",
                             (status, error, run_id))

    def lease_holder(self, run_id: str) -> str | None:
        """Who holds a live lease on the run (a description), or ``None`` if nobody does."""
        row = self._reader.execute("SELECT owner_pid, owner_host, heartbeat FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
        return None if row is None else _lease_holder(*row, time.time())

    def acquire_lease(self, run_id: str) -> None:
        """Take the run's lease for this process and mark it ``running``, in one transaction:
        a live lease of another process is refused, a stale one (dead owner, old heartbeat) taken over."""
        pid, host = lease_owner()
        with _write(self.conn) as conn:
            row = conn.execute("SELECT owner_pid, owner_host, heartbeat FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"No run '{run_id}' in {self.path}.")
            holder = _lease_holder(*row, time.time())
            if holder is not None:
                raise StoreError(f"Run {run_id} is still running ({holder}); resume it once that process has stopped.")
            conn.execute("UPDATE runs SET status = 'running', error = NULL, ended = NULL, owner_pid = ?,"
                         " owner_host = ?, heartbeat = ? WHERE id = ?", (pid, host, time.time(), run_id))
        self._hold(run_id)

    def _hold(self, run_id: str) -> None:
        """Keep this process's lease on the run fresh until the run ends (``set_status``)."""
        if run_id in self._heartbeats:
            self._heartbeats.pop(run_id).stop()
        self._heartbeats[run_id] = _Heartbeat(self.path, run_id, self._timeout)
        self._heartbeats[run_id].start()

    def heartbeat(self, run_id: str) -> bool:
        """Refresh this process's lease on the run; ``False`` if it no longer holds it."""
        pid, host = lease_owner()
        with _write(self.conn) as conn:
            cursor = conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ? AND owner_pid = ? AND owner_host = ?",
                                  (time.time(), run_id, pid, host))
            return cursor.rowcount == 1

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with it."""
        if not self.exists():
            raise StoreError(f"No run '{run_id}': there is no run store at {self.path}.")
        row = self._select_runs("WHERE id = ?", (run_id,))
        if not row:
            escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            row = self._select_runs("WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))
            if len(row) != 1:
                raise StoreError(f"No run '{run_id}' in {self.path}." if not row
                                 else f"Run id '{run_id}' is ambiguous in {self.path}.")
        return row[0]

    def completed_config_hashes(self) -> set[str]:
        """The config hashes of completed runs (a restarted sweep skips those points)."""
        return {h for (h,) in self._reader.execute("SELECT config_hash FROM runs WHERE status = 'completed'")}

    def list_runs(self, experiment: str | None = None, status: str | None = None) -> list[RunRecord]:
        """Runs in the order they started (none for a missing store, which is not created)."""
        query, args = "WHERE 1 = 1", []
        if experiment is not None:
            query, args = query + " AND experiment = ?", args + [experiment]
        if status is not None:
            query, args = query + " AND status = ?", args + [status]
        return self._select_runs(query + " ORDER BY started, rowid", args)

    def _select_runs(self, where: str, args: Sequence) -> list[RunRecord]:
        cursor = self._reader.execute(f"SELECT * FROM runs {where}", args)
        names = [d[0] for d in cursor.description]
        return [self._record(dict(zip(names, row))) for row in cursor.fetchall()]

    def _record(self, row: dict[str, Any]) -> RunRecord:
        try:
            config, versions = json.loads(row["config"]), json.loads(row["versions"] or "{}")
        except (TypeError, ValueError):
            raise StoreError(f"run {row['id']} in {self.path} is damaged (its stored config is not JSON).") from None
        return RunRecord(row["id"], row["experiment"], row["preset"], config, row["config_hash"], row["seed"],
                         row["status"], row["error"], row["git_commit"], versions, row["device"], row["started"],
                         row["ended"], store=self)

    # -- metrics ---------------------------------------------------------------------

    def add_metrics(self, rows: Iterable[tuple[str, int, str, int | None, float]]) -> None:
        """Insert ``(run_id, step, name, replica, value)`` rows in one transaction, numbered
        with the next write batch (``metric_mark``)."""
        rows = list(rows)
        if rows:
            with _write(self.conn) as conn:
                for run_id in {row[0] for row in rows} & set(self._heartbeats):
                    owner = conn.execute("SELECT owner_pid, owner_host FROM runs WHERE id = ?", (run_id,)).fetchone()
                    if owner is not None and owner[0] is not None and tuple(owner) != lease_owner():
                        raise LeaseLost(f"Run {run_id} was taken over by process {owner[0]} on {owner[1]} "
                                        f"(this one looked stalled); this process stops writing it.")
                batch = _next_batch(conn)
                conn.executemany("INSERT INTO metrics (run_id, step, name, replica, value, seq)"
                                 " VALUES (?, ?, ?, ?, ?, ?)", [(*row, batch) for row in rows])

    def metric_mark(self) -> int:
        """The last metric write batch so far: every row written later has a higher ``seq``."""
        row = self._reader.execute("SELECT value FROM counters WHERE name = 'metric_batch'").fetchone()
        return 0 if row is None else int(row[0])

    def delete_metrics_after(self, run_id: str, step: int, scope: str = "", *, mark: int | None = None) -> None:
        """Drop metrics of ``scope`` logged after ``step`` (a resumed run logs them again); with
        ``mark`` (a ``metric_mark`` taken at a checkpoint), drop exactly the rows written after
        that mark, whatever their step: rows logged after the training loop at earlier steps too.

        A scope is a metric-name prefix ``scope/``; the empty scope is the names without one.
        Nested scopes (``scope/inner/...``) are left alone: they resume on their own.
        """
        after, args = ("seq > ?", (mark,)) if mark is not None else ("step > ?", (step,))
        self._delete_metrics(run_id, after, args, scope)

    def delete_metrics_until(self, run_id: str, mark: int, scope: str = "") -> None:
        """Drop metrics of ``scope`` written at or before ``mark`` (and rows from before marks
        existed): what earlier processes logged in a scope that starts over."""
        self._delete_metrics(run_id, "(seq IS NULL OR seq <= ?)", (mark,), scope)

    def _delete_metrics(self, run_id: str, condition: str, args: tuple, scope: str) -> None:
        if not scope:
            pattern, scope_args = "instr(name, '/') = 0", ()
        else:
            prefix = scope + "/"
            pattern = "substr(name, 1, length(?)) = ? AND instr(substr(name, length(?) + 1), '/') = 0"
            scope_args = (prefix, prefix, prefix)
        with _write(self.conn) as conn:
            conn.execute(f"DELETE FROM metrics WHERE run_id = ? AND {condition} AND {pattern}",
                         (run_id, *args, *scope_args))

    def metric_names(self, run_id: str) -> list[str]:
        rows = self._reader.execute("SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name", (run_id,))
        return [name for (name,) in rows]

    def series(self, run_id: str, name: str) -> Series:
        rows = self._reader.execute(
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
        rows = self._reader.execute(
            "SELECT m.name, AVG(m.value) FROM metrics m JOIN ("
            " SELECT name, MAX(step) AS step FROM metrics WHERE run_id = ? GROUP BY name) last"
            " ON m.name = last.name AND m.step = last.step WHERE m.run_id = ? GROUP BY m.name ORDER BY m.name",
            (run_id, run_id),
        )
        return dict(rows.fetchall())

    def all_metrics(self, run_id: str) -> list[tuple[int, str, int | None, float]]:
        """Every metric row of a run, in a canonical order (for comparisons)."""
        return self._reader.execute(
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
        rows = self._reader.execute("SELECT name, path FROM artifacts WHERE run_id = ? ORDER BY name", (run_id,))
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

def scoped_name(scope: str, name: str) -> str:
    """The stored name of metric ``name`` logged in ``scope`` (``""``: the run's own): ``scope/name``."""
    return f"{scope}/{name}" if scope else name


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


class _Connection(sqlite3.Connection):
    """A store's connection: knows its file and whether it may write."""

    readonly = False
    path: Path | None = None


class _write:
    """One ``BEGIN IMMEDIATE`` transaction: takes the write lock up front, so two writers
    wait on the busy timeout instead of deadlocking on a lock upgrade."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        if getattr(self.conn, "readonly", False):
            raise StoreError(f"the run store {self.conn.path} is read-only; choose a writable --store.")
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


# -- identifying, creating and migrating stores -------------------------------------------

_SQLITE_MAGIC = b"SQLite format 3\x00"


_OPEN_LOCK = threading.Lock()
_OPEN_CONNECTIONS: collections.Counter[str] = collections.Counter()  # store path -> this process's open connections


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite, or SQLite marked as another application's, from its
    100-byte header alone, before SQLite opens it."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as error:
        raise StoreError(f"cannot read the run store {path} ({error.strerror}).") from None
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path} is not a learnlab run store (not an SQLite database); it was left unchanged.")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id not in (0, _APPLICATION_ID):
        raise StoreError(f"{path} is not a learnlab run store (an SQLite database of application "
                         f"{application_id:#x}); it was left unchanged.")


def _learnlab_version(conn: sqlite3.Connection, path: Path) -> int:
    """The store's schema version, read without writing; refuses any other database."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == _APPLICATION_ID:
        return version
    if application_id == 0 and version == 1:  # a store made before stores were marked
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if _LEGACY_TABLES <= tables:
            return 1
    raise StoreError(f"{path} is not a learnlab run store (another SQLite database); it was left unchanged.")


def _create_schema(conn: sqlite3.Connection) -> None:
    """The tables and marks of a new store (inside the caller's transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring an older learnlab store to this schema, in one transaction."""
    with _write(conn):
        version = _learnlab_version(conn, path)  # again, under the write lock: another process may have done it
        if version == 1:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            for column, kind in (("owner_pid", "INTEGER"), ("owner_host", "TEXT"), ("heartbeat", "REAL")):
                if column not in columns:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
            if "seq" not in {row[1] for row in conn.execute("PRAGMA table_info(metrics)")}:
                conn.execute("ALTER TABLE metrics ADD COLUMN seq INTEGER")
        if version < _SCHEMA_VERSION:
            for statement in _SCHEMA.split(";"):  # every CREATE ... IF NOT EXISTS: the tables added since
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


def _next_batch(conn: sqlite3.Connection) -> int:
    """The next metric write batch number (inside a write transaction)."""
    conn.execute("INSERT OR IGNORE INTO counters (name, value) VALUES ('metric_batch', 0)")
    conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'metric_batch'")
    return conn.execute("SELECT value FROM counters WHERE name = 'metric_batch'").fetchone()[0]


# -- leases -------------------------------------------------------------------------------


def lease_owner() -> tuple[int, str]:
    """This process as a lease owner: (pid, host)."""
    return os.getpid(), socket.gethostname()


class _Heartbeat(threading.Thread):
    """Refreshes a lease every ``LEASE_HEARTBEAT_S`` through a connection of its own."""

    def __init__(self, path: Path, run_id: str, timeout: float):
        super().__init__(name=f"learnlab-lease-{run_id}", daemon=True)
        self.path, self.run_id, self.timeout = path, run_id, timeout
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        store = None
        try:
            while not self._stopped.wait(LEASE_HEARTBEAT_S):
                try:
                    store = store or Store(self.path, timeout=self.timeout)
                    if not store.heartbeat(self.run_id):
                        return  # released, or taken over: the next metric write says so
                except (sqlite3.Error, StoreError):
                    continue  # a busy store: try again at the next beat
        finally:
            if store is not None:
                store.close()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is dead
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _lease_holder(pid: int | None, host: str | None, heartbeat: float | None, now: float) -> str | None:
    """A description of the live owner of a lease, or ``None`` if it is free or stale."""
    if pid is None:
        return None
    me_pid, me_host = lease_owner()
    age = now - (heartbeat or 0.0)
    if host == me_host:
        if pid == me_pid or not _process_alive(pid):
            return None
    if age > LEASE_STALE_S:
        return None
    return f"process {pid} on {host}, heartbeat {max(age, 0):.0f} s ago"
