from dataclasses import replace

import numpy as np
import pytest

from learnlab.claims import check_claims
from learnlab.config import to_dict
from learnlab.experiments import pareto_frontiers as pf
from learnlab.experiments.pareto_frontiers import schema as M
from learnlab.results import StoredRun
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def _synthetic(store, success, *, widths=(10, 100, 300), sizes=(250, 500), trials=8, grokking=False):
    """A stored frontier run whose outcomes are given: success[(width, init, m)] = successes of ``trials``."""
    cfg = replace(pf.presets()["quick"], parts=("frontier",), widths=widths, sample_sizes=sizes, n_trials=trials)
    store.create_run("syn", experiment=pf.NAME, preset=None, config=to_dict(cfg), config_hash="h", seed=0,
                     git_commit=None, versions={}, device="cpu")
    grid, rows = pf.frontier_grid(cfg), []
    for width in widths:
        for replica, (init, m, trial) in enumerate(grid):
            won = trial < success[width, init, m]
            # A sparse winner succeeds sooner than a dense one.
            step = (500.0 if init == "sparse" else 1000.0) * (1 + trial) if won else None
            rows += [("syn", 10_000, M.frontier_metric(width, M.SUCCESS), replica, float(won)),
                     ("syn", 10_000, M.frontier_metric(width, M.FINAL_TEST_ERROR), replica, 0.02 if won else 0.5),
                     ("syn", 10_000, M.frontier_metric(width, M.SUCCESS_STEP), replica, step)]
            generalises_at = 3000 if grokking else 700  # it fits the training set at step 600
            for t in range(0, 10_001, 100):
                rows += [("syn", t, M.frontier_metric(width, M.TRAIN_ACC), replica, 1.0 if t >= 600 else 0.6),
                         ("syn", t, M.frontier_metric(width, M.TEST_ERROR), replica,
                          0.02 if won and t >= generalises_at else 0.5)]
    store.add_metrics(rows)
    return StoredRun(store.get_run("syn"), pf.Config)


def _verdicts(run):
    return {claim.name: claim.verdict for claim in check_claims(pf.claims(run.config), run)}


def test_frontier_table_counts_successes_with_wilson_intervals(store):
    success = {(w, i, m): n for w in (10, 100, 300) for i, n in (("dense", 1), ("sparse", 3)) for m in (250, 500)}
    points = pf.frontier_table(_synthetic(store, success, trials=4))
    p = pf.point(points, 100, "sparse", 500)
    assert (p.successes, p.trials, p.probability) == (3, 4, 0.75)
    assert p.low < 0.75 < p.high
    np.testing.assert_array_equal(np.sort(p.steps), [500, 1000, 1500])


def test_claims_are_reproduced_on_a_frontier_that_shows_them(store):
    success = {}
    for w, base in ((10, 0), (100, 2), (300, 3)):
        for m, extra in ((250, 0), (500, 1)):
            success[w, "dense", m], success[w, "sparse", m] = base + extra, base + extra + 4
    verdicts = _verdicts(_synthetic(store, success, grokking=True))
    assert verdicts == {"success-is-final-error": "pass", "sparse-init-helps": "reproduced",
                        "sparse-fewer-steps": "reproduced", "width-helps": "reproduced", "grokking": "reproduced"}


def test_claims_are_not_reproduced_when_the_data_say_otherwise(store):
    success = {}
    for w, base in ((10, 8), (100, 6), (300, 4)):  # success falls with width; dense beats sparse
        for m in (250, 500):
            success[w, "dense", m], success[w, "sparse", m] = base, max(0, base - 3)
    verdicts = _verdicts(_synthetic(store, success))
    assert verdicts["width-helps"] == "not reproduced"
    assert verdicts["sparse-init-helps"] == "not reproduced"
    assert verdicts["grokking"] == "not reproduced"  # runs generalise as they fit


def test_the_sparse_claim_is_scoped_to_widths_where_a_lottery_neuron_is_likely():
    from learnlab.experiments.pareto_frontiers.evidence import LOTTERY_SCOPE, lottery_neurons

    assert lottery_neurons(1000, 100, 3, 2) > LOTTERY_SCOPE  # the paper's smallest width
    assert lottery_neurons(10, 40, 3, 2) < 0.05 < LOTTERY_SCOPE  # width 10 at n = 40: shown, not gated


def test_the_sparse_init_is_a_fresh_s_input_unit(store):
    cfg = replace(pf.presets()["smoke"], parts=("frontier",), inits=("sparse",), train=replace(
        pf.presets()["smoke"].train, max_steps=1))
    from learnlab.models.mlp import TwoLayerMLP

    captured = {}
    original = TwoLayerMLP.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        captured.setdefault("models", []).append(self)
    TwoLayerMLP.__init__ = spy
    try:
        execute(pf, cfg, store=store, device="cpu", quiet=True)
    finally:
        TwoLayerMLP.__init__ = original
    weight = captured["models"][1].weight.detach()  # the sparse init, before its replicas are copied in
    nonzero = weight[weight != 0]
    assert ((weight != 0).sum(dim=-1) <= cfg.sparsity).all()
    assert nonzero.abs().max() <= 1 / np.sqrt(cfg.sparsity) and nonzero.abs().max() > 1 / np.sqrt(cfg.task.n_bits)
    bias = captured["models"][1].bias.detach()  # a fresh s-input unit's bias: U(+-1/sqrt(s)) too
    assert bias.abs().max() <= 1 / np.sqrt(cfg.sparsity) and bias.abs().max() > 1 / np.sqrt(cfg.task.n_bits)


def test_smoke_frontier_stops_runs_at_success_and_decides_on_the_full_test_set(store):
    cfg = replace(pf.presets()["smoke"], parts=("frontier",))
    outcome = execute(pf, cfg, store=store, device="cpu", quiet=True)
    record = store.get_run(outcome.run_id)
    success, step = record.series("w16/success"), record.series("w16/success_step")
    final = record.series("w16/final_test_error")
    assert success.values[-1].sum() >= 1
    won = success.values[-1] > 0
    assert (final.values[-1][won] <= cfg.task.target_error).all()
    assert np.isfinite(step.values[-1][won]).all()
    # Every run of this easy (8, 2) grid succeeds, so the ensemble stops before its cap.
    if won.all():
        assert success.steps[-1] < cfg.train.max_steps


def test_tabular_part_runs_on_a_user_csv_and_compares_with_forests(store, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    path = tmp_path / "mine.csv"
    path.write_text("f0,f1,f2,f3,f4,label\n" + "\n".join(",".join(f"{v:.4f}" for v in row) + f",{t}"
                                                             for row, t in zip(x, y)))
    cfg = pf.presets()["smoke"]
    cfg = replace(cfg, parts=("tabular",), tabular=replace(cfg.tabular, datasets=(str(path),), target="label",
                                                           fractions=(0.5,), n_trials=3))
    run = StoredRun(store.get_run(execute(pf, cfg, store=store, device="cpu", quiet=True).run_id), pf.Config)
    table = pf.tabular_table(run)["mine"]
    assert set(table) == {"random_forest", "gradient_boosting", "mlp w32 d1 dense", "mlp w32 d1 sparse s=2"}
    assert all(accuracy.shape == (1, 3) for accuracy in table.values())
    assert table["random_forest"].mean() > 0.7  # a linear rule the forest finds from 42 examples
    assert "tabular-sparse-mlp" in _verdicts(run)


def test_a_resumed_frontier_keeps_its_stopped_runs_and_ends_as_an_uninterrupted_one(store):
    # (10, 3) on 4 runs: some stop early, so the checkpoint carries a partly frozen ensemble.
    base = pf.presets()["smoke"]
    cfg = replace(base, parts=("frontier",), task=replace(base.task, n_bits=10, k=3),
                  train=replace(base.train, max_steps=1200, checkpoint_every=150))
    reference = execute(pf, cfg, store=store, device="cpu", quiet=True).run_id
    crashed = execute(pf, cfg, store=store, device="cpu", quiet=True).run_id
    store.set_status(crashed, "failed", "pretend it crashed")  # resume reloads its last checkpoint
    assert execute(pf, None, store=store, resume=crashed, device="cpu", quiet=True).run_id == crashed
    steps = store.series(reference, "w16/success_step").values[-1]
    assert np.isfinite(steps).any()
    assert store.all_metrics(crashed) == store.all_metrics(reference)
