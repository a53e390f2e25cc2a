from dataclasses import replace

import numpy as np

from learnlab.experiments import gd_vs_ntk as gn
from learnlab.models.mlp import MLPConfig
from learnlab.runner import execute


def test_edge_cells_separate_a_learnable_parity_from_an_unlearnable_one(store):
    base = gn.presets()["smoke"]
    cfg = replace(base, parts=("biased",), network=MLPConfig(width=64), cells=((0.0, 12, 2), (0.0, 40, 6)),
                  edge_samples=4000, null_draws=3, online=replace(base.online, max_steps=1500, eval_every=500))
    record = store.get_run(execute(gn, cfg, store=store, device="cpu", quiet=True).run_id)
    rows = gn.cell_table(record)
    assert [(r["n"], r["k"]) for r in rows] == [(12, 2), (40, 6)]
    easy, hard = rows
    assert np.mean(easy["network"]) >= 0.95 and np.mean(easy["edge"]) > 3 * np.mean(easy["floor"])
    assert np.mean(hard["network"]) <= 0.6 and abs(np.mean(hard["edge"])) < 3 * np.mean(hard["floor"])
    assert "edge-predicts-gd" in [c.name for c in record.claims()]


def test_scaling_curves_and_the_lazy_model(store):
    cfg = gn.presets()["smoke"]
    record = store.get_run(execute(gn, cfg, store=store, device="cpu", quiet=True).run_id)
    assert set(gn.network_curve(record, 8, cfg.k)) == set(cfg.network_samples)
    kernel = gn.kernel_curve(record, 4, cfg.k)
    assert list(kernel)[0] == cfg.kernel_samples[0] and all(v.shape == (cfg.n_seeds,) for v in kernel.values())
    assert gn.smallest_samples({100: np.array([0.9]), 200: np.array([0.97]), 400: np.array([0.99])}, 0.95) == 200
    assert np.isnan(gn.smallest_samples({100: np.array([0.5])}, 0.95))
    assert record.series("lazy0/accuracy").values.shape[1] == cfg.n_seeds


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "gd-vs-ntk", "--preset", "smoke", "parts=scaling,nonsense", "--store", store]) == 2
    assert "'parts' entries must be among" in capsys.readouterr().err
