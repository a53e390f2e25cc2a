"""Linear (and shallow-MLP) auto-regressive next-token predictors.

Malach, "Auto-Regressive Next-Token Predictors are Universal Learners" (ICML 2024;
arXiv 2309.06979) and the official ``LinearLM`` code: a token embedding (d), one linear
map from the whole context (T d) to T d whose block (t, s) is zero for s > t (position
t sees positions <= t, its own included), and an output embedding d -> V. No
nonlinearity: every next-token distribution is a softmax of a linear function of the
context. The MLP variant adds ReLU -> per-position Linear(d, d) -> ReLU before the
output embedding.

The causal map stores T d x T d weights, half of them masked (``groups=1``, the official
layout, with the mask a (T, T) buffer), or only the row blocks a position group needs
(``groups=G``: row group g holds the weights from positions < its end, so about
(1/2 + 1/2G) of the dense matrix, and the matmul skips the zero upper blocks). The
effective parameter count is the same either way: T(T+1)/2 d^2 + biases + embeddings.
The official code creates the bias of the causal map but never adds it; here it is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param

__all__ = ["CausalBlockLinear", "LinearARConfig", "LinearAR"]


class CausalBlockLinear(nn.Module):
    """y_t = b_t + sum_{s <= t} W_{t s} x_s for x of shape (B, T, d_in); returns (B, T, d_out)."""

    def __init__(self, context: int, d_in: int, d_out: int, groups: int = 1):
        super().__init__()
        self.context, self.d_in, self.d_out = context, d_in, d_out
        bound = 1 / math.sqrt(context * d_in)  # nn.Linear(T d_in, T d_out)'s default init
        edges = [round(context * g / groups) for g in range(groups + 1)]
        self.spans = [(start, end) for start, end in zip(edges[:-1], edges[1:]) if end > start]
        # Row group [start, end) reads positions [0, end); within it, position t reads s <= t.
        self.weights = nn.ParameterList([
            nn.Parameter(torch.empty((end - start) * d_out, end * d_in).uniform_(-bound, bound))
            for start, end in self.spans])
        for i, (start, end) in enumerate(self.spans):
            rows = torch.arange(start, end)[:, None]
            self.register_buffer(f"mask_{i}", torch.arange(end)[None, :] <= rows, persistent=False)  # (rows, end)
        self.bias = nn.Parameter(torch.empty(context * d_out).uniform_(-bound, bound))

    def masked_weight(self, i: int) -> torch.Tensor:
        start, end = self.spans[i]
        mask = getattr(self, f"mask_{i}")
        weight = self.weights[i].view(end - start, self.d_out, end, self.d_in)
        return (weight * mask.view(end - start, 1, end, 1)).view((end - start) * self.d_out, end * self.d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        flat = x.reshape(batch, self.context * self.d_in)  # (B, T d_in)
        outputs = [F.linear(flat[:, : end * self.d_in], self.masked_weight(i))  # (B, rows d_out)
                   for i, (_, end) in enumerate(self.spans)]
        y = torch.cat(outputs, dim=1) + self.bias
        return y.view(batch, self.context, self.d_out)

    def position(self, flat: torch.Tensor, t: int) -> torch.Tensor:
        """y_t alone, (B, d_out), from the flattened inputs (B, >= (t+1) d_in): the rows of
        position t only, so decoding one token costs (t+1) d_in d_out, not the whole map."""
        i = next(i for i, (start, end) in enumerate(self.spans) if start <= t < end)
        start, _ = self.spans[i]
        rows = self.weights[i][(t - start) * self.d_out : (t - start + 1) * self.d_out, : (t + 1) * self.d_in]
        return F.linear(flat[:, : (t + 1) * self.d_in], rows, self.bias[t * self.d_out : (t + 1) * self.d_out])

    def effective_parameters(self) -> int:
        """Weights that can be nonzero, T(T+1)/2 d_in d_out, plus the bias."""
        return self.context * (self.context + 1) // 2 * self.d_in * self.d_out + self.bias.numel()

    @torch.no_grad()
    def load_dense(self, dense: torch.Tensor) -> None:
        """Set the weights from a (T d_out, T d_in) matrix (its upper blocks are ignored)."""
        for i, (start, end) in enumerate(self.spans):
            self.weights[i].copy_(dense[start * self.d_out : end * self.d_out, : end * self.d_in])

    def dense_weight(self) -> torch.Tensor:
        """The (T d_out, T d_in) masked matrix this layer applies."""
        dense = self.weights[0].new_zeros(self.context * self.d_out, self.context * self.d_in)
        for i, (start, end) in enumerate(self.spans):
            dense[start * self.d_out : end * self.d_out, : end * self.d_in] = self.masked_weight(i)
        return dense


@dataclass(frozen=True)
class LinearARConfig:
    vocab_size: int = param(117, Interval(2, None))
    context: int = param(77, Interval(1, None), help="T: the context length the causal map covers")
    d: int = param(64, Interval(1, None), help="embedding dimension")
    activation: Literal["none", "relu"] = param("none", help="none: the linear model; relu: the shallow MLP")
    groups: int = param(1, Interval(1, "context"), help="row groups of the causal map (1: the masked dense matrix)")


class LinearAR(nn.Module):
    """``forward(idx (B, L <= T), targets=None) -> (logits (B, L, V), loss or None)``."""

    def __init__(self, cfg: LinearARConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d)
        self.causal = CausalBlockLinear(cfg.context, cfg.d, cfg.d, groups=cfg.groups)
        self.hidden = nn.Linear(cfg.d, cfg.d) if cfg.activation == "relu" else None
        self.unembedding = nn.Linear(cfg.d, cfg.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        length = idx.shape[1]
        if length > self.cfg.context:
            raise ValueError(f"a sequence of {length} tokens exceeds the context T={self.cfg.context}")
        # Right-padding cannot reach earlier positions through the causal map.
        padded = F.pad(idx, (0, self.cfg.context - length))
        h = self.causal(self.embedding(padded))[:, :length]  # (B, L, d)
        if self.hidden is not None:
            h = F.relu(self.hidden(F.relu(h)))
        logits = self.unembedding(h)  # (B, L, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def effective_parameters(self) -> int:
        """Parameters that can be nonzero (the paper's count)."""
        others = sum(p.numel() for name, p in self.named_parameters() if not name.startswith("causal."))
        return self.causal.effective_parameters() + others

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue every row of ``prompt`` (B, L0) by ``max_new_tokens`` tokens, all rows at
        once: greedy at temperature 0, else sampled from softmax(logits / temperature).

        Each new token needs only its own row block of the causal map (the model has no
        state beyond the context), so a whole roll-out costs about one forward pass.
        """
        batch, length = prompt.shape
        if length + max_new_tokens - 1 > self.cfg.context:
            raise ValueError(f"{length} + {max_new_tokens} tokens exceed the context T={self.cfg.context}")
        d = self.cfg.d
        flat = prompt.new_zeros((batch, self.cfg.context * d), dtype=self.embedding.weight.dtype)
        flat[:, : length * d] = self.embedding(prompt).reshape(batch, length * d)
        tokens = [prompt]
        for t in range(length - 1, length - 1 + max_new_tokens):
            h = self.causal.position(flat, t)  # (B, d)
            if self.hidden is not None:
                h = F.relu(self.hidden(F.relu(h)))
            logits = self.unembedding(h)  # (B, V)
            if temperature == 0.0:
                token = logits.argmax(dim=-1, keepdim=True)
            else:
                token = torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=generator)
            tokens.append(token)
            if t + 1 < self.cfg.context:
                flat[:, (t + 1) * d : (t + 2) * d] = self.embedding(token[:, 0])
        return torch.cat(tokens, dim=1)
