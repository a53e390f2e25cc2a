import numpy as np
import pytest
import torch

from learnlab.claims import check_claims
from learnlab.config import to_dict
from learnlab.experiments import hidden_progress
from learnlab.experiments.hidden_progress import schema as M
from learnlab.probes.fourier import fourier_gap
from learnlab.probes.parity_progress import neuron_support_margin, neuron_support_share, unit_init_fourier_gap
from learnlab.results import StoredRun

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def _synthetic_run(store, *, loss_curve, support_growth, n_seeds=16, t_c=1000, max_accuracy=1.0, drift=1.0):
    """A stored run whose curves are given in closed form (no training)."""
    cfg = hidden_progress.presets()["quick"]
    store.create_run("synthetic", experiment=hidden_progress.NAME, preset=None, config=to_dict(cfg), config_hash="h",
                     seed=0, git_commit=None, versions={}, device="cpu")
    steps = np.arange(0, 2 * t_c + 1, 10)
    rows = [("synthetic", 0, M.UNIT_INIT_FOURIER_GAP, None, unit_init_fourier_gap(30, 3))]
    for s in range(n_seeds):
        accuracy = np.clip(0.5 + 0.5 * (steps - 0.7 * t_c) / (0.3 * t_c), 0.5, max_accuracy)
        curves = {
            M.TRAIN_LOSS: loss_curve(steps, t_c),
            M.VAL_ACC: accuracy,
            M.TOP_NEURONS_SEPARATED: np.where(steps >= 0.8 * t_c, 0.9, 0.1),
            # log share growth, linear in t with a seed-dependent slope
            M.TOP_NEURONS_SUPPORT_GROWTH: (support_growth + 0.05 * (s % 4 - 1.5)) * steps / t_c,
            M.WEIGHT_MOVEMENT: (steps / t_c) ** drift,
            M.scoped(M.RANDOM_LABELS, M.WEIGHT_MOVEMENT): (steps / t_c) ** 0.5,
        }
        for name, values in curves.items():
            rows += [("synthetic", int(step), name, s, float(v)) for step, v in zip(steps, values)]
    store.add_metrics(rows)
    return StoredRun(store.get_run("synthetic"), hidden_progress.Config)


def _verdicts(run):
    return {c.name: c.verdict for c in check_claims(hidden_progress.claims(run.config), run)}


def _plateau_then_drop(steps, t_c):
    return np.where(steps < 0.8 * t_c, 1.0, np.maximum(0.01, 1.0 - (steps - 0.8 * t_c) / (0.2 * t_c)))


def _smooth_decay(steps, t_c):
    return np.exp(-steps / (0.3 * t_c))


def test_claims_are_reproduced_on_a_plateau_with_an_abrupt_drop_and_support_growth(store):
    run = _synthetic_run(store, loss_curve=_plateau_then_drop, support_growth=0.5)
    assert _verdicts(run) == {"abrupt-transition": "reproduced", "seeds-converge": "reproduced",
                              "support-grows-under-flat-loss": "reproduced", "drift-vs-random-walk": "reproduced",
                              "movement-starts-at-zero": "pass", "unit-init-fourier-gap": "pass"}
    assert hidden_progress.convergence_steps(run).tolist() == [1000.0] * 16


def test_claims_are_not_reproduced_on_a_smooth_curve_no_support_growth_and_a_random_walk(store):
    run = _synthetic_run(store, loss_curve=_smooth_decay, support_growth=-0.3, drift=0.4)
    verdicts = _verdicts(run)
    assert verdicts["abrupt-transition"] == "not reproduced"
    assert verdicts["support-grows-under-flat-loss"] == "not reproduced"
    assert verdicts["drift-vs-random-walk"] == "not reproduced"


def test_seeds_that_never_converge_fail_the_convergence_claim(store):
    run = _synthetic_run(store, loss_curve=_plateau_then_drop, support_growth=0.5, max_accuracy=0.99)
    assert _verdicts(run)["seeds-converge"] == "not reproduced"


@pytest.mark.parametrize("n, k", [(8, 2), (8, 3), (9, 3), (12, 4), (15, 3), (14, 3)])
def test_the_all_ones_fourier_gap_equals_enumeration(n, k):
    weight, bias = torch.ones(1, 1, n, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    enumerated = float(fourier_gap(weight, bias, torch.arange(k)[None], "relu"))
    assert unit_init_fourier_gap(n, k) == pytest.approx(enumerated, abs=1e-12)
    # Positive unless n and k are both odd (majority's even-order coefficients vanish).
    assert (unit_init_fourier_gap(n, k) > 1e-12) == (n % 2 == 0 or k % 2 == 0)


def test_the_neuron_margin_is_support_mean_minus_off_support_max():
    weight = torch.tensor([[[3.0, 1.0, 0.5, -2.0], [0.1, 0.1, 1.0, 0.0]]])  # (1, 2, 4)
    margin = neuron_support_margin(weight, torch.tensor([[0, 1]]))
    assert margin[0].tolist() == pytest.approx([2.0 - 2.0, 0.1 - 1.0])


def test_the_support_share_is_support_mean_over_off_support_mean():
    weight = torch.tensor([[[3.0, 1.0, 0.5, -2.0], [0.1, 0.1, 1.0, 0.0]]])  # (1, 2, 4)
    share = neuron_support_share(weight, torch.tensor([[0, 1]]))
    assert share[0].tolist() == pytest.approx([2.0 / 1.25, 0.1 / 0.5])


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
    converged = hidden_progress.convergence_steps(StoredRun(store.get_run(outcome.run_id), hidden_progress.Config))
    assert np.isfinite(converged).all(), converged


def test_a_width_and_learning_rate_grid_trains_as_one_ensemble_of_separate_runs(store):
    from learnlab.config import apply_overrides
    from learnlab.runner import execute

    base = ["task.n_bits=20", "task.k=3", "train.max_steps=150", "n_seeds=2"]
    grid = execute(hidden_progress, apply_overrides(hidden_progress.presets()["smoke"],
                   [*base, "widths=8,16", "lrs=0.05,0.1"]), store=store, device="cpu", quiet=True)
    alone = execute(hidden_progress, apply_overrides(hidden_progress.presets()["smoke"],
                    [*base, "model.width=16", "train.lr=0.05"]), store=store, device="cpu", quiet=True)
    widths = store.series(grid.run_id, M.REPLICA_WIDTH).values[0]
    lrs = store.series(grid.run_id, M.REPLICA_LR).values[0]
    assert widths.tolist() == [8, 8, 8, 8, 16, 16, 16, 16] and lrs.tolist() == pytest.approx([0.05, 0.05, 0.1, 0.1] * 2)
    # Replicas 4 and 5 (width 16, lr 0.05) are the two seeds of the separate run.
    together, separate = store.series(grid.run_id, M.TRAIN_LOSS), store.series(alone.run_id, M.TRAIN_LOSS)
    np.testing.assert_allclose(together.values[:, 4:6], separate.values, rtol=1e-5, atol=1e-6)


def test_a_seed_that_never_converges_counts_as_slowest_in_the_median():
    assert hidden_progress.median_t_c(np.array([100.0, 200.0, np.nan])) == 200.0
    assert np.isnan(hidden_progress.median_t_c(np.array([100.0, np.nan, np.nan])))


def test_scaling_configs_pair_each_learner_with_its_rate():
    from learnlab.config import ConfigError, apply_overrides

    cfg = hidden_progress.presets()["learners"]
    assert hidden_progress.scaling_learners(cfg) == [("mlp", 0.1), ("neuron", 0.1), ("polynet", 0.05)]
    with pytest.raises(ConfigError, match="one rate per entry"):
        apply_overrides(cfg, ["scaling_lrs=0.1"])
