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
