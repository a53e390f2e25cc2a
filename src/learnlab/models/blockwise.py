"""A backbone as stem -> blocks -> neck (-> head): the structure SubTuning works on.

Models built this way (``resnet1d``) need no adapter; ``learnlab.finetune.blocks``
adapts torchvision-style ResNets and ViTs and Hugging Face encoders to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["BlockwiseModel"]


class BlockwiseModel(nn.Module):
    """stem, blocks, neck and an optional head, run in that order.

    ``run_blocks(h, start, stop)`` runs blocks [start, stop) on an activation, so a caller
    can compute a prefix once and continue from it.
    """

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], neck: nn.Module, head: nn.Module | None = None,
                 block_names: Sequence[str] | None = None):
        super().__init__()
        self.stem, self.blocks, self.neck = stem, nn.ModuleList(blocks), neck
        self.head = head if head is not None else nn.Identity()
        self.block_names = list(block_names) if block_names is not None else [f"block{i}" for i in range(len(blocks))]

    def __len__(self) -> int:
        return len(self.blocks)

    def run_blocks(self, h: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for block in self.blocks[start:stop]:
            h = block(h)
        return h

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.run_blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
