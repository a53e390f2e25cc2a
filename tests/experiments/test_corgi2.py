import numpy as np
import pytest

from learnlab.data import ShardedDataset, offline_shuffle, write_arrays
from learnlab.experiments import corgi2
from learnlab.results import StoredRun
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def test_smoke_run_checks_io_orders_and_shuffle_quality(smoke_run):
    cfg = corgi2.presets()["smoke"]
    shared, run_id = smoke_run(corgi2.NAME)  # the session's smoke run, shared with the contract test
    record = shared.get_run(run_id)
    assert record.status == "completed", record.error
    run = StoredRun(record, corgi2.Config)
    for arm in cfg.arms:  # each loader emitted exactly its planned order in its real epoch
        assert run.last(f"gaussian/{arm}_matches_plan") == 1.0
    claims = {c.name: c for c in record.claims()}
    assert claims["gaussian-io"].verdict == "pass" and claims["gaussian-orders"].verdict == "pass"
    kl = {arm: float(np.mean(run.last(f"gaussian/{arm}_batch_label_kl"))) for arm in cfg.arms}
    assert kl["full"] < kl["corgi2_2pass"] < kl["corgipile"] < kl["sequential"]
    accuracy = corgi2.arm_accuracy(run, cfg, "gaussian", "softmax")
    assert set(cfg.arms) <= set(accuracy) and all(len(v) == cfg.n_seeds for v in accuracy.values())
    assert len(run.over_seeds("gaussian/homogeneity_after_n4")) == cfg.gaussian.passes


def test_the_simulated_pass_is_the_real_pass(tmp_path):
    labels = np.repeat(np.arange(6), 50)  # sorted: 6 blocks of one label each, plus a short last block
    labels = np.concatenate([labels, [5, 5, 5]])
    write_arrays(str(tmp_path / "sorted"), {"y": labels}, 50)
    sizes = ShardedDataset(str(tmp_path / "sorted")).shard_sizes
    offline_shuffle(str(tmp_path / "sorted"), str(tmp_path / "pass"), 3, 7)
    passed = ShardedDataset(str(tmp_path / "pass"))
    real = np.concatenate([passed.read_shard(i)["y"] for i in range(len(passed.shard_sizes))])
    assert np.array_equal(real, labels[corgi2.simulate_pass(sizes, 3, 7)])


def test_the_predicted_kl_ratio_is_one_for_iid_blocks():
    assert corgi2.predicted_kl_ratio(1.0, 64, 10, 100) == 1.0
    assert abs(corgi2.predicted_kl_ratio(1 + 99 / 10, 64, 10, 100) - 1.6336) < 1e-3  # n_off = n_on = 10, b = 100


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "corgi2", "--preset", "smoke", "arms=full,shuffle", "--store", store]) == 2
    assert "'arms' entries must be among" in capsys.readouterr().err
    assert main(["run", "corgi2", "--preset", "smoke", "gaussian.records_per_shard=0", "--store", store]) == 2
    assert "records_per_shard" in capsys.readouterr().err


def test_each_replica_trains_on_its_own_planned_order_and_resumes_where_it_stopped():
    import torch

    from learnlab.experiments.corgi2.parts import PlannedOrders

    sorted_x, shuffled_x = torch.arange(10.0).view(10, 1), torch.arange(100.0, 110.0).view(10, 1)
    data = {"a": (sorted_x, torch.arange(10)), "b": (shuffled_x, torch.arange(10) + 100)}
    orders = {(arm, s, e): np.roll(np.arange(10), 3 * s + e) for arm in "ab" for s in range(2) for e in range(2)}
    replicas = [("a", 0), ("a", 1), ("b", 0)]
    stream = PlannedOrders(orders, data, replicas, batch_size=4, device="cpu")
    assert stream.steps_per_epoch == 2  # the last 2 records of each order do not fill a batch
    batches = [stream.next_batch() for _ in range(4)]  # two epochs
    for r, (arm, s) in enumerate(replicas):
        for step, (x, y) in enumerate(batches):
            epoch, t = divmod(step, 2)
            ids = orders[arm, s, epoch][4 * t:4 * t + 4]
            assert torch.equal(x[r, :, 0], data[arm][0][ids, 0]) and torch.equal(y[r], data[arm][1][ids])
    resumed = PlannedOrders(orders, data, replicas, batch_size=4, device="cpu")
    resumed.load_state_dict({"step": 3})
    assert all(torch.equal(u, v) for u, v in zip(resumed.next_batch(), batches[3]))
