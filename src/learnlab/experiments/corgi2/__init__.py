"""Corgi^2: an offline pass plus CorgiPile gives near-i.i.d. batches at the I/O cost of reading blocks.

Paper: Livne, Kaplun, Malach, Shalev-Shwartz, "Corgi^2: A Hybrid Offline-Online Approach
To Storage-Aware Data Shuffling For SGD" (arXiv 2309.01640), building on Xu et al.,
"CorgiPile" (SIGMOD 2022). No official code; the loader is ``learnlab.data``.

Setting: a labelled data set **sorted by label** and written to Parquet shards of b
records (homogeneous blocks, as with the video data the paper targets), an i.i.d. test
set held out. Arms at equal online buffer memory (n_on blocks): full shuffle (random
access), sequential, shard-only, sliding buffer (M = n_on b records), CorgiPile (n_on
blocks), Corgi^2 (one offline pass with groups of n_off, then CorgiPile) and Corgi^2
with two offline passes. Every arm's loader runs one real epoch against the shards for
its I/O counts and to check that it emits exactly its planned order; training then
follows the planned orders of every (arm, seed, epoch) on the same records held in
memory, all arms and seeds stacked as one model (softmax regression from zero and a one-
hidden-layer MLP, plain SGD, through ``train.fit``); seed s's MLP starts from the same init
at every arm, so the accuracy differences between arms are paired and come from the order.
The offline pass is also simulated in memory (the same grouping and permutations, checked
equal to the real pass) to give intervals over many passes and the n_off sweep: Corgi^2
arms at every n_off of ``homogeneity_n``.

Claims (``evidence.py``). Reproductions: homogeneity after one pass against the paper's
1 + (h - 1)/n_off and the batch label KL ratio (Corgi^2 / full) against the ratio that
homogeneity predicts, 1 + B (h~ - 1)/(n_on b), both as means over passes (not one draw);
Corgi^2 within one point of full shuffle and CorgiPile more than one point below it, as
mean paired differences over seeds. Sanity: I/O counts by construction, and each loader's
order equals its plan. (Earlier versions gated homogeneity on one pass, KL on a fixed 1.5x,
and counted the I/O identities as reproductions; the MLP's replicas drew their inits from
one generator in stack order, so arms did not share them.)

Presets: ``quick`` (``learnlab run corgi2 --preset quick``): 50,000 Gaussian-mixture records
in blocks of 500 (about 8 SGD steps a block), a buffer of 2 blocks, lr 0.5, n_off = 50
and a sweep over 5-50, 5 seeds: the regime where the order changes the final model.
``small-blocks`` (blocks of 100, a 10-block buffer, lr 0.05, and the digits part: a
convex-like regime where the order hardly matters), ``paper`` (200,000 records, more
epochs), ``smoke`` (seconds; the tests).
"""

from learnlab.experiments.corgi2.config import ARMS, MODELS, Config, Corgi2Config, PartConfig, presets
from learnlab.experiments.corgi2.evidence import arm_accuracy, claims, figures
from learnlab.experiments.corgi2.parts import predicted_kl_ratio, run, simulate_pass

NAME = "corgi2"
DESCRIPTION = "Livne et al.: Corgi^2 = offline block shuffle + CorgiPile, near-i.i.d. batches at block I/O cost"

__all__ = ["NAME", "DESCRIPTION", "Config", "Corgi2Config", "PartConfig", "presets", "run", "claims", "figures",
           "ARMS", "MODELS", "arm_accuracy", "simulate_pass", "predicted_kl_ratio"]
