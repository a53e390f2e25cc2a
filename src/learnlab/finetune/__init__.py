"""SubTuning as a component: block adapters, selective finetuning, block selection, multi-task inference.

``from_resnet`` / ``from_vit`` / ``from_hf_encoder`` (or ``BlockwiseModel`` for your own
model) expose a backbone's blocks; ``SubTuned`` finetunes chosen blocks and a new head
with the rest frozen (and in eval mode); ``fit`` trains it on cached prefix activations;
``finetuning_profile`` and ``greedy_subtuning`` choose blocks; ``MultiTaskSubTuned``
serves many tasks from one trunk; ``add_lora`` is the LoRA baseline.
"""

from learnlab.finetune.blocks import BlockwiseModel, from_hf_encoder, from_resnet, from_vit
from learnlab.finetune.multitask import MultiTaskSubTuned, flops
from learnlab.finetune.selection import (cross_validated_score, cross_validated_scores, finetuning_profile,
                                        greedy_many, greedy_subtuning)
from learnlab.finetune.stack import Prefixes, Replica, SubTunedStack, fit_many
from learnlab.finetune.subtune import FitConfig, LoRALinear, SubTuned, accuracy, add_lora, fit, subtune

__all__ = ["BlockwiseModel", "FitConfig", "LoRALinear", "MultiTaskSubTuned", "SubTuned", "accuracy", "add_lora",
           "cross_validated_score", "cross_validated_scores", "finetuning_profile", "fit", "fit_many", "flops", "from_hf_encoder", "from_resnet", "from_vit",
           "greedy_many", "greedy_subtuning", "Prefixes", "Replica", "SubTunedStack", "subtune"]
