import numpy as np

from learnlab.experiments import corgi2
from learnlab.runner import execute


def test_smoke_run_checks_io_orders_and_shuffle_quality(store):
    cfg = corgi2.presets()["smoke"]
    record = store.get_run(execute(corgi2, cfg, store=store, device="cpu", quiet=True).run_id)
    for arm in cfg.arms:  # each loader emitted exactly its planned order in its real epoch
        assert record.series(f"gaussian/{arm}_matches_plan").values[-1] == 1.0
    claims = {c.name: c for c in record.claims()}
    assert claims["gaussian-io"].passed
    kl = {arm: float(np.mean(record.series(f"gaussian/{arm}_batch_label_kl").values[-1])) for arm in cfg.arms}
    assert kl["full"] < kl["corgi2_2pass"] < kl["corgipile"] < kl["sequential"]
    accuracy = corgi2.arm_accuracy(record, "gaussian", "softmax")
    assert set(accuracy) == set(cfg.arms) and all(len(v) == cfg.n_seeds for v in accuracy.values())


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "corgi2", "--preset", "smoke", "arms=full,shuffle", "--store", store]) == 2
    assert "'arms' entries must be among" in capsys.readouterr().err
    assert main(["run", "corgi2", "--preset", "smoke", "gaussian.records_per_shard=0", "--store", store]) == 2
    assert "records_per_shard" in capsys.readouterr().err
