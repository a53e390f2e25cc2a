"""The LSTM baseline of "Repeat After Me": embedding -> multi-layer ``nn.LSTM`` -> linear head.

A working init: orthogonal recurrent weights, Xavier input weights, forget-gate biases 1
(Jozefowicz et al. 2015), so gradients flow through long strings from the first step.
``forward(idx, targets=None, loss_mask=None) -> (logits, loss)`` like the other copy models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from learnlab.config import Interval, param
from learnlab.models.layers import masked_cross_entropy

__all__ = ["LSTMConfig", "LSTMModel"]


@dataclass(frozen=True)
class LSTMConfig:
    n_layer: int = param(1, Interval(1, None))
    hidden: int = param(256, Interval(1, None))
    d_embed: int = param(128, Interval(1, None))
    vocab_size: int = param(30, Interval(1, None))
    dropout: float = param(0.0, Interval(0.0, 1.0, closed="left"), help="between layers (0.65 in the paper)")


class LSTMModel(nn.Module):
    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_embed)
        self.lstm = nn.LSTM(cfg.d_embed, cfg.hidden, cfg.n_layer, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)
        for name, weight in self.lstm.named_parameters():
            if name.startswith("weight_hh"):
                for gate in weight.data.chunk(4):  # input, forget, cell, output blocks
                    nn.init.orthogonal_(gate)
            elif name.startswith("weight_ih"):
                nn.init.xavier_uniform_(weight.data)
            else:  # biases: zero, forget gate 1 (split over bias_ih and bias_hh)
                weight.data.zero_()
                weight.data[cfg.hidden:2 * cfg.hidden] = 0.5

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden, _ = self.lstm(self.embedding(idx))  # (B, T, hidden)
        logits = self.head(hidden)  # (B, T, V)
        if targets is None:
            return logits, None
        return logits, masked_cross_entropy(logits, targets, loss_mask)
