"""Auto-regressive next-token predictors are universal learners (with a chain of thought).

Paper: Malach, "Auto-Regressive Next-Token Predictors are Universal Learners", ICML 2024
(arXiv 2309.06979); official code ``LinearLM``. A linear next-token predictor (token
embedding -> one causal linear map over the whole context -> output embedding, no
nonlinearity) cannot compute a parity in one token, but computes it, and multiplies
numbers, when trained on sequences that spell out a chain of thought (CoT). The length
of the chain trades against what each step must compute (length complexity).

Parts (``parts=...``):

- ``parity``: n-bit parity of a hidden half of the bits, 4,000 training sequences, the
  linear model without a CoT vs with the binary-count CoT (Section 4); accuracy of the
  final token after a greedy roll-out on fresh inputs.
- ``multiplication``: 2 x 2-digit products in the paper's CoT format (77 tokens) vs the
  answer alone, the same model family and budget; exact match of greedily decoded answers
  on held-out pairs (a fixed 75/25 split of all pairs), and the fraction of well-formed,
  self-consistent chains (Section 5).
- ``text``: the linear model as a language model on offline English (Python's
  ``pydoc_data`` topics, a synthetic story corpus with a known grammar), perplexity
  against unigram and add-k bigram baselines on the same split; samples at temperature
  0.5 and the fraction of sampled story sentences the grammar parses.
- ``length``: length complexity. The shallow MLP variant on a parity of |A| bits with
  chains in which each step adds the parity of k more bits (accuracy vs chain length
  ceil(|A| / k)); and, as the theorem is about the linear predictor, the linear model on a
  parity of |A| = 2^m - 1 bits with the binary-count chain cut to its last L bits: the
  full m tokens are linear thresholds of the input and the earlier tokens, a shorter
  chain starts with a bit of the count that is not (quick: |A| = 8 and 7 of 16 bits;
  ``full``: 16 and 15 of 32).

Presets
-------
``quick``  parity (n = 16 and 32, 200 steps, 4 row groups), text (stories 400 steps, pydoc
           800) and length complexity on 8 of 16 bits (MLP: k = 1, 2, 8; linear: |A| = 7,
           count chains of 1-3 tokens; 600 steps): ``learnlab run ar-learners --preset quick``.
           Multiplication is left to its own preset: 2 x 2 products take minutes of training
           on their own. Budgets were cut from parity 300 steps with a dense causal map, text
           stories 800 (about 250 s on one CPU thread before): the chains are learned by step
           200, the stories perplexity is flat from step 400 (2.31 vs 2.29 at 800, bigram
           3.5), and row groups are speed only (same model class; the initial draw differs).
           Length keeps 600 steps: at 400 the one-token MLP of seed 2 stayed at chance (0.54)
           where at 600 it learns the 8-bit parity (0.94, not reproduced), and a shorter
           budget must not pass that claim. The claims and their thresholds are unchanged.
``full``   all four parts at the defaults (n = 32 length part; about 7 minutes).
``multiplication`` 2 x 2-digit multiplication, 10,000 steps (about 20 minutes on 2 cores).
``paper``  4 x 4-digit multiplication at the paper's scale (T = 307, d = 128, AdamW lr
           1e-3, wd 0.1, batch 2048; a GPU job) and n = 32 parity.
``smoke``  seconds; used by the tests.

Claims (``evidence.py``): accuracies are rates over held-out test examples with Wilson
intervals; the perplexity claim bootstraps over 20 chunks of validation windows. The no-CoT
parity at chance (a parity of two or more bits is no linear threshold) and well-formed
multiplication chains (the template is in every training sequence) are sanity checks,
not reproductions. The multiplication claim is stated at the width it is run at: at
d = 32 the 2 x 2 chain-of-thought model plateaus at 0.70-0.75 exact match (capacity: it
is right exactly when its chain is self-consistent).
"""

from __future__ import annotations

from learnlab.experiments.ar_learners.config import (ARLearnersConfig, LengthPartConfig, MultiplicationPartConfig,
                                                     ParityPartConfig, TextPartConfig, presets)
from learnlab.experiments.ar_learners.evidence import claims
from learnlab.experiments.ar_learners.parts import run
from learnlab.experiments.ar_learners.plots import figures

NAME = "ar-learners"
DESCRIPTION = "Malach 2023: linear next-token predictors learn parity and multiplication with a chain of thought"

Config = ARLearnersConfig

__all__ = ["NAME", "DESCRIPTION", "Config", "ARLearnersConfig", "ParityPartConfig", "MultiplicationPartConfig",
           "TextPartConfig", "LengthPartConfig", "presets", "run", "claims", "figures"]
