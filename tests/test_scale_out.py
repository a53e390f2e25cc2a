"""Scale-out: sweeps on Ray and through submitit, the driver-side merge of remote runs,
retries, and restarts that run only the missing points."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learnlab.store import Store, export_run, import_run
from learnlab.sweep import SlurmExecutor, _RemoteExecutor, expand_grid, pending_points, run_point_isolated, run_sweep

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")

FAST = ["train.max_steps=40", "train.eval_every=20"]
# `learnlab ARGS` with its runs' figures skipped, for subprocesses whose rows and claims are compared.
WITHOUT_FIGURES = Path(__file__).with_name("learnlab_without_figures.py")


def _grid(seeds: int):
    return expand_grid("hidden-progress", "smoke", [f"seed={','.join(map(str, range(seeds)))}"], FAST)


def test_a_point_run_elsewhere_merges_into_the_store_unchanged(tmp_path):
    point = _grid(1)[0]
    outcome, exported = run_point_isolated(point, "cpu")
    assert outcome.status == "completed" and exported["metrics"]
    store = Store(tmp_path / "s.sqlite")
    import_run(store, exported)
    again = export_run(store, outcome.run_id)
    assert again["metrics"] == exported["metrics"] and again["claims"] == exported["claims"]
    assert again["run"] == exported["run"]
    assert pending_points([point], store) == []  # completed: a restarted sweep skips it
    store.close()


class _Flaky(_RemoteExecutor):
    """Runs points in this process; the first attempt of every point raises (a worker that died)."""

    def __init__(self, retries):
        self.retries, self.attempts, self.points = retries, {}, {}

    def _submit(self, point, device):
        handle = len(self.points)
        self.points[handle] = point
        return handle

    def _wait(self, handles):
        handle = handles[0]
        point = self.points[handle]
        self.attempts[point.config["seed"]] = self.attempts.get(point.config["seed"], 0) + 1
        if self.attempts[point.config["seed"]] == 1:
            return handle, RuntimeError("worker died")
        return handle, run_point_isolated(point, "cpu")


def test_failed_points_are_retried_and_a_last_failure_is_recorded(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    outcomes = list(run_sweep(_grid(2), store=store, executor=_Flaky(retries=1), device="cpu", quiet=True))
    assert [o.status for _, o in outcomes] == ["completed", "completed"]
    outcomes = list(run_sweep(_grid(3), store=store, executor=_Flaky(retries=0), device="cpu", quiet=True))
    assert len(outcomes) == 1  # seeds 0 and 1 were completed: only seed 2 runs, and fails without a retry
    point, outcome = outcomes[0]
    assert outcome.status == "failed" and "worker died" in outcome.error
    assert store.get_run(outcome.run_id).status == "failed"
    store.close()


def test_submitit_local_jobs_run_a_grid(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("LEARNLAB_FIGURES", "0")  # the jobs' statuses are checked, not their figures
    store = Store(tmp_path / "s.sqlite")
    executor = SlurmExecutor(tmp_path / "jobs", cluster="local", time=5)
    outcomes = list(run_sweep(_grid(2), store=store, executor=executor, device="cpu", quiet=True))
    assert sorted(o.status for _, o in outcomes) == ["completed", "completed"]
    assert len(store.list_runs(status="completed")) == 2
    store.close()


def _cli(store_path, *args):
    return [sys.executable, "-c", "import sys; from learnlab.cli import main; sys.exit(main(sys.argv[1:]))", *args,
            "--store", str(store_path)]


POINTS = 6


def test_a_ray_sweep_killed_midway_reruns_only_the_missing_points(tmp_path):
    pytest.importorskip("ray")
    store_path = tmp_path / "s.sqlite"
    # Six points on two Ray workers: killed once two are completed, four (two rounds) are left.
    grid = ["sweep", "hidden-progress", "--preset", "smoke", "--grid", f"seed={','.join(map(str, range(POINTS)))}",
            "--executor", "ray", "--ray-cpus", "2", "--quiet", *FAST]
    env = dict(os.environ, LEARNLAB_FIGURES="0")  # the points' statuses are checked, not their figures
    driver = subprocess.Popen(_cli(store_path, *grid), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              start_new_session=True)
    try:
        _kill_midway_and_rerun(driver, store_path, grid, env)
    finally:
        if driver.poll() is None:  # an assertion failed before the kill: leave no Ray behind
            os.killpg(driver.pid, signal.SIGKILL)


def _kill_midway_and_rerun(driver, store_path, grid, env):
    store = Store(store_path)
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        if store_path.exists() and len(store.list_runs(status="completed")) >= 2:
            break
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait(timeout=30)
    before = len(store.list_runs(status="completed"))
    assert 2 <= before < POINTS
    rerun = subprocess.run(_cli(store_path, *grid), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{before} already completed, {POINTS - before} to run" in rerun.stderr
    completed = store.list_runs(status="completed")
    assert len(completed) == POINTS and len({r.config_hash for r in completed}) == POINTS
    assert sorted(r.seed for r in completed) == list(range(POINTS))
    store.close()


def test_impossible_executor_settings_are_one_clear_error(tmp_path):
    from learnlab.config import ConfigError

    with pytest.raises(ConfigError, match="--time"):
        SlurmExecutor(tmp_path, time=0, cluster="local")
    with pytest.raises(ConfigError, match="retries"):
        SlurmExecutor(tmp_path, retries=-1, cluster="local")


def test_two_gloo_processes_train_like_one_process_with_the_same_global_batch(tmp_path):
    """torchrun, 2 CPU ranks (gloo, DDP) vs one process: same losses and evaluations (fp32)."""
    import numpy as np

    settings = ["run", "copying", "--preset", "smoke", "--quiet", "parts=copy", "models=hard_alibi,lstm",
                "n_seeds=1", "train.max_steps=12", "train.batch_size=8", "train.checkpoint_every=5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, str(WITHOUT_FIGURES), *settings, "--store", str(tmp_path / "one.sqlite")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(WITHOUT_FIGURES), *settings, "--store", str(tmp_path / "two.sqlite")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("copying: completed") == 1  # rank 0 alone reports
    one, two = Store(tmp_path / "one.sqlite"), Store(tmp_path / "two.sqlite")
    [run_one], [run_two] = one.list_runs(), two.list_runs()
    assert "2 ranks" in run_two.device
    names = one.metric_names(run_one.id)
    assert names == two.metric_names(run_two.id)
    for name in names:
        a, b = one.series(run_one.id, name), two.series(run_two.id, name)
        assert np.array_equal(a.steps, b.steps), name
        np.testing.assert_allclose(a.values, b.values, rtol=2e-5, atol=2e-6, err_msg=name)
    assert [c.measured for c in one.claims(run_one.id)] == [c.measured for c in two.claims(run_two.id)]
    # A data-parallel run resumed from its last checkpoint (step 10) ends where it ended.
    two.set_status(run_two.id, "failed", "pretend it crashed")
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              str(WITHOUT_FIGURES), "run", "copying", "--resume", run_two.id, "--quiet",
                              "--store", str(tmp_path / "two.sqlite")], capture_output=True, text=True, env=env,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert two.get_run(run_two.id).status == "completed"
    for name in names:
        a, b = one.series(run_one.id, name), two.series(run_two.id, name)
        np.testing.assert_allclose(a.values, b.values, rtol=2e-5, atol=2e-6, err_msg=name)


def test_the_offline_pass_on_ray_writes_the_local_pass_byte_for_byte(tmp_path):
    pytest.importorskip("ray")
    import numpy as np

    from learnlab.data import offline_shuffle, write_arrays

    rng = np.random.default_rng(0)
    source = str(tmp_path / "source")
    write_arrays(source, {"x": rng.normal(size=(600, 3)).astype(np.float32), "y": np.sort(rng.integers(0, 5, 600))}, 50)
    local, remote = tmp_path / "local", tmp_path / "ray"
    offline_shuffle(source, str(local), 4, seed=3, passes=2)
    done = subprocess.run(_cli(tmp_path / "unused.sqlite", "data", "shuffle", source, str(remote), "--blocks", "4",
                               "--seed", "3", "--passes", "2", "--executor", "ray", "--ray-cpus", "2", "--quiet")[:-2],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    files = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file()) and len(files) > 12
    for name in files:
        if name.name != "index.json":
            assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    # Equal but for the destination's own path (and so the seal, the digest of the index's content).
    index_local, index_remote = (re.sub(r'"index_sha256": "[0-9a-f]+"', "", (d / "index.json").read_text())
                                 for d in (local, remote))
    assert index_local.replace(str(local), "DST") == index_remote.replace(str(remote), "DST")


def test_bf16_autocast_is_a_switch(tmp_path):
    """train.precision=bf16 trains (autocast on the CPU too) and changes the numbers a little, not a lot."""
    import numpy as np

    from learnlab.config import apply_overrides
    from learnlab.experiments import copying, resolve_preset
    from learnlab.runner import execute

    base = apply_overrides(resolve_preset(copying, "smoke"), ["parts=copy", "models=hard_alibi", "n_seeds=1"])
    store = Store(tmp_path / "s.sqlite")
    runs = [execute(copying, apply_overrides(base, [f"train.precision={p}"]), store=store, device="cpu", quiet=True)
            for p in ("fp32", "bf16")]
    assert all(r.status == "completed" for r in runs)
    fp32, bf16 = (store.series(r.run_id, "hard_alibi_s0/train_loss").values.ravel() for r in runs)
    assert not np.array_equal(fp32, bf16) and np.allclose(fp32, bf16, rtol=0.05)
    store.close()
