from dataclasses import replace

import numpy as np

from learnlab.config import to_dict
from learnlab.experiments import pareto_frontiers as pf
from learnlab.runner import execute


def _synthetic(store, success, *, widths=(10, 100), sizes=(250, 500), trials=4, grokking=False):
    """A stored frontier run whose outcomes are given: success[(width, init, m)] = successes of ``trials``."""
    cfg = replace(pf.presets()["quick"], parts=("frontier",), widths=widths, sample_sizes=sizes, n_trials=trials)
    store.create_run("syn", experiment=pf.NAME, preset=None, config=to_dict(cfg), config_hash="h", seed=0,
                     git_commit=None, versions={}, device="cpu")
    grid, rows = pf._frontier_grid(cfg), []
    for width in widths:
        for replica, (init, m, trial) in enumerate(grid):
            won = trial < success[width, init, m]
            rows += [("syn", 10_000, f"w{width}/success", replica, float(won)),
                     ("syn", 10_000, f"w{width}/success_step", replica, 1000.0 * (1 + trial) if won else None)]
            generalises_at = 3000 if grokking else 700  # it fits the training set at step 600
            for step in range(0, 10_001, 100):
                rows += [("syn", step, f"w{width}/train_acc", replica, 1.0 if step >= 600 else 0.6),
                         ("syn", step, f"w{width}/test_error", replica, 0.02 if won and step >= generalises_at else 0.5)]
    store.add_metrics(rows)
    return store.get_run("syn")


def _claims(record):
    return {claim.name: claim for claim in pf.claims(record)}


def test_frontier_table_counts_successes_with_wilson_intervals(store):
    success = {(w, i, m): n for w in (10, 100) for i, n in (("dense", 1), ("sparse", 3)) for m in (250, 500)}
    points = pf.frontier_table(_synthetic(store, success))
    point = pf._point(points, 100, "sparse", 500)
    assert (point.successes, point.trials, point.probability) == (3, 4, 0.75)
    assert point.low < 0.75 < point.high
    np.testing.assert_array_equal(np.sort(point.steps), [1000, 2000, 3000])


def test_sparse_and_width_claims_fail_when_the_data_say_otherwise(store):
    success = {(10, "dense", 250): 4, (10, "sparse", 250): 4, (10, "dense", 500): 4, (10, "sparse", 500): 4,
               (100, "dense", 250): 0, (100, "sparse", 250): 0, (100, "dense", 500): 4, (100, "sparse", 500): 3}
    claims = _claims(_synthetic(store, success, trials=16 // 4))
    assert not claims["sparse-init-helps"].passed  # 3/4 sparse < 4/4 dense at (100, 500)
    assert not claims["width-helps"].passed  # width 100 at m=250: 0/4, wholly below width 10's 4/4
    assert not claims["m500-gap"].passed  # dense succeeds at m=500


def test_sparse_and_width_claims_pass_on_a_frontier_that_shows_them(store):
    success = {(10, "dense", 250): 0, (10, "sparse", 250): 1, (10, "dense", 500): 0, (10, "sparse", 500): 2,
               (100, "dense", 250): 0, (100, "sparse", 250): 2, (100, "dense", 500): 1, (100, "sparse", 500): 4}
    claims = _claims(_synthetic(store, success, grokking=True))
    assert claims["sparse-init-helps"].passed and claims["width-helps"].passed and claims["m500-gap"].passed
    assert claims["grokking"].passed  # train 100% at 600, test error down only at 3000


def test_no_grokking_when_runs_generalise_as_they_fit(store):
    success = {(w, i, m): 2 for w in (10, 100) for i in ("dense", "sparse") for m in (250, 500)}
    assert not _claims(_synthetic(store, success))["grokking"].passed


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
    record = store.get_run(execute(pf, cfg, store=store, device="cpu", quiet=True).run_id)
    table = pf.tabular_table(record)["mine"]
    assert set(table) == {"random_forest", "gradient_boosting", "mlp w32 d1 dense", "mlp w32 d1 sparse s=2"}
    assert all(accuracy.shape == (1, 3) for accuracy in table.values())
    assert table["random_forest"].mean() > 0.7  # a linear rule the forest finds from 42 examples
    assert "tabular-sparse-mlp" in _claims(record)


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
    assert np.isfinite(steps).any()  # some runs stopped early (4 of 8 are frozen in the step-1050 checkpoint)
    assert store.all_metrics(crashed) == store.all_metrics(reference)
