from dataclasses import replace

import numpy as np
import pytest

from learnlab.experiments import gd_vs_ntk as gn
from learnlab.models.mlp import MLPConfig
from learnlab.results import StoredRun
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def _stored(store, cfg):
    return StoredRun(store.get_run(execute(gn, cfg, store=store, device="cpu", quiet=True).run_id), gn.Config)


def test_edge_cells_separate_a_learnable_parity_from_an_unlearnable_one(store):
    base = gn.presets()["smoke"]
    cfg = replace(base, parts=("biased",), network=MLPConfig(width=64), cells=((0.0, 12, 2), (0.0, 40, 6)),
                  edge_samples=4000, null_draws=3, online=replace(base.online, max_steps=1500, eval_every=500))
    run = _stored(store, cfg)
    easy, hard = gn.cell(run, 0), gn.cell(run, 1)
    assert np.mean(easy["network"]) >= 0.95 and np.mean(easy["edge"]) > 3 * np.mean(easy["floor"])
    assert np.mean(hard["network"]) <= 0.6 and abs(np.mean(hard["edge"])) < 3 * np.mean(hard["floor"])
    claims = {c.name: c for c in run.record.claims()}
    assert claims["edge-predicts-gd"].verdict != "not reproduced"
    # the learnable cell ends once every seed reaches the target; the other trains to the budget
    assert run.steps("cell0/accuracy")[-1] < 1500 == run.steps("cell1/accuracy")[-1]
    # kernel_at="largest_n": only the n = 40 cell fits the NTK ridge
    assert len(easy["kernel"]) == 0 and hard["kernel"].shape == (cfg.kernel_seeds,)


def test_scaling_curves_and_the_lazy_model(smoke_run):
    cfg = gn.presets()["smoke"]
    shared, run_id = smoke_run(gn.NAME)  # the session's smoke run, shared with the contract test
    run = StoredRun(shared.get_run(run_id), gn.Config)
    assert set(gn.network_curve(run, 8, cfg.k)) == set(cfg.network_samples)
    kernel = gn.kernel_curve(run, 4, cfg.k)
    assert list(kernel)[0] == cfg.kernel_samples[0] and all(v.shape == (cfg.kernel_seeds,) for v in kernel.values())
    assert gn.crossing_samples([100, 200, 400], [0.9, 0.97, 0.99], 0.95) > 100
    assert gn.crossing_samples([100, 200], [0.96, 0.99], 0.95) == 100
    assert np.isnan(gn.crossing_samples([100], [0.5], 0.95))
    assert run.values("lazy0/accuracy").shape[1] == cfg.n_seeds
    # the online linearised model trains as long as its cell's network did
    cell = [i for i, c in enumerate(cfg.cells) if c == cfg.lazy_cells[0][:3]][0]
    assert run.steps("lazy0/accuracy")[-1] == run.steps(f"cell{cell}/accuracy")[-1]


def test_claims_are_declared_from_the_config_alone():
    quick = gn.presets()["quick"]
    specs = {s.name: s for s in gn.claims(quick)}
    assert specs["lazy-like-kernel"].kind == "sanity"
    assert specs["kernel-exponent"].side == ">=" and specs["kernel-exponent"].threshold == quick.k - 1
    assert "(alpha=0.5, n=50, k=5)" in specs["network-learns"].statement


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "gd-vs-ntk", "--preset", "smoke", "parts=scaling,nonsense", "--store", store]) == 2
    assert "'parts' entries must be among" in capsys.readouterr().err
