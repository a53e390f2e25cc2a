import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("LEARNLAB_TRACEBACK", "1")

# Under pytest-xdist every worker would start one intra-op thread per core: N workers on N
# cores then run N^2 spinning threads and the suite slows several-fold. One thread per
# worker (and per subprocess a test starts) keeps the cores busy without oversubscribing.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def store(tmp_path):
    from learnlab.store import Store

    store = Store(tmp_path / "runs" / "learnlab.sqlite")
    yield store
    store.close()


@pytest.fixture
def no_figures(monkeypatch):
    """Runs skip drawing their figures (seconds of CPU a run, in matplotlib's text layout).

    For tests that check a run's metrics, claims or statuses and never its figures; the
    contract test checks every experiment's figures on its shared smoke run."""
    from learnlab import runner

    monkeypatch.setattr(runner, "draw_figures", lambda *args, **kwargs: {})


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``smoke_run(name)`` -> (store, run id) of experiment ``name`` run once at its smoke preset.

    The run is shared by every test of the session that reads it, across pytest-xdist workers
    (the first worker to ask runs it under a file lock; the others wait and read the same store),
    so a smoke preset that several files check trains once. Tests only read the shared store.
    """
    import fcntl

    from learnlab import runner
    from learnlab.experiments import get_experiment, resolve_preset
    from learnlab.runner import execute
    from learnlab.store import Store

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-smoke-runs"
    folder.mkdir(exist_ok=True)
    opened: dict[str, tuple] = {}
    drawing = runner.draw_figures  # the shared runs draw their figures even where a test skips them

    def get(name: str):
        if name not in opened:
            with open(folder / f"{name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                done = folder / f"{name}.run"
                store = Store(folder / name / "learnlab.sqlite")
                if not done.exists():
                    experiment = get_experiment(name)
                    with pytest.MonkeyPatch.context() as patch:
                        patch.setattr(runner, "draw_figures", drawing)
                        outcome = execute(experiment, resolve_preset(experiment, "smoke"), store=store,
                                          preset="smoke", device="cpu", quiet=True)
                    done.write_text(outcome.run_id)
                opened[name] = (store, done.read_text())
        return opened[name]

    yield get
    for store, _ in opened.values():
        store.close()


# The suite's longest tests (seconds each on two busy cores), longest first. They are moved to
# the front of the run so that pytest-xdist hands them out first, alternately to its workers
# (its first batch goes round-robin), and the two workers finish together instead of one of
# them starting a minute-long test when the other is nearly done. An id here that no longer
# exists is ignored; a test missing here only runs where it was collected. Tests that use a
# module-scoped fixture stay with their module (moving one would set the fixture up twice).
LONGEST_FIRST = (
    "tests/test_scale_out.py::test_a_ray_sweep_killed_midway_reruns_only_the_missing_points",
    "tests/experiments/test_contract.py::test_smoke_runs_logs_checks_claims_and_is_deterministic[ar-learners]",
    "tests/experiments/test_contract.py::test_smoke_runs_logs_checks_claims_and_is_deterministic[subtuning]",
    "tests/experiments/test_contract.py::test_smoke_runs_logs_checks_claims_and_is_deterministic[sampler-distillation]",
    "tests/test_scale_out.py::test_two_gloo_processes_train_like_one_process_with_the_same_global_batch",
    "tests/test_scale_out.py::test_submitit_local_jobs_run_a_grid",
    "tests/test_cli.py::test_reproduce_with_jobs_runs_experiments_in_processes_and_reuses_completed_runs",
    "tests/test_cli.py::test_sweep_runs_the_cross_product_in_a_process_pool",
    "tests/experiments/test_contract.py::test_smoke_runs_logs_checks_claims_and_is_deterministic[icl-markov]",
    "tests/experiments/test_contract.py::test_smoke_runs_logs_checks_claims_and_is_deterministic[pareto-frontiers]",
    "tests/experiments/test_sampler_distillation.py::test_image_data_trains_resnet18_teachers_and_students",
    "tests/tasks/test_markov.py::test_strategy_kls_match_the_reference_values[3-3-expected3]",
    "tests/experiments/test_copying_experiment.py::test_a_small_hard_alibi_transformer_learns_to_copy",
    "tests/test_scale_out.py::test_the_offline_pass_on_ray_writes_the_local_pass_byte_for_byte",
    "tests/faults/test_fault_runs.py::test_sigterm_stops_a_run_like_ctrl_c_keeping_its_checkpoint",
    "tests/test_cli.py::test_run_show_runs_and_report_end_to_end",
    "tests/experiments/test_sq_vs_pac.py::test_deterministic_rounding_blocks_the_parity_at_large_batch_and_not_at_small",
    "tests/train/test_loop.py::test_a_run_killed_mid_way_and_resumed_ends_like_an_uninterrupted_one",
    "tests/experiments/test_contract.py::test_smoke_runs_logs_checks_claims_and_is_deterministic[copying]",
)


def pytest_collection_modifyitems(config, items):
    rank = {nodeid: i for i, nodeid in enumerate(LONGEST_FIRST)}
    module_scoped = set()
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        for name in (fixtures.name2fixturedefs if fixtures else {}):
            if any(d.scope == "module" for d in fixtures.name2fixturedefs[name]):
                module_scoped.add(item.nodeid)
    first = [item for item in items if item.nodeid in rank and item.nodeid not in module_scoped]
    first.sort(key=lambda item: rank[item.nodeid])
    moved = {id(item) for item in first}
    items[:] = first + [item for item in items if id(item) not in moved]
