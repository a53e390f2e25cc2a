"""Transformers vs state-space models at copying and retrieval.

Paper: Jelassi, Brandfonbrener, Kakade, Malach, "Repeat After Me: Transformers are Better than
State Space Models at Copying", ICML 2024 (arXiv 2402.01032); official code
``transformers_ssm_copy`` (GPU-only scripts). A generalized state-space model (GSSM) keeps a
fixed-size state, so it cannot copy strings with more information than the state holds
(Theorem 2.7); a two-layer transformer copies strings of exponential length by looking up the
last n letters it wrote (an n-gram "hash", Theorem 2.3). Experiments (``parts=...``):

- ``copy`` (E1, E2, E3): decoder-only transformers (hard-ALiBi, RoPE, NoPE, ALiBi), Mamba and
  an LSTM trained on ``$ x | x .`` with |x| in [min_len, max_len], packed into rows of
  ``context_len`` = 220 tokens as the official code packs them, the same data stream for
  every model. E1: string accuracy at |x| = max_len against training examples seen. E2:
  accuracy at every evaluation length, one example a row. E3: each trained model on strings
  whose n-gram repeats, against n.
- ``ngram`` (E3): a hand-built n-gram copier (not learned) and the Monte-Carlo probability
  that an n-gram repeats, next to the paper's bound L^2 D^-n.
- ``lookup`` (E4): prefix-key (``$ g | x | a .``) and suffix-key (``$ x | g a .``) lookup with
  unique keys, for hard-ALiBi and Mamba, trained on lengths [lookup.min_len, lookup.max_len].
- ``mamba_short``: Mamba with a larger budget on shorter strings (a guard: it can copy).
- ``pretrained`` (E5): phone-book lookup and text copying with a pretrained Hugging Face
  causal LM from a local directory (``--model PATH``); skipped when none is given.

Metric: string accuracy by teacher-forced argmax over the answer and EOS (equal to greedy
exact match: tested), and character accuracy.

Claims (``evidence.py``). Reproductions, each a mean over seeds with a bootstrap interval:
the transformer copies at the training length; at the first evaluation where it copies, it
is ahead of Mamba and the LSTM, read at the same number of examples, by more than half the
accuracy range (E1, the headline); length generalisation per model (hard-ALiBi keeps >= 0.9
at twice the training length, the others fall to <= 0.1), scored only for a model that copies
at the training length (>= 0.9), else inconclusive; a repeated n-gram at least as long as the
key the configuration allows (predicted before the run: (n_layer - 1)(m - 1) letters for m
windowed heads, ``evidence.predicted_key_length``) halves hard-ALiBi's accuracy or worse;
suffix-key lookup for hard-ALiBi, and Mamba's prefix-over-suffix gap (``paper`` preset: Mamba
is trained on both key orders). Sanity checks (never counted as reproductions): the
repeat-probability Monte Carlo under its proven bound, the hand-built copier, the GSSM state
room at the training length, and that Mamba learns short strings.

Sources: claims cite the paper by section title and figure ("Learning to copy", Fig. 1a/1b;
Theorems 2.3 and 2.7); section numbers are left out because we could not check them
against the paper's text.

Presets
-------
``quick``  E1-E3 on strings of 2-4 letters in 220-token rows, 3 seeds, hard-ALiBi (2 layers,
           d = 64, 8 heads of 8, 4 windowed), Mamba (3 x 64) and an LSTM (128), all about
           0.1M parameters, 8 rows a step, 250 steps (48k examples): under 3 minutes on 2
           cores, ``learnlab run copying --preset quick``. At seed 0 hard-ALiBi copies by step
           125 (24k examples) while Mamba and the LSTM are near 0. Two things the quick scale
           does not show: at <= 4 letters this transformer copies by position, so it does
           not generalise past 4 letters (the E2 hard-ALiBi claim is not reproduced here), and
           no n-gram as long as its 3-letter key fits twice in 4 letters (E3 inconclusive).
           Strings of 2-10 letters did not copy within 1,200 steps at this size (see cpu).
           ``stop_at_copy``: every model of a seed stops at the first evaluation where
           hard-ALiBi copies (step 100-150 at seeds 0 and 2), on the 250-step schedule, so the
           training curves and the E1 gap are those of a 250-step run number for number; E1's
           "copies" and E2 read the models there (before: after 250 steps). Changed for time
           (one thread, CPU time 197 s -> 119 s at seed 2); verdicts unchanged at seeds 0 and 2.
``cpu``    every part at 0.4M parameters, strings of 5-20 letters, 1,500 steps (about an hour
           on 2 cores).
``paper``  the paper's models (12 x 1024 transformers, 24-layer Mamba, 4 x 1024 LSTM), lr 1e-5,
           batch 8 x 220, lengths up to 50 evaluated to 1,000: a GPU job.
``smoke``  seconds; used by the tests.

RoPE: NeoX's default ``rotary_pct`` = 0.25 rotates 16 of the paper's 64-dimensional heads
(``paper`` keeps it); on the small presets' 8- and 16-dimensional heads it would rotate 2 or 4
(one or two frequencies, one nearly constant over 220 tokens), so ``quick`` and ``cpu`` rotate
every head dimension (``rotary_pct`` = 1.0). Rows of 220 tokens follow the official packing
(an earlier preset used 48-token rows).
"""

from learnlab.experiments.copying.config import MODELS, PARTS, TRANSFORMERS, Config, CopyingConfig, presets
from learnlab.experiments.copying.evidence import claims
from learnlab.experiments.copying.figures import figures
from learnlab.experiments.copying.parts import CountingStream, build_model, evaluate_examples, packed_sampler, run

NAME = "copying"
DESCRIPTION = "Jelassi et al. 2024: transformers copy and look up strings that state-space models cannot"
# Config fields that name your files: the CLI maps --model (a local Hugging Face causal LM) onto them.
USER_FILES = {"model": "pretrained.model_path"}

__all__ = ["NAME", "DESCRIPTION", "Config", "CopyingConfig", "presets", "run", "claims", "figures", "MODELS",
           "TRANSFORMERS", "PARTS", "CountingStream", "build_model", "evaluate_examples", "packed_sampler"]
