"""icl-markov claims, declared from the config before any result is seen.

Every per-seed statement is a fraction of seeds with a Wilson interval (the paper states
what training does, without a rate: we test that more than half of the seeds do it), or a
median over seeds with a bootstrap interval. Phases follow the paper's Figure 1: at each
evaluation the model is in the stage of the strategy nearest to it in KL.
"""

from __future__ import annotations

import math

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.icl_markov import analysis as A
from learnlab.experiments.icl_markov import metrics as M
from learnlab.experiments.icl_markov.config import ICLMarkovConfig

MOST = 0.5
MOST_SOURCE = "the paper describes what training does, without a rate; 'most seeds' is read as more than half"
K2 = A.PAPER_LEVELS[2]
# Log-scale midpoint of the paper's unigram (0.087) and bigram (0.0092) strategy KLs: below it
# the model is nearer the bigram level than the unigram one.
BIGRAM_CUT = round(math.sqrt(K2["unigram"] * K2["bigram"]), 3)  # 0.028


def _rate(flags, detail: str) -> Measurement:
    return Measurement(np.asarray(flags, dtype=np.float64), detail=detail)


def _count(flags) -> str:
    return f"{int(np.sum(flags))} of {len(flags)} seeds"


def _most(name, statement, source, statistic, measure, extra: str = "") -> Reproduction:
    return Reproduction(name, statement, source=source, statistic=statistic, threshold=MOST, side=">=",
                        threshold_source=MOST_SOURCE + extra, unit="seeds", interval="wilson", measure=measure)


# ----------------------------------------------------------------------------- measures


def _ends_at_bigram(run) -> Measurement:
    _, nearest, names = A.nearest_strategy(run)
    final = [names[i] for i in nearest[-1]]
    target = names[-1]
    return _rate([n == target for n in final], f"nearest at the end: {', '.join(final)}")


def _k2_phases(run):
    steps, nearest, names = A.nearest_strategy(run)
    kl = A.curves(run, M.KL)[1]
    return steps, kl, A.phases(steps, nearest, kl, names, BIGRAM_CUT)


def _long_plateau(run) -> Measurement:
    _, _, p = _k2_phases(run)
    flags = np.isfinite(p["first_unigram"]) & (p["plateau"] > p["first_unigram"])
    return _rate(flags, f"unigram stage {A.describe(p['plateau'])} steps after reaching it at "
                        f"{A.describe(p['first_unigram'])}; {_count(flags)}")


def _abrupt(run) -> Measurement:
    _, _, p = _k2_phases(run)
    flags = np.isfinite(p["fall"]) & (p["fall"] < p["plateau"])
    return _rate(flags, f"fall to KL <= {BIGRAM_CUT} took {A.describe(p['fall'])} steps after plateaus of "
                        f"{A.describe(p['plateau'])}; {_count(flags)}")


def _within_budget(run) -> Measurement:
    transitions = A.transition_steps(run)
    flags = np.nan_to_num(transitions, nan=np.inf) <= A.PAPER_STEPS
    return _rate(flags, f"transition steps {A.describe(transitions)}; {_count(flags)} by step {A.PAPER_STEPS:,}")


def _final_kl(run) -> Measurement:
    final = A.curves(run, M.KL)[1][-1]
    return Measurement(final, detail="final KL " + A.describe(final, ".3f"))


def _final(metric: str):
    def measure(run) -> Measurement:
        final = A.curves(run, metric)[1][-1]
        return Measurement(final, detail=f"final values {A.describe(final, '.2f')}")
    return measure


def _initial_kl(run) -> Measurement:
    initial = A.curves(run, M.KL)[1][0]
    return Measurement(initial, detail="KL at the first evaluation " + A.describe(initial, ".3f"))


def _one_layer_floor(run) -> Measurement:
    steps, kl = A.curves(run, M.KL, "one_layer")
    late = kl[steps > 100]
    if not len(late):
        raise NotMeasured("the one-layer control has no evaluation after step 100")
    floor = run.last(M.COUNT_ONLY_FLOOR) if run.has(M.COUNT_ONLY_FLOOR) else math.nan
    return Measurement(late.min(axis=0), detail=f"lowest KL after step 100 {A.describe(late.min(axis=0), '.3f')}; "
                                                f"count-only floor {floor:.3f} (Monte Carlo)")


def _minimal_w_first(run) -> Measurement:
    steps, diagonal = A.curves(run, M.MINIMAL_W_DIAGONAL, "minimal")
    off = A.curves(run, M.MINIMAL_W_OFF_DIAGONAL, "minimal")[1]
    v = np.stack([A.curves(run, M.minimal_v(m), "minimal")[1] for m in range(M.RELATIVE_OFFSETS)])  # (6, T, S)
    flags = []
    for s in range(diagonal.shape[1]):  # onset: 10% of the final change
        gap = diagonal[:, s] - off[:, s]
        grows = gap - gap[0] >= 0.1 * max(abs(gap[-1] - gap[0]), 1e-12)
        moved = np.abs(v[:, :, s] - v[:, :1, s]).max(axis=0)
        v_moves = moved >= 0.1 * max(np.abs(v[:, -1, s] - v[:, 0, s]).max(), 1e-12)
        flags.append(_first(steps, grows) < _first(steps, v_moves))
    return _rate(flags, _count(flags))


def _minimal_v_alternates(run) -> Measurement:
    steps, _ = A.curves(run, M.MINIMAL_W_DIAGONAL, "minimal")
    v = np.stack([A.curves(run, M.minimal_v(m), "minimal")[1] for m in range(M.RELATIVE_OFFSETS)])
    dominant = A.curves(run, M.MINIMAL_V_PREVIOUS, "minimal")[1]
    flags = []
    for s in range(v.shape[2]):  # offsets 1..4 alternate in sign before softmax(v) puts half its mass on offset 1
        signs = np.sign(v[1:5, :, s])
        alternating = np.all(signs[:-1] * signs[1:] < 0, axis=0) & (steps < _first(steps, dominant[:, s] >= 0.5))
        flags.append(bool(alternating.any()))
    return _rate(flags, _count(flags))


def _first(steps: np.ndarray, condition: np.ndarray) -> float:
    hits = np.flatnonzero(condition)
    return float(steps[hits[0]]) if len(hits) else math.inf


def _near_unigram_time(run, scope: str) -> np.ndarray:
    steps, kl = A.curves(run, M.KL, scope)
    level = float(run.last(M.scoped(scope, M.level("unigram"))))
    return np.array([A.longest_run(steps, np.abs(kl[:, s] - level) <= 0.02) for s in range(kl.shape[1])])


def _no_plateau(run) -> Measurement:
    doubly, dirichlet = _near_unigram_time(run, "doubly_stochastic"), _near_unigram_time(run, "")
    flags = doubly < 0.5 * np.median(dirichlet)
    return _rate(flags, f"steps near the unigram level: doubly stochastic {A.describe(doubly)}, "
                        f"Dirichlet {A.describe(dirichlet)}")


def _mix_delay(run) -> Measurement:
    cap = float(run.config.train.max_steps)
    mix = np.nan_to_num(A.transition_steps(run, "unigram_mix"), nan=cap)
    base = np.nan_to_num(A.transition_steps(run), nan=cap)
    return Measurement(mix - np.median(base), detail=f"transitions with 25% unigram chains {A.describe(mix)} vs "
                                                     f"{A.describe(base)} (a seed that never transitions counts as {cap:.0f})")


def _ngram_stages(run) -> Measurement:
    steps, nearest, names = A.nearest_strategy(run)
    stages = []
    for s in range(nearest.shape[1]):
        order = [names[i] for i in nearest[:, s]]
        stages.append([n for i, n in enumerate(order) if i == 0 or n != order[i - 1]])
    flags = [all(x in st for x in ("unigram", "bigram", "trigram")) and st[-1] == "trigram"
             and st.index("unigram") < st.index("bigram") < len(st) - 1 for st in stages]
    return _rate(flags, "; ".join(" -> ".join(st) for st in stages))


# ----------------------------------------------------------------------------- claims


def claims(cfg: ICLMarkovConfig) -> list:
    task = cfg.task
    if task.n == 3:
        return [_most("ngram-stages", "With n-1 heads in layer 1, training passes through the unigram, bigram and "
                      "trigram stages in order and ends at the trigram strategy.", "Sec. 7, Fig. 7",
                      "fraction of seeds visiting unigram -> bigram -> trigram and ending at trigram", _ngram_stages)]
    out = [_most("ends-at-bigram", "Trained on in-context Markov chains, the transformer ends closest to the in-context "
                 "bigram strategy (the Bayes predictor's family).", "Sec. 3, Fig. 1",
                 "fraction of seeds nearest to the bigram strategy at the last evaluation", _ends_at_bigram)]
    if task.k == 2 and task.prior == "dirichlet" and task.unigram_fraction == 0:
        out += _k2_claims(cfg)
    if "minimal" in cfg.controls:
        out += [
            _most("minimal-w-first", "In the minimal model of Section 5 the second layer learns first: W's diagonal "
                  "grows before the positional weights v move.", "Sec. 5, Fig. 4",
                  "fraction of minimal-model seeds whose W diagonal moves first (onset: 10% of the final change)",
                  _minimal_w_first),
            _most("minimal-v-alternates", "In the minimal model, v alternates in sign by offset parity before the "
                  "previous-token weight dominates.", "Sec. 5, Fig. 4",
                  "fraction of minimal-model seeds with alternating signs of v_1..v_4 before softmax(v)_1 >= 0.5",
                  _minimal_v_alternates),
        ]
    if "doubly_stochastic" in cfg.controls:
        out.append(_most("doubly-stochastic-no-plateau", "On doubly stochastic chains (the unigram strategy is no "
                         "better than uniform) the model shows no unigram plateau.", "Sec. 6, Fig. 5",
                         "fraction of doubly stochastic seeds spending under half the Dirichlet median near the "
                         "unigram level (within 0.02)", _no_plateau))
    if "unigram_mix" in cfg.controls:
        out.append(Reproduction(
            "unigram-mix-delays", "Adding 25% unigram chains to the prior delays the transition to the bigram "
            "strategy.", source="Sec. 6, Fig. 6", statistic="median over mixture seeds of (transition step - "
            "median Dirichlet transition step)", threshold=0.0, side=">=",
            threshold_source="paper Sec. 6: the unigram chains delay the transition (later, so a positive delay)",
            unit="seeds", estimator="median", measure=_mix_delay))
    return out


def _k2_claims(cfg: ICLMarkovConfig) -> list:
    out = [
        Sanity("initial-kl", f"At initialisation (weights N(0, 0.02)) the model predicts nearly uniformly: its KL is "
               f"the uniform strategy's {K2['uniform']} (the paper's value) within 0.05.",
               "KL(true || model) at the first evaluation, every seed", K2["uniform"], "==", _initial_kl,
               tolerance=0.05),
        _most("long-plateau", "After a brief uniform stage the model sits at the in-context unigram strategy for "
              "a long plateau.", "Sec. 3, Fig. 1; abstract",
              "fraction of seeds whose unigram stage lasts longer than the uniform stage before it", _long_plateau),
        _most("abrupt-transition", "The switch from the unigram plateau to the bigram strategy is rapid: the KL falls "
              "to the bigram level faster than the plateau lasted.", "abstract ('a rapid phase transition'), Fig. 1",
              f"fraction of seeds whose KL falls from the unigram stage to <= {BIGRAM_CUT} in fewer steps than "
              "their plateau", _abrupt,
              extra=f"; {BIGRAM_CUT} is the log-scale midpoint of the paper's unigram (0.087) and bigram (0.0092) "
                    "strategy KLs"),
        Reproduction("final-bigram-level", "At the end of training the model's KL is at the bigram strategy's level, "
                     "not the unigram one's.", source="Fig. 1 (strategy KLs at k = 2)",
                     statistic="median over seeds of the final KL(true || model)", threshold=BIGRAM_CUT, side="<=",
                     threshold_source=f"paper's strategy KLs at k = 2: bigram 0.0092, unigram 0.087; {BIGRAM_CUT} "
                     "is their log-scale midpoint", unit="seeds", estimator="median", measure=_final_kl),
    ]
    paper_optimiser = cfg.train.lr == 5e-4 and cfg.train.batch_size == 64 and cfg.task.length == 100
    if paper_optimiser and cfg.train.max_steps >= A.PAPER_STEPS:
        out.append(_most("transition-within-paper-budget", "Trained as the paper (official code: AdamW lr 5e-4, "
                         "batch 64), the model reaches the bigram stage within the paper's 2,000 steps.", "Fig. 1",
                         "fraction of seeds settled at the bigram strategy by step 2,000", _within_budget,
                         extra="; the 2,000 steps are the paper's Figure 1 run"))
    if cfg.model == "transformer" and cfg.transformer.n_layers == 2:
        out += [
            Reproduction("induction-head-layer1", "A statistical induction head forms: at the end layer 1 attends "
                         "mostly to the previous token.", source="Sec. 4, Fig. 2",
                         statistic="median over seeds of the final layer-1 attention to the previous token (best "
                         "head, mean over queries)", threshold=0.5, side=">=",
                         threshold_source="paper Fig. 2: after the transition layer-1 attention sits on the previous "
                         "token ('mostly': more than half)", unit="seeds", estimator="median",
                         measure=_final(M.L1_PREVIOUS)),
            Reproduction("induction-head-layer2", "Layer 2 at the last position attends mostly to tokens that followed "
                         "earlier occurrences of the current token.", source="Sec. 4, Fig. 2",
                         statistic="median over seeds of the final layer-2 attention mass on those tokens",
                         threshold=0.5, side=">=", threshold_source="paper Fig. 2: layer 2 attends to the tokens that "
                         "followed the current one ('mostly': more than half)", unit="seeds", estimator="median",
                         measure=_final(M.L2_INDUCTION)),
        ]
    if "one_layer" in cfg.controls and (cfg.control_max_steps or cfg.train.max_steps) > 100:
        out.append(Sanity("one-layer-floor", "A one-layer attention-only transformer cannot form pair (bigram) "
                          "features, so it cannot beat the count-only floor (0.072 at k = 2 by Monte Carlo): its KL "
                          "stays >= 0.06 after step 100.", "lowest KL(true || model) of the one-layer control after "
                          "step 100, every control seed", 0.06, ">=", _one_layer_floor))
    return out
