"""A small transformer that classifies the n bits as a sequence (Barak et al. 2022, Sec. 3.1).

Each bit is a token (two embeddings) with a learned position embedding; pre-LayerNorm
encoder blocks (bidirectional attention, GELU MLP); the output is read from a learned
[CLS] token. The paper trains it with Adam at lr 3e-4 (``train.optimizer=adam
train.lr=3e-4``). Written with plain matmuls so that ``torch.func.vmap`` batches it
over replicas without falling back to per-replica loops.

``forward(x)`` takes (B, n) inputs in {-1, +1} and returns (B,) outputs f(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param

__all__ = ["ParityTransformerConfig", "ParityTransformer"]


class Attention(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        pattern = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.n_heads), dim=-1)  # (B, nh, T, T)
        return self.out((pattern @ v).transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.ln_attn, self.attn = nn.LayerNorm(d), Attention(d, n_heads)
        self.ln_mlp, self.mlp_in, self.mlp_out = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp_out(F.gelu(self.mlp_in(self.ln_mlp(x))))


@dataclass(frozen=True)
class ParityTransformerConfig:
    d_model: int = param(64, Interval(1, 4096))
    n_heads: int = param(4, Interval(1, 64))
    n_layers: int = param(2, Interval(1, 24))

    def check(self) -> str | None:
        return None if self.d_model % self.n_heads == 0 else "d_model must be divisible by n_heads"


class ParityTransformer(nn.Module):
    def __init__(self, n_bits: int, cfg: ParityTransformerConfig):
        super().__init__()
        self.token = nn.Parameter(torch.randn(2, cfg.d_model) * 0.02)  # bit -1, bit +1
        self.position = nn.Parameter(torch.randn(n_bits + 1, cfg.d_model) * 0.02)  # +1: the [CLS] slot
        self.cls = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.readout = nn.Linear(cfg.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bit = ((x + 1) / 2).unsqueeze(-1)  # (B, n, 1): 0 or 1
        tokens = (1 - bit) * self.token[0] + bit * self.token[1]  # (B, n, d), vmap-friendly lookup
        h = torch.cat([self.cls.expand(x.shape[0], 1, -1), tokens], dim=1) + self.position  # (B, n+1, d)
        for block in self.blocks:
            h = block(h)
        return self.readout(self.norm(h[:, 0])).squeeze(-1)  # (B,)
