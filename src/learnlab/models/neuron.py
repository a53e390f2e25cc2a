"""A single neuron sigma(w . x + b), optionally read out as u * sigma(.), as S replicas.

Barak et al. (2022), Section 3.1: one neuron whose activation can represent a k-parity
of the sum of the support bits. For x in {+-1}^n and w = 1 on S, z = sum_{i in S} x_i is in
{-k, -k+2, ..., k}, and the parity is (-1)^((k - z) / 2). Activations:

- ``sin``: sin(z + b) represents it with w = -pi/2 on S and b = pi(k + 1)/2.
- ``zigzag``: the k-zigzag, the piecewise-linear interpolant of the parity on [-k, k],
  constant outside.
- ``zigzag_inf``: the infinite zigzag, the periodic triangle wave through the same points.
- ``poly``: the degree-k polynomial interpolating the parity on {-k, -k+2, ..., k}.

``forward(x)`` takes (S, B, n) and returns (S, B).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from learnlab.config import param
from learnlab.runtime import generator

__all__ = ["NeuronConfig", "SingleNeuron", "parity_activation"]


@dataclass(frozen=True)
class NeuronConfig:
    activation: Literal["sin", "zigzag", "zigzag_inf", "poly"] = param("sin")
    readout: bool = param(False, help="f = u * sigma(w.x + b) instead of sigma(w.x + b)")


def _zigzag_inf(z: torch.Tensor, k: int) -> torch.Tensor:
    # The triangle wave of period 4 with value (-1)^((k - z)/2) at z = k, k-2, ...
    phase = torch.remainder(z - k, 4.0)  # 0 at z = k (value +1), 2 at z = k - 2 (value -1)
    return 1.0 - torch.minimum(phase, 4.0 - phase)


def parity_activation(name: str, k: int):
    """The activation sigma with sigma(sum_{i in S} x_i) = prod_{i in S} x_i."""
    if name == "sin":
        return torch.sin
    if name == "zigzag_inf":
        return lambda z: _zigzag_inf(z, k)
    if name == "zigzag":
        return lambda z: _zigzag_inf(z.clamp(-k, k), k)
    if name == "poly":
        points = [float(k - 2 * j) for j in range(k + 1)]
        values = [(-1.0) ** j for j in range(k + 1)]

        def lagrange(z: torch.Tensor) -> torch.Tensor:
            total = torch.zeros_like(z)
            for i, (zi, yi) in enumerate(zip(points, values)):  # k + 1 terms, k is small
                term = torch.full_like(z, yi)
                for j, zj in enumerate(points):
                    if j != i:
                        term = term * (z - zj) / (zi - zj)
                total = total + term
            return total

        return lagrange
    raise ValueError(f"unknown activation {name!r}")


class SingleNeuron(nn.Module):
    """S stacked neurons: ``weight`` (S, 1, n), ``bias`` (S, 1), optional ``readout`` (S, 1)."""

    def __init__(self, n_inputs: int, k: int, cfg: NeuronConfig, seeds: Sequence[int], device="cpu"):
        super().__init__()
        self.cfg, self.n_replicas = cfg, len(seeds)
        self.activation = parity_activation(cfg.activation, k)
        bound = 1 / math.sqrt(n_inputs)
        draws = []
        for seed in seeds:
            g = generator(seed, device)
            draws.append(torch.empty(n_inputs + 2, device=device).uniform_(-bound, bound, generator=g))
        draws = torch.stack(draws)
        self.weight = nn.Parameter(draws[:, None, :n_inputs].clone())  # (S, 1, n)
        self.bias = nn.Parameter(draws[:, n_inputs : n_inputs + 1].clone())  # (S, 1)
        self.readout = nn.Parameter(draws[:, n_inputs + 1 :].clone()) if cfg.readout else None  # (S, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2)).squeeze(2)  # (S, B)
        out = self.activation(z)
        return out * self.readout if self.readout is not None else out
