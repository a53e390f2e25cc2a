"""Backbones as an ordered list of blocks: what SubTuning needs from a model.

A ``BlockwiseModel`` is ``stem -> blocks[0] -> ... -> blocks[L-1] -> neck (-> head)``.
Adapters build one from a torchvision-style ResNet (blocks = residual blocks, e.g.
ResNet-50's 16 bottlenecks ``layer1.0 ... layer4.2``), a torchvision-style ViT (blocks =
encoder layers) and a Hugging Face encoder (``model.encoder.layer[i]``); any other model
is wrapped by passing its own stem, blocks and neck. The adapters share the modules of
the model they wrap (no copies).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from learnlab.models.blockwise import BlockwiseModel

__all__ = ["BlockwiseModel", "from_resnet", "from_vit", "from_hf_encoder"]


def from_resnet(model: nn.Module) -> BlockwiseModel:
    """A torchvision-style ResNet (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``)."""
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    blocks, names = [], []
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for index, block in enumerate(getattr(model, stage)):
            blocks.append(block)
            names.append(f"{stage}.{index}")
    return BlockwiseModel(stem, blocks, nn.Sequential(model.avgpool, nn.Flatten(1)), model.fc, names)


class _ViTStem(nn.Module):
    """Patchify, prepend the class token, add positions (torchvision's ``VisionTransformer``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = [model]  # not a submodule: its parameters are registered by the pieces below
        self.conv_proj, self.class_token = model.conv_proj, model.class_token
        self.pos_embedding, self.dropout = model.encoder.pos_embedding, model.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model[0]._process_input(x)  # (B, T, D)
        tokens = torch.cat([self.class_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.pos_embedding)


class _TakeFirstToken(nn.Module):
    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h)[:, 0]


def from_vit(model: nn.Module) -> BlockwiseModel:
    """A torchvision-style ViT: blocks are ``encoder.layers``; the neck is the final norm on the class token."""
    layers = list(model.encoder.layers)
    return BlockwiseModel(_ViTStem(model), layers, _TakeFirstToken(model.encoder.ln), model.heads,
                          [f"encoder.layers.{i}" for i in range(len(layers))])


class _HFLayer(nn.Module):
    """A Hugging Face encoder layer returns a tuple; keep the hidden states."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.layer(h)
        return out[0] if isinstance(out, tuple) else out


class _Pool(nn.Module):
    def __init__(self, pooling: str):
        super().__init__()
        self.pooling = pooling

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, 0] if self.pooling == "cls" else h.mean(dim=1)


def from_hf_encoder(model: nn.Module, pooling: str = "mean") -> BlockwiseModel:
    """A Hugging Face encoder (BERT-style: ``embeddings``, ``encoder.layer``) on token ids,
    unpadded (no attention mask); pooled by the first token (``cls``) or the mean."""
    layers = [_HFLayer(layer) for layer in model.encoder.layer]
    return BlockwiseModel(model.embeddings, layers, _Pool(pooling), None,
                          [f"encoder.layer.{i}" for i in range(len(layers))])
