"""Faults in runs (#18): kill -9 inside a control scope, SIGTERM, resuming a run that is still
training, damaged checkpoints. A resumed run must end with exactly the metric rows of an
uninterrupted one (every row compared); a refused resume changes nothing."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnlab.cli import main
from learnlab.config import apply_overrides
from learnlab.errors import StoreError
from learnlab.experiments import get_experiment, resolve_preset
from learnlab import runner
from learnlab.runner import Run, execute, read_checkpoint
from learnlab.store import Store

HIDDEN_PROGRESS = get_experiment("hidden-progress")
# The smoke preset with the random-label control and a checkpoint every 10 steps: the root
# scope checkpoints 8 times, the control 4 times (t_c ~ 90 steps), all in a few seconds.
SETTINGS = ("controls=random_labels", "train.checkpoint_every=10")
VICTIM = Path(__file__).with_name("_victim.py")


def _config():
    return apply_overrides(resolve_preset(HIDDEN_PROGRESS, "smoke"), list(SETTINGS))


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    # Completed runs draw their figures (seconds of CPU a run); these tests check rows and
    # statuses, so the figures are skipped to keep the fault suite fast.
    monkeypatch.setattr(runner, "draw_figures", lambda *args, **kwargs: {})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Every metric row of an uninterrupted run."""
    store = Store(tmp_path_factory.mktemp("reference") / "learnlab.sqlite")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "draw_figures", lambda *args, **kwargs: {})
        outcome = execute(HIDDEN_PROGRESS, _config(), store=store, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    rows = store.all_metrics(outcome.run_id)
    store.close()
    return rows


def _victim(store_path: Path, fault: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    """``learnlab run`` of the same config in a process of its own, with ``fault`` injected."""
    threads = str(torch.get_num_threads())  # the same arithmetic as this process
    env = {**os.environ, "FAULT": fault, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    command = [sys.executable, str(VICTIM), "run", "hidden-progress", "--preset", "smoke", *SETTINGS,
               "--device", "cpu", "--quiet", "--store", str(store_path)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)


def test_a_live_run_refuses_a_second_resume_and_once_killed_in_a_control_resumes_row_exact(tmp_path, capsys,
                                                                                            reference):
    # The victim stops inside the random-label control at its third checkpoint, with the rows
    # logged since the second one already in the store, and waits there, alive. By then the
    # root scope has finished, with rows logged after its fit at step 0 (replica_width,
    # replica_lr): a resume must log none of them twice.
    store_path = tmp_path / "learnlab.sqlite"
    log = tmp_path / "victim.err"
    with open(log, "w") as stderr:
        victim = _victim(store_path, "checkpoint:random_labels:3:hang", stderr=stderr)
    try:
        deadline = time.time() + 300
        while "hanging" not in log.read_text():
            assert victim.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.05)
        store = Store(store_path)
        [record] = store.list_runs()
        before = store.all_metrics(record.id)
        assert any(name.startswith("random_labels/") for _, name, _, _ in before)
        # A second `--resume` while it trains: refused, one line, nothing changed.
        capsys.readouterr()
        code = main(["run", "hidden-progress", "--resume", record.id, "--store", str(store_path), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        assert f"Run {record.id} is still running (process {victim.pid} on " in err
        assert store.all_metrics(record.id) == before and store.get_run(record.id).status == "running"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    assert store.get_run(record.id).status == "running"  # killed: nobody marked it
    assert store.lease_holder(record.id) is None  # its owner is dead: the lease is stale, and is taken over
    outcome = execute(HIDDEN_PROGRESS, None, store=store, resume=record.id, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    assert store.all_metrics(record.id) == reference


def test_sigterm_stops_a_run_like_ctrl_c_keeping_its_checkpoint(tmp_path):
    store_path = tmp_path / "learnlab.sqlite"
    victim = _victim(store_path, "checkpoint:-:2:term")  # SIGTERM after the first checkpoint
    _, err = victim.communicate(timeout=300)
    assert victim.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    assert "resume it with" in err and "Traceback" not in err
    store = Store(store_path)
    [record] = store.list_runs()
    assert (record.status, record.error) == ("interrupted", "SIGTERM")
    assert store.lease_holder(record.id) is None
    assert read_checkpoint(record.artifacts()["checkpoint"], record.id)["step"] == 10  # kept, whole


_CONTENDER = """
import pathlib, sys, time
from learnlab.errors import StoreError
from learnlab.store import Store
store, folder = Store(sys.argv[1]), pathlib.Path(sys.argv[2])
while not (folder / "go").exists():  # all start at once
    time.sleep(0.01)
try:
    store.acquire_lease("r")
    result = "won"
except StoreError as error:
    result = "refused"
(folder / f"tried-{sys.argv[3]}").touch()
deadline = time.time() + 60
while len(list(folder.glob("tried-*"))) < 4 and time.time() < deadline:  # the winner stays alive meanwhile
    time.sleep(0.01)
print(result)
"""


def test_of_resumes_at_once_exactly_one_takes_the_lease(tmp_path):
    store = Store(tmp_path / "learnlab.sqlite")
    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    store.set_status("r", "failed", "pretend it crashed")
    contenders = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(store.path), str(tmp_path), str(i)],
                                   stdout=subprocess.PIPE, text=True) for i in range(4)]
    (tmp_path / "go").touch()
    results = [c.communicate(timeout=90)[0].strip() for c in contenders]
    assert sorted(results) == ["refused", "refused", "refused", "won"]


def test_a_stale_lease_is_taken_over_and_a_live_one_on_another_host_refused(store):
    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    conn = store.conn
    conn.execute("UPDATE runs SET owner_pid = 1, owner_host = 'elsewhere', heartbeat = ? WHERE id = 'r'",
                 (time.time() - 2,))
    with pytest.raises(StoreError, match=r"still running \(process 1 on elsewhere, heartbeat \d+ s ago\)"):
        store.acquire_lease("r")
    conn.execute("UPDATE runs SET heartbeat = ? WHERE id = 'r'", (time.time() - 3600,))  # silent for an hour
    store.acquire_lease("r")
    assert store.lease_holder("r") is None  # ours now
    store.set_status("r", "completed")
    assert conn.execute("SELECT owner_pid FROM runs WHERE id = 'r'").fetchone() == (None,)  # released


# -- damaged checkpoints ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> tuple[Path, str]:
    """A store holding one run stopped (as by Ctrl-C) at its third root checkpoint."""
    original, seen = Run.save_checkpoint, [0]

    def save_checkpoint(self, step, state):
        seen[0] += self.scope == ""
        if seen[0] == 3:
            raise KeyboardInterrupt
        return original(self, step, state)

    folder = tmp_path_factory.mktemp("interrupted")
    store = Store(folder / "learnlab.sqlite")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Run, "save_checkpoint", save_checkpoint)
        with pytest.raises(KeyboardInterrupt):
            execute(HIDDEN_PROGRESS, _config(), store=store, device="cpu", quiet=True)
    [record] = store.list_runs()
    assert record.status == "interrupted"
    store.close()
    return folder, record.id


@pytest.mark.parametrize("damage", ["zero 64 bytes in the middle", "truncate"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, interrupted_run, capsys, damage):
    folder, run_id = interrupted_run
    shutil.copytree(folder, tmp_path / "runs")
    store = Store(tmp_path / "runs" / "learnlab.sqlite")
    path = store.artifacts(run_id)["checkpoint"]
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) - 100]
    else:
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    before = store.all_metrics(run_id)
    capsys.readouterr()
    code = main(["run", "hidden-progress", "--resume", run_id, "--store", str(store.path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"learnlab: error: Checkpoint {path} of run {run_id} is corrupt: its checksum")
    assert store.get_run(run_id).status == "interrupted" and store.all_metrics(run_id) == before


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("checkpoint") / "learnlab.sqlite")
    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    run = Run(store, "r", None, device=torch.device("cpu"), quiet=True)
    run.log(3, loss=1.0)
    run.save_checkpoint(7, {"model": torch.nn.Linear(8, 4).state_dict(), "rng": torch.get_rng_state()})
    return run.checkpoint_path, run.checkpoint_path.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255), cut=st.booleans())
def test_any_flipped_byte_or_truncation_of_a_checkpoint_is_refused(saved_checkpoint, tmp_path_factory, position, flip,
                                                                    cut):
    path, data = saved_checkpoint
    damaged = bytearray(data)
    index = int(position * len(data))
    if cut:
        damaged = damaged[:index]
    else:
        damaged[index] ^= flip
    target = tmp_path_factory.mktemp("damaged") / "checkpoint.pt"
    target.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match=re.escape(f"Checkpoint {target} of run r is corrupt")):
        read_checkpoint(target, "r")
    assert read_checkpoint(path, "r")["step"] == 7  # the intact file still loads
