"""A small 1-D CNN for mnist1d (40 samples, 10 classes): three convolutions and a linear readout.

The teacher and student of ``sampler-distillation``'s mnist1d part (the CIFAR-10 ResNet
of Kaplun et al. 2022, scaled down to 1-D signals).
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["CNN1d"]


class CNN1d(nn.Module):
    """conv(5) -> conv(3, stride 2) -> conv(3, stride 2), ReLU after each, then a linear readout."""

    def __init__(self, channels: int = 32, length: int = 40, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
        self.readout = nn.Linear(channels * (length // 4), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 40) -> (B, 10)
        h = self.features(x.unsqueeze(1))  # (B, channels, 10)
        return self.readout(h.flatten(1))
