import numpy as np

from learnlab.data import ShardedDataset, offline_shuffle, write_arrays
from learnlab.experiments import corgi2
from learnlab.results import StoredRun
from learnlab.runner import execute


def test_smoke_run_checks_io_orders_and_shuffle_quality(store):
    cfg = corgi2.presets()["smoke"]
    record = store.get_run(execute(corgi2, cfg, store=store, device="cpu", quiet=True).run_id)
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
