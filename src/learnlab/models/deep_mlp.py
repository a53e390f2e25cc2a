"""A depth-L ReLU MLP with C outputs, as S independent replicas at once.

The tabular learner of Edelman et al., "Pareto Frontiers in Neural Feature Learning"
(NeurIPS 2023), Section 5: wide MLPs whose first layer may start sparse (each hidden
neuron sees s random input coordinates), trained as dense layers afterwards. Replicas
are stacked along a leading dimension and multiplied with ``torch.baddbmm``, so every
(seed, data fraction, variant) of a sweep trains in one model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param
from learnlab.models.mlp import sparse_mask
from learnlab.runtime import generator

__all__ = ["DeepMLPConfig", "DeepMLP"]


@dataclass(frozen=True)
class DeepMLPConfig:
    width: int = param(512, Interval(1, None), help="hidden units per layer")
    depth: int = param(1, Interval(1, 8), help="hidden layers")
    init_sparsity: int | None = param(None, Interval(1, None),
                                      help="s nonzero first-layer weights per neuron; None: dense")


class DeepMLP(nn.Module):
    """S stacked MLPs: x (S, B, n) -> logits (S, B, C).

    ``sparsities`` optionally gives each replica its own first-layer sparsity (None: dense),
    so dense and sparse inits train side by side; widths and depths are shared.
    PyTorch's ``nn.Linear`` initialisation, U(+-1/sqrt(fan_in)); a sparse first layer
    keeps s random entries of each row and zeroes the rest.
    """

    def __init__(self, n_inputs: int, n_outputs: int, cfg: DeepMLPConfig, seeds: Sequence[int],
                 device: torch.device | str = "cpu", sparsities: Sequence[int | None] | None = None):
        super().__init__()
        self.cfg, self.n_replicas = cfg, len(seeds)
        sparsities = list(sparsities) if sparsities is not None else [cfg.init_sparsity] * len(seeds)
        sizes = [n_inputs] + [cfg.width] * cfg.depth + [n_outputs]
        layers: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(len(sizes) - 1)]
        for seed, sparsity in zip(seeds, sparsities, strict=True):
            g = generator(seed, device)
            for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1 / math.sqrt(fan_in)
                weight = torch.empty(fan_out, fan_in, device=device).uniform_(-bound, bound, generator=g)
                if i == 0 and sparsity is not None:
                    weight = weight * sparse_mask(fan_out, fan_in, sparsity, g)
                bias = torch.empty(fan_out, device=device).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in),
                                                                    generator=g)
                layers[i].append((weight, bias))
        self.weights = nn.ParameterList([nn.Parameter(torch.stack([w for w, _ in layer])) for layer in layers])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack([b for _, b in layer])) for layer in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x  # (S, B, n)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))  # (S, B, fan_out)
            if i < last:
                h = F.relu(h)
        return h  # (S, B, C)
