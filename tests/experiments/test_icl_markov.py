import numpy as np

from learnlab.config import to_dict
from learnlab.experiments import icl_markov


def _stored(store, curves: dict[str, np.ndarray], steps: np.ndarray, config=None):
    store.create_run("synthetic", experiment="icl-markov", preset=None,
                     config=config or to_dict(icl_markov.presets()["quick"]), config_hash="h", seed=0,
                     git_commit=None, versions={}, device="cpu")
    rows = []
    for name, values in curves.items():
        values = values if values.ndim == 2 else values[:, None]
        rows += [("synthetic", int(t), name, s, float(values[i, s])) for i, t in enumerate(steps)
                 for s in range(values.shape[1])]
    store.add_metrics(rows)
    return store.get_run("synthetic")


def _three_phases(steps, transition):
    """KL curves of a model that goes uniform -> unigram (plateau) -> bigram at ``transition``."""
    kl = np.where(steps < 150, 0.21 - steps / 150 * 0.13, 0.08)
    kl = np.where(steps >= transition, np.maximum(0.015, 0.08 - (steps - transition) / 100 * 0.065), kl)
    bigram_phase = steps >= transition + 20
    kl_unigram = np.where(bigram_phase, 0.09, 0.01)
    kl_bigram = np.where(bigram_phase, 0.005, 0.05)
    return {"kl": kl, "kl_uniform": kl + 0.1, "kl_unigram": kl_unigram, "kl_bigram": kl_bigram}


def test_phase_claims_pass_on_a_three_phase_curve(store):
    steps = np.arange(0, 3001, 20)
    record = _stored(store, _three_phases(steps, 1200), steps)
    verdicts = {c.name: c.passed for c in icl_markov.claims(record)}
    assert verdicts == {"ends-at-bigram": True, "initial-kl": True, "unigram-phase": True, "plateau": True,
                        "abrupt-transition": True, "final-bigram": True}
    assert icl_markov.transition_steps(record).tolist() == [1220.0]


def test_phase_claims_fail_when_there_is_no_transition(store):
    steps = np.arange(0, 3001, 20)
    curves = _three_phases(steps, 10_000)
    record = _stored(store, curves, steps)
    verdicts = {c.name: c.passed for c in icl_markov.claims(record)}
    assert verdicts["abrupt-transition"] is False and verdicts["final-bigram"] is False
    assert verdicts["ends-at-bigram"] is False
    assert verdicts["plateau"] is True
    assert np.isnan(icl_markov.transition_steps(record)).all()


def test_longest_run_and_abrupt_drop():
    steps = np.arange(0, 100, 10)
    assert icl_markov._longest_run(steps, np.array([0, 1, 1, 1, 0, 1, 1, 0, 0, 1], bool)) == 20
    smooth = np.linspace(0.2, 0.0, 301)
    assert not icl_markov._abrupt_drop(np.arange(0, 3010, 10), smooth, drop=0.03)  # 0.02 per 300 steps
    cliff = np.where(np.arange(0, 3010, 10) < 1500, 0.08, 0.02)
    assert icl_markov._abrupt_drop(np.arange(0, 3010, 10), cliff)


def test_k2_thresholds_are_not_applied_to_other_k(store):
    steps = np.arange(0, 3001, 20)
    config = to_dict(icl_markov.presets()["priors"])
    config["controls"] = []
    record = _stored(store, _three_phases(steps, 1200), steps, config=config)
    assert [c.name for c in icl_markov.claims(record)] == ["ends-at-bigram"]
