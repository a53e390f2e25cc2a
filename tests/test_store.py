import multiprocessing

import numpy as np
import pytest

from learnlab.claims import Claim
from learnlab.errors import StoreError
from learnlab.store import Store

N_WRITERS, BATCHES, ROWS_PER_BATCH = 8, 40, 25


def _writer(path: str, writer: int) -> None:
    store = Store(path)
    run_id = f"writer{writer}"
    store.create_run(run_id, experiment="x", preset=None, config={"writer": writer}, config_hash="h", seed=writer,
                     git_commit=None, versions={}, device="cpu")
    for batch in range(BATCHES):
        rows = [(run_id, batch * ROWS_PER_BATCH + i, "loss", None, float(writer)) for i in range(ROWS_PER_BATCH)]
        store.add_metrics(rows)
        store.set_artifact(run_id, f"a{batch % 3}", store.root / run_id / "file")
    store.set_claims(run_id, [Claim("c", "s", "m", "t", True)])
    store.set_status(run_id, "completed")
    store.close()


def test_eight_concurrent_writers_lose_no_rows(tmp_path):
    path = str(tmp_path / "store.sqlite")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(path, w)) for w in range(N_WRITERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * N_WRITERS
    store = Store(path)
    runs = store.list_runs()
    assert len(runs) == N_WRITERS and all(r.status == "completed" for r in runs)
    for record in runs:
        series = record.series("loss")
        assert len(series) == BATCHES * ROWS_PER_BATCH
        assert np.all(series.values == float(record.seed))
        assert len(record.artifacts()) == 3 and len(record.claims()) == 1


def _make_run(store, run_id="r1"):
    store.create_run(run_id, experiment="x", preset="smoke", config={"a": 1}, config_hash="h", seed=0,
                     git_commit=None, versions={}, device="cpu")


def test_series_scalar_and_per_replica(store):
    _make_run(store)
    store.add_metrics([("r1", 0, "acc", 0, 0.5), ("r1", 0, "acc", 1, 0.6), ("r1", 10, "acc", 0, 0.9),
                       ("r1", 10, "acc", 1, 1.0), ("r1", 0, "lr", None, 0.1), ("r1", 10, "lr", None, 0.05)])
    acc, lr = store.series("r1", "acc"), store.series("r1", "lr")
    assert acc.steps.tolist() == [0, 10] and acc.values.tolist() == [[0.5, 0.6], [0.9, 1.0]]
    assert lr.values.tolist() == [0.1, 0.05]
    assert store.final_metrics("r1") == pytest.approx({"acc": 0.95, "lr": 0.05})
    store.delete_metrics_after("r1", 0)
    assert store.series("r1", "acc").steps.tolist() == [0]


def test_unknown_and_prefix_run_ids(store):
    _make_run(store, "abc123")
    assert store.get_run("abc").id == "abc123"
    with pytest.raises(StoreError, match="No run 'zzz'"):
        store.get_run("zzz")


def test_a_corrupt_store_is_one_clear_error(tmp_path):
    path = tmp_path / "learnlab.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="is not a learnlab run store"):
        Store(path).list_runs()
    assert path.read_bytes() == b"this is not a database" * 100  # nothing lost


def test_a_logged_view_of_a_parameter_keeps_the_value_it_had(store):
    import torch

    from learnlab.runner import Run

    store.create_run("r1", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    run = Run(store, "r1", None, device=torch.device("cpu"))
    weight = torch.nn.Parameter(torch.zeros(2))
    run.log(0, w=weight[:1])
    with torch.no_grad():
        weight.add_(1.0)
    run.log(1, w=weight[:1])
    run.flush()
    assert store.series("r1", "w").values.tolist() == [[0.0], [1.0]]


def test_a_checkpoint_mark_drops_exactly_the_rows_written_after_it(store):
    # A resume drops what was logged after the checkpoint's mark, whatever the steps: rows
    # logged after a training loop at step 0 too; a scope starting over drops only what
    # earlier processes logged in it.
    _make_run(store)
    store.add_metrics([("r1", 0, "width", None, 8.0), ("r1", 5, "loss", None, 1.0)])
    mark = store.metric_mark()
    store.add_metrics([("r1", 10, "loss", None, 0.5), ("r1", 0, "width", None, 8.0), ("r1", 3, "c/loss", None, 2.0)])
    store.delete_metrics_after("r1", 5, mark=mark)
    assert store.all_metrics("r1") == [(3, "c/loss", None, 2.0), (5, "loss", None, 1.0), (0, "width", None, 8.0)]
    start = store.metric_mark()  # a new process takes the run up
    store.add_metrics([("r1", 1, "c/loss", None, 3.0)])
    store.delete_metrics_until("r1", start, "c")
    assert store.series("r1", "c/loss").values.tolist() == [3.0]


def test_a_new_store_is_marked_and_a_missing_one_is_not_created_by_reads(tmp_path):
    import sqlite3

    path = tmp_path / "runs" / "learnlab.sqlite"
    store = Store(path)
    assert store.list_runs() == [] and store.completed_config_hashes() == set() and store.metric_mark() == 0
    assert not path.parent.exists()
    _make_run(store)
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x6C6C6162
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
