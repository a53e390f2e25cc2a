from dataclasses import replace

import numpy as np
import pytest

from learnlab.experiments import sq_vs_pac as sq
from learnlab.experiments.sq_vs_pac import schema as names
from learnlab.models.mlp import MLPConfig
from learnlab.results import StoredRun
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def _stored(store, cfg):
    return StoredRun(store.get_run(execute(sq, cfg, store=store, device="cpu", quiet=True).run_id), sq.Config)


def test_deterministic_rounding_blocks_the_parity_at_large_batch_and_not_at_small(store):
    # A small version of the phase-diagram claims: (10, 3) parity, b rho^2 = 46 vs 2.9 at rho = 0.3.
    cfg = replace(sq.presets()["smoke"], n_seeds=2, n_bits=10, k=3, model=MLPConfig(width=64), steps=1500,
                  targets=("parity",), modes=("nearest",), batch_sizes=(32, 512), rhos=(0.3,), n_test=2000)
    run = _stored(store, cfg)
    assert np.mean(sq.cell_accuracy(run, "parity", "exact", 512)) >= 0.9
    assert np.mean(sq.cell_accuracy(run, "parity", "nearest", 512, 0.3)) <= 0.6
    assert np.mean(sq.cell_accuracy(run, "parity", "nearest", 32, 0.3)) >= 0.9
    dis = run.values(f"{names.DISAGREEMENT_SCOPE}/{names.DISAGREEMENT}")
    assert dis[0].mean() > dis[-1].mean()  # b = 4 disagrees more than b = 64
    verdicts = {c.name: c.verdict for c in run.record.claims()}
    assert verdicts["sq-regime"] != "not reproduced"  # 2 seeds: reproduced or (too few runs) inconclusive


def test_the_channel_reads_examples_back_below_the_dead_zone_and_nothing_above(smoke_run):
    cfg = sq.presets()["smoke"]
    shared, run_id = smoke_run(sq.NAME)  # the session's smoke run, shared with the contract test
    run = StoredRun(shared.get_run(run_id), sq.Config)
    recovered = names.channel_metric(names.channel_prefix("sgd", "nearest"), "recovered")
    assert list(run.steps(recovered)) == list(cfg.channel.batch_sizes)
    # b = 4, rho = 0.05 nearest: every example is above rho / 2 and read back (few collisions at M = 512)
    assert run.values(recovered)[0].min() >= 0.9
    adversarial = names.channel_metric(names.channel_prefix("sgd", "adv_zero"), "recovered")
    assert run.values(adversarial)[1].max() == 0.0  # b = 32: 1/b <= 3 rho / 4
    claims = {c.name: c for c in run.record.claims()}
    assert claims["channel-silent"].verdict == "pass"
    assert {c.kind for c in claims.values()} == {"reproduction", "sanity"}


def test_claims_are_declared_from_the_config_alone():
    specs = {s.name: s for s in sq.claims(sq.presets()["quick"])}
    assert {"exact-gradients", "sq-regime", "noise-regime", "majority-survives", "stochastic-control",
            "gd-fine-learns", "gd-coarse-fails"} <= {n for n, s in specs.items() if s.kind == "reproduction"}
    assert {"channel-reads", "channel-silent", "sq-collapse"} <= {n for n, s in specs.items() if s.kind == "sanity"}


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "sq-vs-pac", "--preset", "smoke", "modes=nearest,exactly", "--store", store]) == 2
    assert "'modes' entries must be among" in capsys.readouterr().err
    assert main(["run", "sq-vs-pac", "--preset", "smoke", "k=4", "--store", store]) == 2
    assert "odd k" in capsys.readouterr().err


def test_control_precisions_must_be_on_the_grid():
    quick = sq.presets()["quick"]
    assert quick.check() is None
    assert "control_rhos" in replace(quick, control_rhos=(0.5,)).check()


def test_controls_run_only_where_their_claims_look_and_every_exact_row_runs(store):
    # The quick preset's shape: controls (stochastic parity, the majority) at one batch size and
    # one precision; the majority's exact row (rho = 1, off the control grid) must still run.
    cfg = replace(sq.presets()["smoke"], steps=10, control_batches=(32,), control_rhos=(0.3,),
                  modes=("nearest", "stochastic"), majority_modes=("nearest",))
    run = _stored(store, cfg)
    assert run.record.status == "completed"
    assert len(sq.cell_accuracy(run, "majority", "exact", 32)) == cfg.n_seeds
    assert len(sq.cell_accuracy(run, "majority", "nearest", 32, 0.3)) == cfg.n_seeds
    assert len(sq.cell_accuracy(run, "parity", "stochastic", 32, 0.3)) == cfg.n_seeds
    assert not run.has(f"{names.phase_scope('majority', 'exact', 4)}/{names.ACCURACY}")  # no control at b = 4
