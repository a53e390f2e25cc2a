"""Softmax regression as S independent replicas at once, started at zero.

x (S, B, n) -> logits (S, B, C) = x W + b, with W (S, n, C) and b (S, 1, C) both zero at
the start (the convex problem's usual starting point: no seed, every replica the same
until its data differs). One ``torch.baddbmm`` for all replicas.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["StackedLinearClassifier"]


class StackedLinearClassifier(nn.Module):
    def __init__(self, n_inputs: int, n_classes: int, n_replicas: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.n_replicas = n_replicas
        self.weight = nn.Parameter(torch.zeros(n_replicas, n_inputs, n_classes, device=device))
        self.bias = nn.Parameter(torch.zeros(n_replicas, 1, n_classes, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)
