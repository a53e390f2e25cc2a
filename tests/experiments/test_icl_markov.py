import numpy as np

from learnlab.claims import check_claims
from learnlab.config import to_dict
from learnlab.experiments import icl_markov
from learnlab.experiments.icl_markov import analysis, evidence
from learnlab.results import StoredRun


def _stored(store, curves: dict[str, np.ndarray], steps: np.ndarray, preset: str = "seeds10"):
    store.create_run("synthetic", experiment="icl-markov", preset=None, config=to_dict(icl_markov.presets()[preset]),
                     config_hash="h", seed=0, git_commit=None, versions={}, device="cpu")
    rows = []
    for name, values in curves.items():
        values = values if values.ndim == 2 else values[:, None]
        rows += [("synthetic", int(t), name, s, float(values[i, s])) for i, t in enumerate(steps)
                 for s in range(values.shape[1])]
    store.add_metrics(rows)
    return StoredRun(store.get_run("synthetic"), icl_markov.Config)


def _three_phases(steps, transitions):
    """KL curves (T, S) of models that go uniform -> unigram (plateau) -> bigram at ``transitions``."""
    out = {name: [] for name in ("kl", "kl_uniform", "kl_unigram", "kl_bigram")}
    for transition in transitions:
        kl = np.where(steps < 150, 0.21 - steps / 150 * 0.13, 0.08)
        kl = np.where(steps >= transition, np.maximum(0.015, 0.08 - (steps - transition) / 100 * 0.065), kl)
        bigram_phase = steps >= transition + 20
        uniform_phase = steps < 60
        out["kl"].append(kl)
        out["kl_uniform"].append(np.where(uniform_phase, 0.001, kl + 0.1))
        out["kl_unigram"].append(np.where(bigram_phase, 0.09, 0.01))
        out["kl_bigram"].append(np.where(bigram_phase, 0.005, 0.05))
    return {name: np.stack(values, axis=1) for name, values in out.items()}


def _verdicts(run, names):
    return {c.name: c.verdict for c in check_claims(icl_markov.claims(run.config), run) if c.name in names}


PHASE_CLAIMS = ("ends-at-bigram", "long-plateau", "abrupt-transition", "final-bigram-level",
                "transition-within-paper-budget")


def test_phase_claims_are_reproduced_on_three_phase_curves(store):
    steps = np.arange(0, 2001, 20)
    run = _stored(store, _three_phases(steps, [900 + 40 * s for s in range(12)]), steps)
    assert _verdicts(run, PHASE_CLAIMS) == {name: "reproduced" for name in PHASE_CLAIMS}
    assert analysis.transition_steps(run).tolist() == [920.0 + 40 * s for s in range(12)]


def test_phase_claims_are_not_reproduced_without_a_transition(store):
    steps = np.arange(0, 2001, 20)
    run = _stored(store, _three_phases(steps, [10_000] * 12), steps)
    verdicts = _verdicts(run, PHASE_CLAIMS)
    assert verdicts["ends-at-bigram"] == verdicts["transition-within-paper-budget"] == "not reproduced"
    assert verdicts["final-bigram-level"] == verdicts["abrupt-transition"] == "not reproduced"
    assert np.isnan(analysis.transition_steps(run)).all()


def test_a_seed_that_does_not_transition_lowers_the_rate_instead_of_failing_the_claim(store):
    steps = np.arange(0, 2001, 20)
    run = _stored(store, _three_phases(steps, [1000] * 11 + [10_000]), steps)
    claims = {c.name: c for c in check_claims(icl_markov.claims(run.config), run)}
    assert claims["ends-at-bigram"].verdict == "reproduced"
    assert claims["ends-at-bigram"].estimate == 11 / 12


def test_phases_and_longest_run():
    steps = np.arange(0, 100, 10)
    assert analysis.longest_run(steps, np.array([0, 1, 1, 1, 0, 1, 1, 0, 0, 1], bool)) == 20
    # uniform (0) for 2 evals, unigram (1) for 5, bigram (2) after; KL reaches the bigram level at step 80
    nearest = np.array([0, 0, 1, 1, 1, 1, 1, 2, 2, 2])[:, None]
    kl = np.array([0.2, 0.2, 0.08, 0.08, 0.08, 0.08, 0.08, 0.05, 0.02, 0.01])[:, None]
    p = analysis.phases(steps, nearest, kl, ["uniform", "unigram", "bigram"], evidence.BIGRAM_CUT)
    assert p["transition"].tolist() == [70.0] and p["first_unigram"].tolist() == [20.0]
    assert p["plateau"].tolist() == [40.0] and p["fall"].tolist() == [20.0]


def test_k2_claims_are_declared_for_k2_dirichlet_only():
    presets = icl_markov.presets()
    assert [s.name for s in icl_markov.claims(presets["priors"])] == [
        "ends-at-bigram", "doubly-stochastic-no-plateau", "unigram-mix-delays"]
    assert [s.name for s in icl_markov.claims(presets["trigram"])] == ["ngram-stages"]
    quick = {s.name: s for s in icl_markov.claims(presets["quick"])}
    assert quick["initial-kl"].kind == quick["one-layer-floor"].kind == "sanity"
    assert presets["quick"].n_seeds >= 10
    assert "transition-within-paper-budget" in {s.name for s in icl_markov.claims(presets["seeds10"])}


def test_the_evaluator_logs_the_models_readouts_under_the_metric_names():
    # What the evaluator needs from a model is the ReadoutModel protocol (readouts()), not its class.
    import torch

    from learnlab.models.icl_transformer import ICLTransformer
    from learnlab.models.minimal_induction import MinimalInductionModel
    from learnlab.probes.markov import ReadoutModel, RelativeAttentionStack

    cfg = icl_markov.presets()["smoke"]
    evaluator = icl_markov.MarkovEvaluator(cfg, torch.device("cpu"), 2)
    transformer = ICLTransformer(cfg.task.k, cfg.transformer, [0, 1]).eval()
    minimal = MinimalInductionModel(cfg.task.k, cfg.minimal, [0, 1])
    assert isinstance(transformer, RelativeAttentionStack) and not isinstance(minimal, RelativeAttentionStack)
    assert isinstance(transformer, ReadoutModel) and isinstance(minimal, ReadoutModel)
    from learnlab.experiments.icl_markov import metrics as M
    with torch.no_grad():
        logged = evaluator(transformer, 1)
        assert {M.l1_relative(m) for m in range(M.RELATIVE_OFFSETS)} | {M.L1_PREVIOUS, M.L2_INDUCTION} <= set(logged)
        logged = evaluator(minimal, 1)
    assert {M.minimal_v(m) for m in range(M.RELATIVE_OFFSETS)} | {
        M.MINIMAL_W_DIAGONAL, M.MINIMAL_W_OFF_DIAGONAL, M.MINIMAL_V_PREVIOUS} <= set(logged)
    assert all(v.shape == (2,) for v in logged.values())


def test_the_learning_rate_is_set_in_one_place_from_the_config():
    # The models' parameter groups carry multipliers only; the loop's set_learning_rate sets each
    # group's rate from the run's learning rate (#19): the minimal model at lr_v and lr_w.
    import pytest
    import torch

    from learnlab.experiments.icl_markov.training import model_and_optimizer
    from learnlab.train.optim import make_optimizer, set_learning_rate

    cfg = icl_markov.control_config(icl_markov.presets()["smoke"], "minimal")
    model, train, groups = model_and_optimizer(cfg, [0, 1], torch.device("cpu"))
    assert all("lr" not in group for group in groups)
    optimizer = make_optimizer(groups, train)
    set_learning_rate(optimizer, train.lr)
    assert train.optimizer == "sgd" and train.weight_decay == 0.0
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([cfg.minimal.lr_v, cfg.minimal.lr_w])
    transformer_cfg = icl_markov.presets()["smoke"]
    _, train, groups = model_and_optimizer(transformer_cfg, [0], torch.device("cpu"))
    assert train == transformer_cfg.train and all("lr" not in group for group in groups)


def test_flat_adamw_takes_the_steps_of_torch_adamw():
    # The transformer trains with FlatAdamW (one flat buffer, no torch.optim.Optimizer: the first of those
    # imports torch._dynamo, seconds): the same parameters as PyTorch's foreach AdamW, bit for bit, and its
    # state round-trips through state_dict (checkpoints).
    import torch

    from learnlab.experiments.icl_markov.training import model_and_optimizer
    from learnlab.train.optim import FlatAdamW, make_flat_optimizer, make_optimizer, set_learning_rate

    cfg = icl_markov.presets()["smoke"]
    trained = {}
    for name in ("torch", "flat"):
        model, train, groups = model_and_optimizer(cfg, [0, 1], torch.device("cpu"))
        optimizer = make_optimizer(groups, train) if name == "torch" else make_flat_optimizer(groups, train)
        assert isinstance(optimizer, FlatAdamW) == (name == "flat")
        g = torch.Generator().manual_seed(3)
        for step in range(5):
            optimizer.zero_grad(set_to_none=True)
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            set_learning_rate(optimizer, train.lr * (1 + step))
            optimizer.step()
        trained[name] = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(trained["torch"], trained["flat"]))
    state = optimizer.state_dict()
    model, train, groups = model_and_optimizer(cfg, [0, 1], torch.device("cpu"))
    again = make_flat_optimizer(groups, train)
    again.load_state_dict(state)
    assert again.steps == 5 and torch.equal(again.exp_avg, optimizer.exp_avg)
