from dataclasses import replace

import numpy as np

from learnlab.experiments import sq_vs_pac as sq
from learnlab.models.mlp import MLPConfig
from learnlab.runner import execute


def test_deterministic_rounding_blocks_the_parity_at_large_batch_and_not_at_small(store):
    # A small version of claims 1-3: (10, 3) parity, b rho^2 = 46 vs 2.9 at rho = 0.3.
    cfg = replace(sq.presets()["smoke"], n_seeds=2, n_bits=10, k=3, model=MLPConfig(width=64), steps=1500,
                  targets=("parity",), modes=("nearest",), batch_sizes=(32, 512), rhos=(0.3,), n_test=2000)
    record = store.get_run(execute(sq, cfg, store=store, device="cpu", quiet=True).run_id)
    exact = sq.phase_table(record, "parity", "exact")
    nearest = sq.phase_table(record, "parity", "nearest")
    assert set(nearest) == {(32, 0.3), (512, 0.3)} and set(exact) == {(32, 0.0), (512, 0.0)}
    assert np.mean(exact[512, 0.0]) >= 0.9
    assert np.mean(nearest[512, 0.3]) <= 0.6
    assert np.mean(nearest[32, 0.3]) >= 0.9
    dis = record.series("disagreement/disagreement")
    assert dis.values[0].mean() > dis.values[-1].mean()  # b = 4 disagrees more than b = 64


def test_the_channel_part_and_the_claims_table_name_every_claim(store):
    cfg = sq.presets()["smoke"]
    record = store.get_run(execute(sq, cfg, store=store, device="cpu", quiet=True).run_id)
    names = [c.name for c in record.claims()]
    assert names == ["exact-gradients", "sq-regime", "small-batch", "majority-survives", "stochastic-control",
                     "sq-collapse", "sample-channel", "empirical-gd"]
    recovered = record.series("channel/sgd_nearest_recovered")
    assert list(recovered.steps) == list(cfg.channel.batch_sizes)
    # b = 4, rho = 0.05 nearest: every example is above rho / 2 and read back (no collisions at M = 512 here)
    assert recovered.values[0].min() >= 0.9
    assert record.series("channel/sgd_adv_zero_recovered").values[-1].max() == 0.0  # b = 32: 1/b <= 3 rho / 4


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "sq-vs-pac", "--preset", "smoke", "modes=nearest,exactly", "--store", store]) == 2
    assert "'modes' entries must be among" in capsys.readouterr().err
    assert main(["run", "sq-vs-pac", "--preset", "smoke", "k=4", "--store", store]) == 2
    assert "odd k" in capsys.readouterr().err
