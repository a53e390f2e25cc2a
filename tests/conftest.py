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
