"""Identity hook points where probes look (TransformerLens-style, but small).

A model places ``self.hook_pattern = HookPoint()`` where a probe may read a tensor;
``learnlab.probes.hooks.capture`` records what passes through, by module path.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["HookPoint"]


class HookPoint(nn.Identity):
    """Returns its input unchanged; a forward hook on it sees the tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
