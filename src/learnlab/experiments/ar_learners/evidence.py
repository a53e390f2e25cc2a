"""ar-learners claims, declared from the config before any result is seen.

Accuracies are rates over held-out test examples (Wilson intervals): an accuracy logged
as a mean over ``test_examples`` is turned back into its successes and failures. The
perplexity claims bootstrap over chunks of validation windows.
"""

from __future__ import annotations

import math

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.ar_learners import metrics as M
from learnlab.experiments.ar_learners.config import Config
from learnlab.tasks.parity_cot import chain_length

HIGH = 0.95
HIGH_SOURCE = ("theory (Sec. 4): every token of this chain is a function the model represents, so a consistent "
               "learner is exact (accuracy 1); 0.95 leaves 5% for finite samples and steps")
CHANCE_MARGIN = 0.6
CHANCE_SOURCE = ("theory (Sec. 4, length complexity): the step asks for a parity the model cannot represent or learn "
                 "in this budget, so accuracy stays at chance (0.5); 0.6 leaves a margin")


def _outcomes(run, scope: str, metric: str = M.FINAL_TOKEN_ACC) -> tuple[np.ndarray, float, int]:
    """0/1 outcomes over the test examples of ``scope`` (from the final accuracy and the count)."""
    accuracy = float(run.last(M.scoped(scope, metric)))
    n = int(run.last(M.scoped(scope, M.TEST_EXAMPLES)))
    right = int(round(accuracy * n))
    return np.r_[np.ones(right), np.zeros(n - right)], accuracy, n


def _pooled(scopes: list[str], metric: str = M.FINAL_TOKEN_ACC):
    def measure(run) -> Measurement:
        if not scopes:
            raise NotMeasured("no configuration of this kind was run")
        parts = [_outcomes(run, scope, metric) for scope in scopes]
        detail = "; ".join(f"{scope}: {acc:.3f} of {n}" for scope, (_, acc, n) in zip(scopes, parts))
        return Measurement(np.concatenate([p[0] for p in parts]), detail=detail)
    return measure


def _accuracy(scope: str):
    def measure(run) -> Measurement:
        _, accuracy, n = _outcomes(run, scope)
        return Measurement([accuracy], detail=f"{accuracy:.3f} on {n} test examples")
    return measure


def _final(scope: str, metric: str):
    def measure(run) -> Measurement:
        value = float(run.last(M.scoped(scope, metric)))
        return Measurement([value], detail=f"{value:.3f}")
    return measure


def _parse_rate(run) -> Measurement:
    rate = float(run.last(M.scoped(M.text_scope("stories"), M.PARSE_RATE)))
    n = int(run.last(M.scoped(M.text_scope("stories"), M.SAMPLED_SENTENCES)))
    right = int(round(rate * n))
    return Measurement(np.r_[np.ones(right), np.zeros(n - right)], detail=f"{rate:.3f} of {n} sampled sentences parse")


def _perplexity_ratio(corpus: str):
    def measure(run) -> Measurement:
        scope = M.text_scope(corpus)
        chunks = np.exp(run.over_seeds(M.scoped(scope, M.VAL_CHUNK_NLL)))  # perplexity per validation chunk
        bigram = float(run.last(M.scoped(scope, M.BIGRAM_PERPLEXITY)))
        unigram = float(run.last(M.scoped(scope, M.UNIGRAM_PERPLEXITY)))
        model = float(run.last(M.scoped(scope, M.VAL_PERPLEXITY)))
        paired = run.has(M.scoped(scope, M.VAL_CHUNK_BIGRAM_NLL))
        # Paired per chunk (the bigram on the same tokens) where stored; runs before it: the overall bigram.
        per_chunk = np.exp(run.over_seeds(M.scoped(scope, M.VAL_CHUNK_BIGRAM_NLL))) if paired else bigram
        return Measurement(chunks / per_chunk, detail=f"perplexity {model:.2f} ({len(chunks)} validation chunks, "
                                                      f"{'paired' if paired else 'against the overall bigram'}); "
                                                      f"add-k bigram {bigram:.2f}, unigram {unigram:.2f}")
    return measure


def claims(cfg: Config) -> list:
    out: list = []
    if "parity" in cfg.parts:
        for n in cfg.parity.n_bits:
            out += [
                Reproduction(f"parity-n{n}-cot", f"With the binary-count chain of thought, a linear next-token "
                             f"predictor learns the parity of {max(1, n // 2)} hidden bits of {n}.", source="Sec. 4",
                             statistic="final-token accuracy after a greedy roll-out on fresh inputs", threshold=HIGH,
                             side=">=", threshold_source=HIGH_SOURCE + " (each count bit is a linear threshold)",
                             unit="test examples", interval="wilson", measure=_pooled([M.parity_scope(n, "count")])),
                Sanity(f"parity-n{n}-no-cot-at-chance", f"Without a chain the linear model's answer to a parity of "
                       f"{max(1, n // 2)} bits stays at chance: a parity of two or more bits is no linear threshold.",
                       "final-token accuracy without a chain", 0.5, "==", _accuracy(M.parity_scope(n, "none")),
                       tolerance=max(0.05, 4 * 0.5 / math.sqrt(cfg.parity.n_test))),
            ]
    if "multiplication" in cfg.parts:
        p = cfg.multiplication.digits
        out += [
            Reproduction("multiplication-cot", f"Trained on chains of thought, the model multiplies {p} x {p}-digit "
                         f"numbers it never saw (width d = {cfg.multiplication.d}).", source="Sec. 5, Table 1",
                         statistic="exact match of greedily decoded answers on held-out pairs", threshold=0.9,
                         side=">=", threshold_source="paper Table 1: the MLP multiplies 4-digit numbers about as well "
                         "as Goat-7B (near-perfect exact match); 0.9", unit="test examples", interval="wilson",
                         measure=_pooled([M.MULT_COT], M.EXACT_MATCH)),
            Reproduction("multiplication-no-cot", "Trained on the answers alone, the same model family and budget "
                         "does not learn the product.", source="Sec. 5", statistic="exact match without a chain",
                         threshold=0.5, side="<=", threshold_source="paper Sec. 5: the chain of thought is what makes "
                         "the product learnable; 'not learned' read as fewer than half right", unit="test examples",
                         interval="wilson", measure=_pooled([M.MULT_DIRECT], M.EXACT_MATCH)),
            Sanity("multiplication-well-formed", "Generated chains follow the template (every slot a token of its "
                   "kind, every constant right): the format is copied from every training sequence.",
                   "fraction of well-formed chains", 0.95, ">=", _final(M.MULT_COT, M.WELL_FORMED)),
        ]
    if "text" in cfg.parts:
        for corpus in cfg.text.corpora:
            out.append(Reproduction(
                f"text-{corpus}", "The linear model is a language model: its validation perplexity is no worse than "
                "an add-k bigram model's.", source="Sec. 5.1", statistic="validation perplexity per chunk / the add-k "
                "bigram's perplexity on the same chunk (same split and vocabulary), mean over chunks", threshold=1.1, side="<=",
                threshold_source="theory: the linear predictor's class contains a rank-d bigram model, so it is at "
                "least as good as a bigram at convergence; 10% slack for rank and steps",
                unit="validation chunks", measure=_perplexity_ratio(corpus)))
        if "stories" in cfg.text.corpora:
            out.append(Reproduction(
                "text-grammar", "Sampled text (temperature 0.5) follows the grammar of the story corpus.",
                source="Sec. 5.1", statistic="fraction of sampled sentences the corpus grammar parses", threshold=0.5,
                side=">=", threshold_source="paper Sec. 5.1: the linear model writes coherent stories; 'coherent' read "
                "as most sentences (more than half) grammatical", unit="sampled sentences", interval="wilson",
                measure=_parse_rate))
    if "length" in cfg.parts:
        out += _length_claims(cfg)
    return out


def _length_claims(cfg: Config) -> list:
    part = cfg.length
    short = [M.length_mlp_scope(k) for k in sorted(part.chunk_sizes) if k <= 2]
    one_token = [M.length_mlp_scope(k) for k in part.chunk_sizes if k >= part.subset_size]
    full = chain_length("count", part.linear_subset_size)
    linear_full = [M.length_linear_scope(t) for t in part.linear_lengths if t >= full]
    linear_short = [M.length_linear_scope(t) for t in part.linear_lengths if t < full]
    size, lin = part.subset_size, part.linear_subset_size
    return [
        Reproduction("length-mlp-long-chain", f"Length complexity, MLP variant: chains of ceil({size} / k) running "
                     "parities with k <= 2 (each step a parity of at most 3 bits) are learned.", source="Sec. 4",
                     statistic="final-token accuracy, pooled over k <= 2", threshold=HIGH, side=">=",
                     threshold_source=HIGH_SOURCE, unit="test examples", interval="wilson", measure=_pooled(short)),
        Reproduction("length-mlp-one-token", f"Length complexity, MLP variant: shortening the chain to one token "
                     f"(k = {size}: the whole parity in one step) loses it.", source="Sec. 4",
                     statistic="final-token accuracy at k = |A|", threshold=CHANCE_MARGIN, side="<=",
                     threshold_source=CHANCE_SOURCE, unit="test examples", interval="wilson",
                     measure=_pooled(one_token)),
        Reproduction("length-linear-count", f"Length complexity, linear model: the binary-count chain of "
                     f"ceil(log2({lin} + 1)) = {full} tokens (each a linear threshold) gives the parity of {lin} bits.",
                     source="Sec. 4 (parities have logarithmic length complexity for linear predictors)",
                     statistic=f"final-token accuracy with the {full}-token chain", threshold=HIGH, side=">=",
                     threshold_source=HIGH_SOURCE, unit="test examples", interval="wilson",
                     measure=_pooled(linear_full)),
        Reproduction("length-linear-shorter", f"Length complexity, linear model: the count chain cut below {full} "
                     "tokens (its first token no longer a linear threshold) loses the parity.",
                     source="Sec. 4 (parities have logarithmic length complexity for linear predictors)",
                     statistic=f"final-token accuracy pooled over chains shorter than {full} tokens",
                     threshold=CHANCE_MARGIN, side="<=", threshold_source=CHANCE_SOURCE, unit="test examples",
                     interval="wilson", measure=_pooled(linear_short)),
    ]
