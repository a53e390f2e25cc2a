"""Faults around the run store (#18): foreign, damaged, read-only and missing stores, errors
that must create nothing, LIKE wildcards in run ids, seeds that do not fit. Every bad input
is one ``learnlab: error:`` line and exit 2, and leaves every file as it was."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from learnlab.errors import StoreError
from learnlab.store import Store
from _support import cli, file_hashes, one_error


def _make_run(store: Store, run_id: str = "abc123", rows: int = 10) -> None:
    store.create_run(run_id, experiment="hidden-progress", preset="smoke", config={"seed": 0}, config_hash="h", seed=0,
                     git_commit=None, versions={}, device="cpu")
    store.add_metrics([(run_id, step, "loss", None, 1.0 / (step + 1)) for step in range(rows)])
    store.set_status(run_id, "completed")


# -- foreign files: refused unchanged (case 6) --------------------------------------------------


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_foreign_sqlite_database_is_refused_unchanged(tmp_path, capsys, journal):
    app = tmp_path / "app.db"
    conn = sqlite3.connect(app)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = file_hashes(tmp_path)
    code, _, err = cli(capsys, "runs", "--store", str(app))
    one_error(code, err, f"{app} is not a learnlab run store", "left unchanged")
    code, _, err = cli(capsys, "run", "hidden-progress", "--preset", "smoke", "--store", str(app), "--quiet")
    one_error(code, err, "is not a learnlab run store")
    assert file_hashes(tmp_path) == before  # no tables, no WAL switch, no user_version, no -wal / -shm files
    conn = sqlite3.connect(app)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == journal
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_other_files_are_refused_unchanged(tmp_path, capsys):
    other_app = tmp_path / "other.db"
    conn = sqlite3.connect(other_app)
    conn.execute("PRAGMA application_id = 42")
    conn.execute("CREATE TABLE runs (id TEXT)")
    conn.commit()
    conn.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 20)
    before = file_hashes(tmp_path)
    for path, why in ((other_app, "application 0x2a"), (text, "not an SQLite database")):
        code, _, err = cli(capsys, "runs", "--store", str(path))
        one_error(code, err, "is not a learnlab run store", why)
    assert file_hashes(tmp_path) == before


_VERSION_1 = """
CREATE TABLE runs (id TEXT PRIMARY KEY, experiment TEXT NOT NULL, preset TEXT, config TEXT NOT NULL,
    config_hash TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL, error TEXT, git_commit TEXT,
    versions TEXT, device TEXT, started REAL, ended REAL);
CREATE TABLE metrics (run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, replica INTEGER, value REAL);
CREATE INDEX metrics_by_run ON metrics (run_id, name, step);
CREATE TABLE artifacts (run_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE claims (run_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL, statement TEXT NOT NULL,
    measured TEXT NOT NULL, threshold TEXT NOT NULL, passed INTEGER NOT NULL, PRIMARY KEY (run_id, position));
INSERT INTO runs VALUES ('old1', 'hidden-progress', 'smoke', '{"seed": 3}', 'h', 3, 'failed', 'crashed', NULL, '{}',
    'cpu', 1.0, 2.0);
INSERT INTO metrics VALUES ('old1', 0, 'loss', NULL, 0.5), ('old1', 10, 'loss', NULL, 0.25);
PRAGMA user_version = 1;
"""


def test_a_store_from_before_marks_is_recognised_and_migrated_keeping_its_runs(tmp_path):
    path = tmp_path / "learnlab.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(_VERSION_1)
    conn.close()
    store = Store(path)
    [record] = store.list_runs()
    assert (record.id, record.seed, record.status) == ("old1", 3, "failed")
    assert record.series("loss").values.tolist() == [0.5, 0.25]
    store.acquire_lease("old1")  # the lease columns were added
    store.delete_metrics_until("old1", store.metric_mark())  # rows from before marks count as written before any
    assert store.all_metrics("old1") == []
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x6C6C6162
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


# -- damaged, read-only and missing stores (cases 12, 13) ------------------------------------------


def test_a_page_damaged_store_is_one_error_line_for_run_and_runs(tmp_path, capsys):
    path = tmp_path / "learnlab.sqlite"
    store = Store(path)
    _make_run(store, rows=2000)
    root_page = store.conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    page_size = store.conn.execute("PRAGMA page_size").fetchone()[0]
    store.close()
    with open(path, "r+b") as handle:  # the runs table's root page: zeroed
        handle.seek((root_page - 1) * page_size)
        handle.write(bytes(page_size))
    before = file_hashes(tmp_path)
    code, _, err = cli(capsys, "runs", "--store", str(path))
    one_error(code, err, f"the run store {path} cannot be used", "malformed")
    code, _, err = cli(capsys, "run", "hidden-progress", "--preset", "smoke", "--store", str(path), "--quiet")
    one_error(code, err, "malformed")
    assert file_hashes(tmp_path) == before


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("small") / "learnlab.sqlite"
    store = Store(path)
    _make_run(store, rows=50)
    store.close()
    return path.read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255), cut=st.booleans())
# Found by this test: a flipped byte in the schema's text made SQLite's error message invalid
# UTF-8 (a UnicodeDecodeError escaped) or put a control character (\x1e) into it (two lines).
@example(position=0.044921875, flip=128, cut=False)
@example(position=0.04296875, flip=80, cut=False)
def test_a_flipped_byte_or_truncation_of_a_store_never_escapes_as_a_traceback(small_store, tmp_path_factory, capsys,
                                                                               position, flip, cut):
    data = bytearray(small_store)
    index = int(position * len(data))
    if cut:
        data = data[:index]
    else:
        data[index] ^= flip
    folder = tmp_path_factory.mktemp("damaged")
    path = folder / "learnlab.sqlite"
    path.write_bytes(bytes(data))
    before = file_hashes(folder)
    for command in (["runs"], ["show", "abc123"]):
        code, _, err = cli(capsys, *command, "--store", str(path))  # an exception would fail the test here
        assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1), err
    assert file_hashes(folder) == before  # a read changes nothing, damaged or not


_READ_ONLY_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'


def _read_only_runner(folder: Path):
    """How to run a command that sees ``folder`` read-only: permissions for a user, a read-only
    bind mount in a private mount namespace for root (whom permissions do not stop)."""
    if os.geteuid() != 0:
        (folder / "learnlab.sqlite").chmod(0o444)
        folder.chmod(0o555)
        return lambda command: command
    probe = subprocess.run(["unshare", "-m", "sh", "-c", _READ_ONLY_MOUNT, "sh", str(folder), "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("root here cannot make a read-only mount (unshare -m)")
    return lambda command: ["unshare", "-m", "sh", "-c", _READ_ONLY_MOUNT, "sh", str(folder), *command]


def test_a_read_only_store_is_read_without_side_files_and_refuses_writes(tmp_path):
    folder = tmp_path / "runs"
    store = Store(folder / "learnlab.sqlite")
    _make_run(store)
    store.close()
    before = file_hashes(folder)
    wrap = _read_only_runner(folder)
    try:
        def learnlab(*args):
            command = [sys.executable, "-m", "learnlab.cli", *args, "--store", str(folder / "learnlab.sqlite")]
            return subprocess.run(wrap(command), capture_output=True, text=True, timeout=300)

        listed = learnlab("runs")
        assert listed.returncode == 0, listed.stderr
        assert "abc123" in listed.stdout
        refused = learnlab("run", "hidden-progress", "--preset", "smoke", "--quiet")
        one_error(refused.returncode, refused.stderr, "is read-only")
        assert file_hashes(folder) == before  # no -wal, no -shm, no run folder
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("args, message", [
    (["run", "hidden-progress", "--resume", "deadbeef00"], "No run 'deadbeef00': there is no run store at"),
    (["sweep", "hidden-progress", "--preset", "smoke", "--jobs", "0"], "--jobs must be an int >= 1. Got 0."),
    (["runs"], "No run store at"),
    (["report"], "No run store at"),
    (["show", "abc"], "No run 'abc'"),
    (["run", "hidden-progress", "--preset", "smoke", "--seed", "99999999999999999999"],
     "The 'seed' parameter of HiddenProgressConfig must be an int in [0, 9223372036854775807]."),
    (["run", "hidden-progress", "--preset", "smoke", "seed=1e30"], "must be an int in [0, 9223372036854775807]"),
    (["sweep", "hidden-progress", "--preset", "smoke", "--grid", "seed=0,1e30"], "must be an int in [0, "),
])
def test_errors_on_a_missing_store_create_nothing(tmp_path, capsys, args, message):
    store_path = tmp_path / "runs" / "learnlab.sqlite"
    code, _, err = cli(capsys, *args, "--store", str(store_path))
    one_error(code, err, message)
    assert list(tmp_path.iterdir()) == []  # not the store, not its folder


# -- run ids (case 14) -----------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["%", "_", "abc_23", "a%", "\\"])
def test_run_id_prefixes_are_not_like_patterns(tmp_path, capsys, pattern):
    store = Store(tmp_path / "learnlab.sqlite")
    _make_run(store)
    assert store.get_run("abc").id == "abc123"  # a real prefix still resolves
    with pytest.raises(StoreError, match="No run"):
        store.get_run(pattern)
    code, _, err = cli(capsys, "run", "hidden-progress", "--resume", pattern, "--store", str(store.path))
    one_error(code, err, f"No run '{pattern}'")
