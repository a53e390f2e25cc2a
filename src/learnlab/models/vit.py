"""ViT-B/16 with torchvision's module names, so a torchvision state dict loads into it.

Dosovitskiy et al. (2021): patches of 16 x 16 embedded by a strided convolution
(``conv_proj``), a class token, learned positions, pre-norm encoder blocks (``ln_1``,
multi-head self-attention, ``ln_2``, a GELU MLP 4x wide), a final LayerNorm and
``heads.head``. Written here because torchvision's wheel does not load beside the local
PyTorch build; the sizes shrink it for CPU tests (224 / 16 / 768 / 12 layers / 12 heads
is torchvision's ``vit_b_16``: 86,567,656 parameters with 1,000 classes).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

__all__ = ["EncoderBlock", "VisionTransformer"]


class EncoderBlock(nn.Module):
    def __init__(self, heads: int, dim: int, mlp_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, dim),
                                 nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        h = self.ln_1(x)
        h, _ = self.self_attention(h, h, h, need_weights=False)
        x = x + self.dropout(h)
        return x + self.mlp(self.ln_2(x))


class _Encoder(nn.Module):
    def __init__(self, tokens: int, layers: int, heads: int, dim: int, mlp_dim: int):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(heads, dim, mlp_dim)) for i in range(layers)))
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int = 224, patch_size: int = 16, layers: int = 12, heads: int = 12,
                 dim: int = 768, mlp_dim: int = 3072, n_classes: int = 1000):
        super().__init__()
        self.patch_size = patch_size
        self.conv_proj = nn.Conv2d(3, dim, patch_size, patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = _Encoder((image_size // patch_size) ** 2 + 1, layers, heads, dim, mlp_dim)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, n_classes)))

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h w, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self._process_input(x)
        tokens = torch.cat([self.class_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.heads(self.encoder(tokens)[:, 0])
