"""Multi-task inference with one shared frozen trunk (SubTuning, Section 5).

Tasks finetuned by SubTuning from the same pretrained backbone share every block before
their first tuned one. ``MultiTaskSubTuned`` runs the shared prefix once, branches each
task at its first tuned block and runs only that task's suffix, so T tasks cost the
deepest shared prefix plus each task's suffix instead of T full models. ``flops`` counts
exactly, with ``torch.utils.flop_counter``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from learnlab.finetune.subtune import SubTuned

__all__ = ["MultiTaskSubTuned", "flops"]


class MultiTaskSubTuned(nn.Module):
    """T SubTuned models of one backbone, computed in one pass; ``forward`` returns a list of T logits."""

    def __init__(self, tasks: Sequence[SubTuned]):
        super().__init__()
        if not tasks:
            raise ValueError("at least one task")
        if any(t.tune_stem or t.siamese for t in tasks):
            raise ValueError("shared inference needs a frozen stem and non-siamese tasks")
        reference = tasks[0].backbone
        for task in tasks[1:]:  # the shared part must really be shared
            shared = min(task.first, tasks[0].first)
            for a, b in zip(_frozen_state(reference, shared), _frozen_state(task.backbone, shared)):
                if not torch.equal(a, b):
                    raise ValueError("the tasks' frozen prefixes differ: they are not SubTuned from one backbone")
        self.trunk = reference
        self.tasks = nn.ModuleList(tasks)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branches = sorted({t.first for t in self.tasks})
        h, at, cache = self.trunk.stem(x), 0, {}
        for point in branches:  # the shared trunk, advanced branch point by branch point
            h = self.trunk.run_blocks(h, at, point)
            at, cache[point] = point, h
        return [task.suffix(cache[task.first]) for task in self.tasks]


def _frozen_state(backbone, upto: int) -> list[torch.Tensor]:
    parts = [backbone.stem] + list(backbone.blocks[:upto])
    return [t for part in parts for t in list(part.parameters()) + list(part.buffers())]


def flops(module: Callable[[torch.Tensor], object], x: torch.Tensor) -> int:
    """Floating-point operations of one forward pass of ``module`` (a module or any function
    of one tensor) on ``x`` (``torch.utils.flop_counter``)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    return int(counter.get_total_flops())
