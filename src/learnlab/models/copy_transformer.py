"""The decoder-only transformer of "Repeat After Me" (Jelassi et al. 2024), GPT-NeoX style.

Parallel residual (x + attn(ln_1 x) + mlp(ln_2 x)), GELU MLP of width 4h, LayerNorm,
untied input and output embeddings, biases as in GPT-NeoX (none on the output embedding).
Positions, ``pos``:

- ``rope``: rotary embeddings on the first ``rotary_pct`` of each head's dimensions (25%, the
  NeoX/Pythia default);
- ``nope``: none (causal masking alone);
- ``alibi``: a bias -m_i (q - k) on head i with slopes m_i = 2^(-8 i / H);
- ``hard_alibi``: the first ``hard_alibi_heads`` = m heads see only the last 1, 2, ..., m
  tokens (head i, 1-based, attends to keys q - i < k <= q); the other heads use no position.

12 layers, h = 1,024, V = 30 and FFN 4h give exactly 151,218,176 parameters (tested).
``forward(idx, targets=None, loss_mask=None) -> (logits, loss)``; the loss averages the
cross-entropy over positions where ``loss_mask`` is True (all positions when it is None).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param
from learnlab.models.layers import masked_cross_entropy

__all__ = ["CopyTransformerConfig", "CopyTransformer", "position_bias", "alibi_slopes", "paper_config", "count_parameters"]

Position = Literal["rope", "nope", "alibi", "hard_alibi"]


def alibi_slopes(n_head: int) -> torch.Tensor:
    """m_i = 2^(-8 i / H), i = 1..H."""
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / n_head) for i in range(n_head)])


def position_bias(pos: Position, n_head: int, length: int, hard_alibi_heads: int, device=None) -> torch.Tensor:
    """The additive attention bias (H, T, T), causal mask included (-inf above the diagonal)."""
    q = torch.arange(length, device=device).unsqueeze(1)
    k = torch.arange(length, device=device).unsqueeze(0)
    distance = (q - k).float()  # (T, T), >= 0 where allowed
    causal = torch.where(distance >= 0, 0.0, float("-inf"))
    bias = causal.expand(n_head, -1, -1).clone()
    if pos == "alibi":
        bias = bias - alibi_slopes(n_head).to(device).view(-1, 1, 1) * distance.clamp_min(0)
    elif pos == "hard_alibi":
        for head in range(min(hard_alibi_heads, n_head)):  # head i sees the last i + 1 tokens
            bias[head] = torch.where((distance >= 0) & (distance <= head), 0.0, float("-inf"))
    return bias


@functools.lru_cache(maxsize=64)
def _shared_position_bias(pos: Position, n_head: int, length: int, hard_alibi_heads: int, device) -> torch.Tensor:
    """``position_bias`` built once per shape and device (every forward of a length needs the
    same (H, T, T) table; nothing writes to it)."""
    return position_bias(pos, n_head, length, hard_alibi_heads, device)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: CopyTransformerConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.d_model // cfg.n_head
        self.rotary_dim = int(self.head_dim * cfg.rotary_pct) // 2 * 2 if cfg.pos == "rope" else 0
        self.query_key_value = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)

    def _rope(self, x: torch.Tensor) -> torch.Tensor:  # (B, nh, T, hs): rotate the first rotary_dim dims
        d, length = self.rotary_dim, x.shape[2]
        inverse = 1.0 / (10000 ** (torch.arange(0, d, 2, device=x.device).float() / d))
        angles = torch.arange(length, device=x.device).float().unsqueeze(1) * inverse  # (T, d/2)
        cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
        rotated = x[..., :d] * cos + _rotate_half(x[..., :d]) * sin
        return torch.cat([rotated, x[..., d:]], dim=-1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.query_key_value(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.rotary_dim:
            q, k = self._rope(q), self._rope(k)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, nh, T, hs)
        return self.dense(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: CopyTransformerConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.d_model, cfg.ffn_mult * cfg.d_model)
        self.dense_4h_to_h = nn.Linear(cfg.ffn_mult * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class Block(nn.Module):
    """GPT-NeoX's parallel residual: attention and MLP read the same input."""

    def __init__(self, cfg: CopyTransformerConfig):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.d_model)
        self.post_attention_layernorm = nn.LayerNorm(cfg.d_model)
        self.attention, self.mlp = Attention(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.input_layernorm(x), bias) + self.mlp(self.post_attention_layernorm(x))


@dataclass(frozen=True)
class CopyTransformerConfig:
    n_layer: int = param(2, Interval(1, None))
    d_model: int = param(128, Interval(1, None), help="h")
    n_head: int = param(8, Interval(1, "d_model"))
    vocab_size: int = param(30, Interval(1, None))
    ffn_mult: int = param(4, Interval(1, None))
    pos: Position = param("hard_alibi")
    rotary_pct: float = param(0.25, Interval(0.0, 1.0), help="rope: fraction of each head's dimensions rotated")
    hard_alibi_heads: int = param(4, Interval(0, "n_head"), help="hard_alibi: heads windowed to 1..m tokens")

    def check(self) -> str | None:
        if self.d_model % self.n_head:
            return f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})"
        return None


class CopyTransformer(nn.Module):
    def __init__(self, cfg: CopyTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_in = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.final_layer_norm = nn.LayerNorm(cfg.d_model)
        self.embed_out = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)  # untied
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        bias = _shared_position_bias(self.cfg.pos, self.cfg.n_head, T, self.cfg.hard_alibi_heads, idx.device)
        x = self.embed_in(idx)  # (B, T, h)
        for block in self.layers:
            x = block(x, bias)
        logits = self.embed_out(self.final_layer_norm(x))  # (B, T, V)
        if targets is None:
            return logits, None
        return logits, masked_cross_entropy(logits, targets, loss_mask)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def paper_config(pos: Position = "hard_alibi") -> CopyTransformerConfig:
    """The paper's transformers: 12 layers x 1,024 x 16 heads (hard-ALiBi: 8 of 16 heads windowed)."""
    return CopyTransformerConfig(n_layer=12, d_model=1024, n_head=16, pos=pos, hard_alibi_heads=8)

