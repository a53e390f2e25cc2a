"""Differentiable learning vs PAC and SQ: what bounded-precision SGD can and cannot learn.

Paper: Abbe, Kamath, Malach, Sandon, Srebro, "On the Power of Differentiable Learning
versus PAC and SQ Learning", NeurIPS 2021 (arXiv 2108.04190). A theory paper without
code or reported numbers; we make its mechanism observable. SGD sees the gradient
through an oracle of precision rho (``learnlab.train.precision``): per-example gradients
scaled by s, clipped to [-1, 1], averaged over a batch of b, rounded to rho Z. Two of
these are our choices where the paper's definitions could not be read, and stay
configurable: the scale s = 10 (``scale``; first-layer coordinates then have RMS ~0.7 at
initialisation) and the adversarial rounding ``adv_zero`` (the lattice point nearest
zero within 3 rho / 4).

- b rho^2 >> 1 (the paper's SQ side): the batch average concentrates within rho of its
  expectation and a deterministic rounding answers like a statistical query.
- b rho small (the paper's PAC side): single examples leak through the oracle.

What is SQ-hard here, with the bound we use (Blum et al. 1994; Szorenyi 2009): learning a
class of d pairwise-orthogonal functions from statistical queries of tolerance tau needs at
least (d tau^2 - 1) / 2 queries.

- The (16, 3) parity of the phase diagram is *not* SQ-hard: d = C(16, 3) = 560, so at
  rho = 0.3 the bound asks for 25 queries, and one SGD step asks 2,305 (one per
  parameter). Its failure on the SQ side is the mechanism the paper's simulation rests on
  -- the deterministic answer is the rounded population gradient, and the parity's
  population gradients at initialisation round to the null answer -- not SQ hardness.
  The majority of 3 bits (correlation 1/2 with each bit, above rho = 0.3) is learned there.
- The full parity on n = 64 bits (the sample channel) is SQ-hard at the channel's
  precision: d = 2^64, rho = 0.05, so (2^64 * 0.0025 - 1) / 2 = 2.3 * 10^16 queries, against
  the 25 steps x 65,536 x 65 = 1.1 * 10^8 coordinates our SGD asks in all. With b rho <= 1 a
  hand-built network reads every example back from the rounded gradient and solves the
  parity by Gaussian elimination over GF(2) (a PAC algorithm no SQ learner can be); at
  b = 4,096 (b rho^2 = 10) nothing comes through. Both follow from the oracle's
  arithmetic: they are sanity checks, not reproductions.
- Full-batch GD on m samples shows the same two regimes with m in place of b.

Claims (``claims``): reproductions are rates over runs (cells x seeds) with Wilson
intervals, each run counted against its own exact-gradient run at the same b (so the
rounding's effect is what is measured); the every-seed gates of earlier versions became
these rates, the sample-channel and disagreement checks became sanity checks, and the
SQ-side claim now covers every cell with b rho^2 >= 10, not one cell.

Parts: the b x rho phase diagram (the parity with nearest rounding at b in {4, 16, 64,
256} and rho in {0.03, 0.1, 0.3, 1}, the boundary b rho^2 = 1 drawn; at the SQ-side batch
``control_batches`` = 256 and ``control_rhos`` = 0.3 (the one SQ-side cell where their claims
look) also the stochastic-rounding control and the majority; exact
gradients as the reference at every b), the disagreement of two batches' rounded gradients
at initialisation vs b, the sample channel (SGD and full-batch GD), and full-batch GD of
the MLP through the oracle. The quick preset runs 8 seeds (Wilson intervals decide at 6 of
6 and more) for T = 2,000 steps (exact gradients learn by ~1,500 at b >= 16), with the
controls only at (b, rho) = (256, 0.3) and evaluation in chunks of 1,024 test points (the
(S, 8192, 128) hidden layer of one call cost more in fresh pages than in arithmetic), to
stay within 3 minutes on 2 cores; ``paper`` runs every rounding
at every b for T = 4,000. Full-batch GD runs on m = 1,000 samples in quick (rho = 1/(2m) =
0.0005 and 0.3, m rho^2 = 90 on the SQ side), 2,000 in ``paper``: 24 replicas x m per step
was the larger half of the quick preset's arithmetic, and at m = 1,000 exact GD still
learns every seed by step 2,000 (seeds 0 and 1, 8 of 8 each; at m = 2,000, seed 0, by
1,750). The oracle's hot loop (the two-layer clipped mean) runs in cache-sized chunks of the
batch with ReLU's backward in one fused pass; the sample channel asks the oracle for its
answers on the blocks a batch touches (``answer_rows``: every other block's answer is exactly
0 under a deterministic rounding), not for all 8 x 65,536 x 65 coordinates, and updates those
(the same numbers: smoke stores bit-equal, stochastic rounding keeps the whole answer).

Presets: ``quick`` (n = 16, k = 3, width 128, square loss, eta = 0.1, T = 2,000, 8 seeds;
``learnlab run sq-vs-pac --preset quick``), ``paper`` (b up to 1,024, more precisions and
roundings, 16 seeds), ``smoke`` (seconds; the tests).
"""

from learnlab.experiments.sq_vs_pac.config import TARGETS, ChannelConfig, Config, SqVsPacConfig, presets
from learnlab.experiments.sq_vs_pac.evidence import cell_accuracy, claims, figures
from learnlab.experiments.sq_vs_pac.parts import run

NAME = "sq-vs-pac"
DESCRIPTION = "Abbe et al. 2021: bounded-precision SGD is SQ when b rho^2 >> 1 and PAC when b rho << 1"

__all__ = ["NAME", "DESCRIPTION", "Config", "SqVsPacConfig", "ChannelConfig", "TARGETS", "presets", "run", "claims",
           "figures", "cell_accuracy"]
