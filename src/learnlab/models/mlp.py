"""Two-layer MLP f(x) = sum_i u_i sigma(w_i . x + b_i), as S independent replicas at once.

The learner of Barak et al. (2022), Section 4: width r, ReLU by default, biases on (an
odd-k parity needs them), PyTorch's default initialisation. Replicas are stacked along
a leading dimension and multiplied with ``torch.baddbmm``, so S seeds train as one
model; replica s starts from exactly the weights a single model seeded with
``seeds[s]`` would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param
from learnlab.runtime import generator

__all__ = ["MLPConfig", "TwoLayerMLP", "sparse_mask"]

_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu}


@dataclass(frozen=True)
class MLPConfig:
    width: int = param(100, Interval(1, None), help="hidden units r")
    activation: Literal["relu", "tanh", "gelu", "power"] = param("relu", help="power: sigma(z) = z^power")
    power: int = param(3, Interval(1, 16), help="the exponent of the power activation (k for z^k)")
    bias: bool = param(True, help="hidden biases b_i")
    output_bias: bool = param(False, help="a bias on f; the paper's f has none")
    init: Literal["pytorch", "uniform", "gaussian", "bernoulli"] = param(
        "pytorch", help="pytorch: U(+-1/sqrt(fan_in)); uniform: Xavier; gaussian: Kaiming; bernoulli: +-init_scale")
    init_scale: float = param(1.0, Interval(0.0, None, closed="neither"),
                              help="bernoulli: the magnitude c of the +-c first-layer weights")
    init_sparsity: int | None = param(None, Interval(1, None),
                                      help="sparse init (Edelman et al. 2023): s nonzero input weights per "
                                           "neuron on random coordinates, the rest zero; None: dense")


class TwoLayerMLP(nn.Module):
    """S stacked two-layer MLPs.

    Parameters: ``weight`` (S, r, n), ``bias`` (S, r), ``readout`` (S, r) and optional
    ``output_bias`` (S,). ``forward(x)`` takes (S, B, n) and returns f, shape (S, B).

    ``widths`` gives each replica its own width (default ``cfg.width`` for all): replicas
    are padded to the largest width, and a fixed ``neuron_mask`` (S, r) switches the
    padding off, so padded neurons stay exactly zero and receive no gradient.
    """

    def __init__(self, n_inputs: int, cfg: MLPConfig, seeds: Sequence[int], device: torch.device | str = "cpu",
                 widths: Sequence[int] | None = None):
        super().__init__()
        self.cfg, self.n_inputs, self.n_replicas = cfg, n_inputs, len(seeds)
        self.activation = (lambda z: z**cfg.power) if cfg.activation == "power" else _ACTIVATIONS[cfg.activation]
        widths = list(widths) if widths is not None else [cfg.width] * len(seeds)
        n, r_max = n_inputs, max(widths)
        weight, bias, readout, output_bias = [], [], [], []
        for seed, r in zip(seeds, widths, strict=True):
            g = generator(seed, device)
            # nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
            weight.append(_pad(_first_layer((r, n), cfg, g), r_max))
            bias.append(_pad(_uniform((r,), 1 / math.sqrt(n), g), r_max))
            readout.append(_pad(_uniform((r,), 1 / math.sqrt(r), g), r_max))
            output_bias.append(_uniform((), 1 / math.sqrt(r), g))
        mask = torch.arange(r_max, device=device)[None, :] < torch.tensor(widths, device=device)[:, None]
        self.register_buffer("neuron_mask", mask.float())  # (S, r)
        self.weight = nn.Parameter(torch.stack(weight))  # (S, r, n)
        self.bias = nn.Parameter(torch.stack(bias)) if cfg.bias else None  # (S, r)
        self.readout = nn.Parameter(torch.stack(readout))  # (S, r)
        self.output_bias = nn.Parameter(torch.stack(output_bias)) if cfg.output_bias else None  # (S,)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations w_i . x + b_i, (S, B, r), for x of shape (S, B, n)."""
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.hidden(x)) * self.neuron_mask.unsqueeze(1)  # (S, B, r)
        out = torch.bmm(h, self.readout.unsqueeze(2)).squeeze(2)  # (S, B)
        if self.output_bias is not None:
            out = out + self.output_bias.unsqueeze(1)
        return out


def _pad(rows: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad the first dimension to ``size``."""
    return torch.cat([rows, rows.new_zeros(size - rows.shape[0], *rows.shape[1:])]) if rows.shape[0] < size else rows


def _first_layer(shape: tuple[int, int], cfg: MLPConfig, g: torch.Generator) -> torch.Tensor:
    r, n = shape
    # A sparse init zeroes all but s coordinates of the dense init ("the rest zero"); the
    # kept weights keep their dense scale here (pareto-frontiers rescales them, and the
    # bias, to a fresh s-input unit's). (Rescaling them as fan_in = s gave large initial
    # weights and learned the (40, 3) parity from fewer samples less often.)
    fan_in = n
    if cfg.init == "uniform":  # Xavier/Glorot: U(+-sqrt(6 / (fan_in + fan_out)))
        weight = _uniform(shape, math.sqrt(6 / (fan_in + r)), g)
    elif cfg.init == "gaussian":  # Kaiming/He for ReLU: N(0, 2 / fan_in)
        weight = torch.randn(shape, generator=g, device=g.device) * math.sqrt(2 / fan_in)
    elif cfg.init == "bernoulli":  # +-c with equal probability
        weight = (torch.randint(0, 2, shape, generator=g, device=g.device) * 2 - 1).float() * cfg.init_scale
    else:
        weight = _uniform(shape, 1 / math.sqrt(fan_in), g)
    if cfg.init_sparsity is not None:
        weight = weight * sparse_mask(r, n, cfg.init_sparsity, g)
    return weight


def sparse_mask(rows: int, columns: int, nonzeros: int, g: torch.Generator) -> torch.Tensor:
    """A (rows, columns) 0/1 mask with ``nonzeros`` ones per row on uniformly random columns."""
    if not 1 <= nonzeros <= columns:
        raise ValueError(f"init_sparsity must be in [1, n_inputs={columns}]; got {nonzeros}")
    chosen = torch.rand((rows, columns), generator=g, device=g.device).argsort(dim=1)[:, :nonzeros]
    return torch.zeros((rows, columns), device=g.device).scatter_(1, chosen, 1.0)


def _uniform(shape, bound: float, g: torch.Generator) -> torch.Tensor:
    return torch.empty(shape, device=g.device).uniform_(-bound, bound, generator=g)
