"""In-context learning of Markov chains: the evolution of statistical induction heads.

Paper: Edelman, Edelman, Goel, Malach, Tsilivis, "The Evolution of Statistical
Induction Heads: In-Context Learning Markov Chains" (2024; arXiv 2402.11004).

Setting (Sections 2-4): every sequence has its own transition matrix with Dirichlet(1)
rows over k states; its first token comes from the chain's stationary distribution.
A two-layer attention-only transformer with relative positions trained on next-token
prediction passes through three stages: uniform, then the in-context *unigram*
strategy (a long plateau), then a rapid switch to the *bigram* strategy, carried out by a
statistical induction head (layer 1 attends to the previous token, layer 2 to the tokens
that followed earlier occurrences of the current one). Metric: KL from the true
next-token distribution to the model at the last position, on fixed test sequences, and
KL from each strategy to the model; as in the paper's Figure 1 the model is in the stage
of the strategy nearest to it.

Presets
-------
``quick``   the paper configuration with 10 seeds trained together as one stacked model
            for the paper's 2,000 steps (evaluation every 25 steps on 1,000 test
            sequences), plus the one-layer control (1 seed, 1,000 steps) and the minimal
            model of Section 5 (10 seeds): ``learnlab run icl-markov --preset quick``.
            Headline: the fraction of seeds that pass uniform -> unigram plateau ->
            bigram within 2,000 steps, and the distribution of their transition steps.
            About 6 minutes alone on 2 cores at 0.18 s a 10-seed step; over a minute on a GPU.
``paper``   k=2, AdamW (0.9, 0.95), weight decay 0.1 on matrices, lr 5e-4, batch 64, 2,000
            steps, evaluation every 10 steps: Figure 1 (KL to each strategy over training)
            and Figure 2 (attention before and after the transition), one seed (its
            fraction-of-seeds claims are inconclusive: add ``n_seeds=10``).
            ``task.k=3`` for k=3.
``priors``  k=4: Dirichlet vs doubly-stochastic-only vs 25% unigram chains (Section 6).
``trigram`` k=3 trigrams, 2 heads in layer 1, d=32, length 200, batch 128, lr 4e-3, 4,000
            steps (a GPU preset: about a minute on an H100).
``smoke``   seconds; used by the tests.

Learning rate: the paper's text gives 3e-5, its official code 5e-4. The presets use 5e-4,
the code's value: the paper's figures come from that code, and at 3e-5 (17 times smaller)
the transition would come far after the paper's 2,000 steps.

Claims (``evidence.py``): what used to be every-seed gates are now fractions of seeds
with a Wilson interval (more than half of the seeds: the paper gives no rate), or medians
over seeds with a bootstrap interval. Stages are read as in the paper's Figure 1 (the
nearest strategy), so the plateau and the abruptness of the switch are compared with
each other rather than with fixed step counts; the bigram level is the log-scale
midpoint of the paper's strategy KLs (0.028 between 0.087 and 0.0092). The initial KL
(a model initialised N(0, 0.02) is near uniform) and the one-layer control's floor (one
attention-only layer forms no pair features) are sanity checks, not reproductions.
On a GPU the same preset draws other random numbers: a seed that has not transitioned
by the end now lowers a rate instead of failing every claim.

Fixed here, unlike the official code: the stationary start (the official shortcut
returns the uniform distribution for k < 5) and the minimal model's causal mask (a
no-op there).
"""

from __future__ import annotations

from learnlab.experiments.icl_markov.analysis import transition_steps
from learnlab.experiments.icl_markov.config import (CONTROLS, EvalConfig, ICLMarkovConfig, MarkovTaskConfig,
                                                    control_config, presets)
from learnlab.experiments.icl_markov.evaluator import MarkovEvaluator
from learnlab.experiments.icl_markov.evidence import claims
from learnlab.experiments.icl_markov.metrics import STRATEGY_NAMES
from learnlab.experiments.icl_markov.plots import figures
from learnlab.experiments.icl_markov.training import markov_stream, next_token_loss, run, train_one

NAME = "icl-markov"
DESCRIPTION = "Edelman et al. 2024: transformers learn in-context Markov chains via unigram then bigram (induction head)"

Config = ICLMarkovConfig

__all__ = ["NAME", "DESCRIPTION", "Config", "ICLMarkovConfig", "MarkovTaskConfig", "EvalConfig", "CONTROLS",
           "STRATEGY_NAMES", "presets", "run", "claims", "figures", "control_config", "train_one", "markov_stream",
           "next_token_loss", "MarkovEvaluator", "transition_steps"]
