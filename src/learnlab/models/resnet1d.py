"""A 1-D ResNet for short signals (mnist1d): a stem and 8 residual blocks in 4 stages.

The pretrained backbone of the SubTuning reproduction: ``stem`` (conv, BN, ReLU), basic
residual blocks (two 3-tap convolutions with BatchNorm, a 1x1 projection when the shape
changes), channels c, 2c, 4c, 8c with stride 2 from the second stage, global average
pooling and a linear head. c = 18 gives 307,504 parameters (c = 16: 243,386). Built as a
``BlockwiseModel`` directly, so SubTuning needs no adapter.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from learnlab.models.blockwise import BlockwiseModel

__all__ = ["BasicBlock1d", "resnet1d"]


class BasicBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _Unsqueeze(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L) signals -> (B, 1, L)
        return x.unsqueeze(1) if x.dim() == 2 else x


def resnet1d(n_classes: int = 10, channels: int = 16, blocks_per_stage: int = 2) -> BlockwiseModel:
    stem = nn.Sequential(_Unsqueeze(), nn.Conv1d(1, channels, 5, 1, 2, bias=False), nn.BatchNorm1d(channels),
                         nn.ReLU())
    blocks, names, c_in = [], [], channels
    for stage, width in enumerate((channels, 2 * channels, 4 * channels, 8 * channels)):
        for index in range(blocks_per_stage):
            blocks.append(BasicBlock1d(c_in, width, 2 if stage > 0 and index == 0 else 1))
            names.append(f"layer{stage + 1}.{index}")
            c_in = width
    neck = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(1))
    return BlockwiseModel(stem, blocks, neck, nn.Linear(c_in, n_classes), names)
