"""A local-pool sweep's driver killed with -9 (#18): its workers must die with it, not run on
and then idle forever."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learnlab.store import Store, _process_alive


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_killing_a_sweep_driver_kills_its_workers(tmp_path):
    store_path = tmp_path / "learnlab.sqlite"
    # Two points that would train for a long time ((24, 4) parity does not converge), two workers.
    driver = subprocess.Popen([sys.executable, "-m", "learnlab.cli", "sweep", "hidden-progress", "--preset", "smoke",
                               "--grid", "seed=0,1", "--jobs", "2", "--quiet", "--device", "cpu", "--store",
                               str(store_path), "task.n_bits=24", "task.k=4", "train.max_steps=1000000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    workers: list[int] = []
    try:
        store, deadline = Store(store_path), time.time() + 300
        while len(store.list_runs(status="running")) < 2:  # both workers are training
            assert driver.poll() is None and time.time() < deadline, driver.stderr.read().decode()
            time.sleep(0.05)
        workers = [pid for pid in _children(driver.pid) if _process_alive(pid)]
        assert len(workers) >= 2
        driver.send_signal(signal.SIGKILL)  # the driver alone, not its process group
        driver.wait(timeout=30)
        deadline = time.time() + 30
        while any(_process_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_process_alive(pid) for pid in workers), "a worker outlived its driver"
        # Their runs are left 'running' with a dead owner: resumable, not stuck.
        assert all(store.lease_holder(record.id) is None for record in store.list_runs())
    finally:
        for pid in [driver.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
