"""The metric names of icl-markov: written by the evaluator and ``run``, read by the claims
and figures. A control's metrics carry its scope: ``one_layer/kl``."""

from __future__ import annotations

from learnlab.store import scoped_name

STRATEGY_NAMES = ("uniform", "unigram", "bigram", "trigram")
CONTROLS = ("one_layer", "minimal", "doubly_stochastic", "unigram_mix")

# per evaluation, one value per seed
KL = "kl"  # KL(true || model) at the last position
CROSS_ENTROPY = "cross_entropy"
KL_ALL_POSITIONS = "kl_all_positions"
L1_PREVIOUS = "l1_prev_attention"  # layer 1: mean attention to the previous token (best head)
L2_INDUCTION = "l2_induction_mass"  # layer 2, last query: mass on tokens that followed the current one
RELATIVE_OFFSETS = 6
MINIMAL_W_DIAGONAL = "w_diagonal"
MINIMAL_W_OFF_DIAGONAL = "w_off_diagonal"
MINIMAL_V_PREVIOUS = "v_previous_mass"  # softmax(v) at offset 1
# once per run (step 0)
COUNT_ONLY_FLOOR = "count_only_floor"
ATTENTION_SNAPSHOTS = "attention_snapshots"  # artifact


def kl_to(strategy: str) -> str:
    """KL(strategy || model) at the last position."""
    return f"kl_{strategy}"


def level(strategy: str) -> str:
    """KL(true || strategy) on the test set (logged once)."""
    return f"level_{strategy}"


def l1_relative(offset: int) -> str:
    """Layer 1's positional score q . r_m / sqrt(d_head) at offset m."""
    return f"l1_rel_{offset}"


def minimal_v(offset: int) -> str:
    return f"v_{offset}"


scoped = scoped_name  # ``name`` within a control's scope (``""``: the main model)
