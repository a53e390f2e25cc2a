"""ResNet-50 with torchvision's module names, so a torchvision state dict loads into it.

He et al. (2016), the ImageNet layout: 7x7 stride-2 stem, max-pool, bottleneck blocks
(1x1, 3x3 with the stride, 1x1 expanding 4x) in stages of (3, 4, 6, 3), global average
pooling, ``fc``. Written here because torchvision's wheel does not load beside the local
PyTorch build; ``width`` and ``layers`` shrink it for CPU tests (64 and (3, 4, 6, 3) give
torchvision's ``resnet50`` exactly: 25,557,032 parameters with 1,000 classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["Bottleneck", "ResNet50"]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        c_out = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    def __init__(self, n_classes: int = 1000, width: int = 64, layers: Sequence[int] = (3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        c_in = width
        for stage, (count, stride) in enumerate(zip(layers, (1, 2, 2, 2)), start=1):
            blocks = []
            for index in range(count):
                blocks.append(Bottleneck(c_in, width * 2 ** (stage - 1), stride if index == 0 else 1))
                c_in = width * 2 ** (stage - 1) * Bottleneck.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
