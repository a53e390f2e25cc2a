"""Opening a second handle on a store never drops the locks this process holds on it.

Closing any descriptor of a file releases every POSIX lock the process holds on it,
SQLite's included (sqlite.org/howtocorrupt.html, section 2.2). A header check with a plain
``open()`` while a connection of the same process was open dropped that connection's
shared lock on the database; another process closing its last connection then believed
itself the last user, checkpointed and deleted the write-ahead log under the first, and
concurrent runs corrupted the store ("database disk image is malformed").
"""

import subprocess
import sys

from learnlab.store import Store


def test_a_second_handle_keeps_the_first_handles_lock(tmp_path):
    path = tmp_path / "s.sqlite"
    first = Store(path)
    first.list_runs()
    first.set_status("none", "running")  # a write: the log file exists and holds it
    second = Store(path)
    second.list_runs()  # a second connection in this process (the header check used to open/close the file)
    # Another process opens and closes the store: it must see this process still using it
    # and leave the write-ahead log in place.
    probe = f"import sqlite3\nc = sqlite3.connect({str(path)!r})\nc.execute('select count(*) from runs').fetchall()\nc.close()\n"
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
    assert path.with_name(path.name + "-wal").exists()
    second.close()
    first.close()
