"""PolyNet f(x) = prod_{i<=k} (w_i . x + b_i), as S replicas (Barak et al. 2022, Section 3.1).

A product of k affine units represents a k-parity exactly (w_i = e_{s_i}, b_i = 0). The
*disjoint* PolyNet of the theory restricts unit i to its own block of about n/k input
coordinates (a fixed mask), so the units cannot share coordinates.

``forward(x)`` takes (S, B, n) and returns (S, B).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from learnlab.config import param
from learnlab.runtime import generator

__all__ = ["PolyNetConfig", "PolyNet"]


@dataclass(frozen=True)
class PolyNetConfig:
    disjoint: bool = param(False, help="unit i sees only its own block of n/k coordinates")


class PolyNet(nn.Module):
    """``weight`` (S, k, n), ``bias`` (S, k); a fixed ``mask`` (k, n) for the disjoint variant."""

    def __init__(self, n_inputs: int, k: int, cfg: PolyNetConfig, seeds: Sequence[int], device="cpu"):
        super().__init__()
        self.cfg, self.n_replicas = cfg, len(seeds)
        bound = 1 / math.sqrt(n_inputs)
        weights, biases = [], []
        for seed in seeds:
            g = generator(seed, device)
            weights.append(torch.empty(k, n_inputs, device=device).uniform_(-bound, bound, generator=g))
            biases.append(torch.empty(k, device=device).uniform_(-bound, bound, generator=g))
        mask = torch.ones(k, n_inputs, device=device)
        if cfg.disjoint:
            block = torch.arange(n_inputs, device=device) * k // n_inputs  # coordinate j -> unit block
            mask = (block[None, :] == torch.arange(k, device=device)[:, None]).float()
        self.register_buffer("mask", mask)
        self.weight = nn.Parameter(torch.stack(weights) * mask)  # (S, k, n)
        self.bias = nn.Parameter(torch.stack(biases))  # (S, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = torch.baddbmm(self.bias.unsqueeze(1), x, (self.weight * self.mask).transpose(1, 2))  # (S, B, k)
        return units.prod(dim=-1)  # (S, B)
