"""Metric names of the subtuning experiment: written by ``run`` (and ``external``), read by
``evidence``. Per-target metrics live under the target's scope (``new_classes/lp``); their
step is the number of examples per class; values are (S,) over paired seeds."""

from __future__ import annotations

from learnlab.store import scoped_name

PRETRAIN = "pretrain"  # scope of the backbone's pretraining (the loop logs train_loss and lr per epoch)
SOURCE_ACC = "source_acc"  # source test accuracy under PRETRAIN; NaN when loaded from weights_path

N_BLOCKS = "n_blocks"  # scalar at step 0
LP = "lp"  # linear probing: test accuracy per seed
FT = "ft"  # full finetuning (stem and every block)
LORA = "lora"  # MiniLM only: LoRA adapters on every block
GREEDY = "greedy"  # greedy SubTuning's chosen blocks, retrained on all the examples
GREEDY_BLOCKS = "greedy_blocks"  # how many blocks greedy chose, per seed
GREEDY_CAPPED = "greedy_capped"  # 1 where greedy stopped at min(greedy_max_blocks, L) (the cap bound), else 0


def profile_block(b: int) -> str:
    """Test accuracy of finetuning block b alone (with a new head), per seed, at profile_size."""
    return f"profile_block{b}"


def greedy_choice(seed_index: int) -> str:
    """(L,) 0/1: which blocks greedy chose for paired seed ``seed_index``."""
    return f"greedy_choice_seed{seed_index}"


def greedy_calls(seed_index: int) -> str:
    return f"greedy_calls_seed{seed_index}"


MULTITASK = "multitask"  # scope of the shared-trunk inference check
MAX_ABS_DIFFERENCE = "max_abs_difference"  # merged vs separate outputs
FLOPS_ONE_MODEL = "flops_one_model"
FLOPS_RATIO = "flops_ratio"  # (4,): T = 1..4 tasks on one trunk, FLOPs / one model
FLOPS_RATIO_TWO = "flops_ratio_two"
# (prefix + 2 x branch) / one model, counted on the parts alone: what sharing the trunk should cost
FLOPS_RATIO_TWO_PARTS = "flops_ratio_two_parts"

MINILM = "minilm"  # scope of the MiniLM-L6 profile; names lp, ft, lora, block{b}


def minilm_block(b: int) -> str:
    return f"block{b}"


scoped = scoped_name  # "scope/name"
