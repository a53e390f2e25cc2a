import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("LEARNLAB_TRACEBACK", "1")


@pytest.fixture
def store(tmp_path):
    from learnlab.store import Store

    store = Store(tmp_path / "runs" / "learnlab.sqlite")
    yield store
    store.close()
