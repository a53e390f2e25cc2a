import numpy as np
import pytest

from learnlab.experiments import hidden_progress
from learnlab.config import to_dict


def _synthetic_run(store, *, loss_curve, separate_at, n_seeds=4, t_c=1000, max_accuracy=1.0):
    """A stored run whose curves are given in closed form (no training)."""
    store.create_run("synthetic", experiment="hidden-progress", preset=None,
                     config=to_dict(hidden_progress.presets()["quick"]), config_hash="h", seed=0,
                     git_commit=None, versions={}, device="cpu")
    steps = np.arange(0, 2 * t_c + 1, 10)
    rows = []
    for s in range(n_seeds):
        accuracy = np.clip(0.5 + 0.5 * (steps - 0.7 * t_c) / (0.3 * t_c), 0.5, max_accuracy)
        curves = {
            "train_loss": loss_curve(steps, t_c),
            "val_acc": accuracy,
            "support_weight": 0.1 + 0.2 * (steps >= separate_at * t_c),
            "off_support_weight_max": np.full(len(steps), 0.15),
            "weight_movement": 0.01 + steps / t_c,
        }
        for name, values in curves.items():
            rows += [("synthetic", int(step), name, s, float(v)) for step, v in zip(steps, values)]
    store.add_metrics(rows)
    return store.get_run("synthetic")


def _plateau_then_drop(steps, t_c):
    return np.where(steps < 0.8 * t_c, 1.0, np.maximum(0.01, 1.0 - (steps - 0.8 * t_c) / (0.2 * t_c)))


def _smooth_decay(steps, t_c):
    return np.exp(-steps / (0.3 * t_c))


def test_claims_pass_on_a_plateau_with_an_abrupt_drop(store):
    record = _synthetic_run(store, loss_curve=_plateau_then_drop, separate_at=0.3)
    verdicts = {c.name: c.passed for c in hidden_progress.claims(record)}
    assert verdicts == {"abrupt-transition": True, "all-seeds-converge": True, "support-separates-first": True,
                        "steady-weight-movement": True}
    assert hidden_progress.convergence_steps(record).tolist() == [1000.0] * 4


def test_claims_fail_on_a_smooth_curve_and_late_separation(store):
    record = _synthetic_run(store, loss_curve=_smooth_decay, separate_at=0.9)
    verdicts = {c.name: c.passed for c in hidden_progress.claims(record)}
    assert verdicts["abrupt-transition"] is False
    assert verdicts["support-separates-first"] is False


def test_a_seed_that_never_converges_fails_the_convergence_claim(store):
    record = _synthetic_run(store, loss_curve=_plateau_then_drop, separate_at=0.3, max_accuracy=0.99)
    claim = next(c for c in hidden_progress.claims(record) if c.name == "all-seeds-converge")
    assert not claim.passed and claim.measured.startswith("0/4")


@pytest.mark.parametrize("overrides", [
    ["learner=neuron", "neuron.activation=sin"],
    ["learner=neuron", "neuron.activation=zigzag", "neuron.readout=true"],
    ["learner=polynet", "train.lr=0.05"],
    ["learner=polynet", "polynet.disjoint=true", "train.lr=0.05"],
    ["model.activation=power", "model.power=2", "train.lr=0.02"],
    ["model.init=gaussian"],
    ["model.init=bernoulli", "model.init_scale=0.2"],
    ["train.weight_decay=0.01", "train.weight_decay_style=multiplicative"],
    ["learner=transformer", "transformer.d_model=32", "train.optimizer=adam", "train.lr=3e-3"],
])
def test_every_learner_solves_a_small_parity(store, overrides):
    from learnlab.config import apply_overrides
    from learnlab.runner import execute

    cfg = apply_overrides(hidden_progress.presets()["smoke"], [*overrides, "train.max_steps=4000"])
    outcome = execute(hidden_progress, cfg, store=store, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    converged = hidden_progress.convergence_steps(store.get_run(outcome.run_id))
    assert np.isfinite(converged).all(), converged


def test_a_width_and_learning_rate_grid_trains_as_one_ensemble_of_separate_runs(store):
    from learnlab.config import apply_overrides
    from learnlab.runner import execute

    base = ["task.n_bits=20", "task.k=3", "train.max_steps=150", "n_seeds=2"]
    grid = execute(hidden_progress, apply_overrides(hidden_progress.presets()["smoke"],
                   [*base, "widths=8,16", "lrs=0.05,0.1"]), store=store, device="cpu", quiet=True)
    alone = execute(hidden_progress, apply_overrides(hidden_progress.presets()["smoke"],
                    [*base, "model.width=16", "train.lr=0.05"]), store=store, device="cpu", quiet=True)
    widths = store.series(grid.run_id, "replica_width").values[0]
    lrs = store.series(grid.run_id, "replica_lr").values[0]
    assert widths.tolist() == [8, 8, 8, 8, 16, 16, 16, 16] and lrs.tolist() == pytest.approx([0.05, 0.05, 0.1, 0.1] * 2)
    # Replicas 4 and 5 (width 16, lr 0.05) are the two seeds of the separate run.
    together, separate = store.series(grid.run_id, "train_loss"), store.series(alone.run_id, "train_loss")
    np.testing.assert_allclose(together.values[:, 4:6], separate.values, rtol=1e-5, atol=1e-6)


def test_a_seed_that_never_converges_counts_as_slowest_in_the_median():
    assert hidden_progress._median_t_c(np.array([100.0, 200.0, np.nan])) == 200.0
    assert np.isnan(hidden_progress._median_t_c(np.array([100.0, np.nan, np.nan])))


def test_scaling_configs_pair_each_learner_with_its_rate():
    from learnlab.config import ConfigError, apply_overrides

    cfg = hidden_progress.presets()["learners"]
    assert hidden_progress._scaling_learners(cfg) == [("mlp", 0.1), ("neuron", 0.1), ("polynet", 0.05)]
    with pytest.raises(ConfigError, match="one rate per entry"):
        apply_overrides(cfg, ["scaling_lrs=0.1"])
