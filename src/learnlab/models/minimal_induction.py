"""The minimal two-layer model of the ICL Markov-chain paper's theory, S replicas stacked.

Edelman et al. (2024; arXiv 2402.11004), Section 5. Layer 1 mixes one-hot tokens by a
learned positional softmax, h_j = sum_{i<=j} softmax(v)_{j-i} e_{x_i}, the softmax taken
over the offsets a causal position can see (0..j; the official code's mask is a no-op,
so its positions see the future). Layer 2 is linear attention with the current token
as query: logits_t = sum_{j<=t} (e_{x_t}^T W h_j) e_{x_j}. Init v = 0, W = 0.01.

``forward(idx)`` takes (S, B, T) tokens and returns (S, B, T, k) logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param
from learnlab.models.hooks import HookPoint

__all__ = ["MinimalInductionConfig", "MinimalInductionModel"]


@dataclass(frozen=True)
class MinimalInductionConfig:
    max_len: int = param(100, Interval(1, None))
    init_w: float = param(0.01, help="every entry of W starts here")
    # W's gradient grows with the context length (its logits are sums over positions), v's
    # does not: W needs a much smaller step (chosen so that SGD is stable at T = 100).
    lr_v: float = param(1.0, Interval(0.0, None, closed="neither"),
                        help="SGD learning rate of v: the minimal model trains at this rate")
    lr_w: float = param(0.01, Interval(0.0, None, closed="neither"),
                        help="SGD learning rate of W (its group's multiplier is lr_w / lr_v)")


class MinimalInductionModel(nn.Module):
    def __init__(self, vocab_size: int, cfg: MinimalInductionConfig, seeds: Sequence[int], device="cpu"):
        super().__init__()
        self.cfg, self.vocab_size, self.n_replicas = cfg, vocab_size, len(seeds)
        # The init is deterministic (v = 0, W = init_w); seeds only label the replicas.
        self.v = nn.Parameter(torch.zeros(len(seeds), cfg.max_len, device=device))  # (S, T_max)
        self.w = nn.Parameter(torch.full((len(seeds), vocab_size, vocab_size), cfg.init_w, device=device))  # (S, k, k)
        self.hook_mixing = HookPoint()  # [S, query j, key i]: layer-1 weights softmax(v)_{j-i}

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        S, B, T = idx.shape
        e = F.one_hot(idx, self.vocab_size).float()  # (S, B, T, k)
        positions = torch.arange(T, device=idx.device)
        offsets = positions[:, None] - positions[None, :]  # (T, T): j - i
        scores = self.v[:, offsets.clamp_min(0)]  # (S, T, T): v_{j-i}
        scores = scores.masked_fill(offsets < 0, float("-inf"))  # position j sees i <= j only
        mixing = self.hook_mixing(torch.softmax(scores, dim=-1))  # (S, T, T)
        k = self.vocab_size
        h = torch.bmm(mixing, e.transpose(1, 2).reshape(S, T, B * k)).view(S, T, B, k).transpose(1, 2)  # (S, B, T, k)
        query = e @ self.w.unsqueeze(1)  # (S, B, T, k): e_{x_t}^T W
        # logits_t[c] = sum_{j <= t, x_j = c} query_t . h_j = query_t . H_t[c], with H_t = sum_{j <= t}
        # e_{x_j} h_j^T a running sum: O(T k^2) a sequence instead of the (T, T) attention matrix.
        running = (e.unsqueeze(-1) * h.unsqueeze(-2)).cumsum(dim=2)  # (S, B, T, k, k): [c, a]
        return (running @ query.unsqueeze(-1)).squeeze(-1)  # (S, B, T, k)

    def readouts(self, offsets: int = 6) -> dict[str, torch.Tensor]:
        """Per-replica numbers read off the weights, for evaluators (each (S,)): W's mean
        diagonal and off-diagonal entries (``w_diagonal``, ``w_off_diagonal``), the layer-1
        weight on the previous token softmax(v)_1 (``v_previous_mass``) and v at offsets
        0..offsets-1 (``v_<m>``)."""
        w, k = self.w, self.vocab_size
        diagonal = w.diagonal(dim1=1, dim2=2)
        off = (w.sum(dim=(1, 2)) - diagonal.sum(dim=1)) / max(1, k * k - k)
        return {"w_diagonal": diagonal.mean(dim=1), "w_off_diagonal": off,
                "v_previous_mass": torch.softmax(self.v, dim=1)[:, 1],
                **{f"v_{m}": self.v[:, m] for m in range(min(offsets, self.v.shape[1]))}}

    def param_groups(self) -> list[dict]:
        """SGD with a learning rate per parameter, as in the paper's analysis: v's group at the
        run's learning rate (train at ``lr = cfg.lr_v``), W's at ``lr_w / lr_v`` times it. Only
        multipliers (``lr_scale``): the training loop sets every group's rate."""
        return [{"params": [self.v], "lr_scale": 1.0},
                {"params": [self.w], "lr_scale": self.cfg.lr_w / self.cfg.lr_v}]
