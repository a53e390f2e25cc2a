"""The attention-only transformer of the ICL Markov-chain paper, as S stacked replicas.

Edelman, Edelman, Goel, Malach, Tsilivis (2024; arXiv 2402.11004), Section 4 and the
official code: two layers, attention only (MLP off), one head per layer (n-1 heads in
layer 1 for n-grams), d_model 16, a learned token embedding, no absolute positions, a
relative positional encoding per layer (score (q_i.k_j + q_i.r_{i-j}) / sqrt(d_head),
causal), pre-LayerNorm in each layer and a final LayerNorm, bias-free Q/K/V/O and
output head, dropout 0.1, init N(0, 0.02) and N(0, 0.01) for the output head.

Every parameter carries the replica index first, so S seeds train as one model with
batched matmuls; replica s starts from the weights a single model seeded ``seeds[s]``
would. ``forward(idx)`` takes (S, B, T) tokens and returns (S, B, T, k) logits.
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
from learnlab.models.hooks import HookPoint
from learnlab.models.layers import fast_dropout
from learnlab.runtime import generator

__all__ = ["ICLTransformerConfig", "ICLTransformer"]


def _normal(shape: tuple[int, ...], std: float, generators: Sequence[torch.Generator]) -> nn.Parameter:
    """One N(0, std^2) draw per replica from its own generator, stacked: (S, *shape)."""
    return nn.Parameter(torch.stack([torch.randn(shape, generator=g, device=g.device) * std for g in generators]))


class StackedLayerNorm(nn.Module):
    """LayerNorm over the last dimension with per-replica weight and bias (S, d)."""

    def __init__(self, n_replicas: int, d: int, device):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_replicas, d, device=device))
        self.bias = nn.Parameter(torch.zeros(n_replicas, d, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (S, B, T, d)
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return F.layer_norm(x, x.shape[-1:]) * self.weight.view(shape) + self.bias.view(shape)


class RelativeAttention(nn.Module):
    """Causal multi-head attention with a learned relative positional encoding r_{i-j}."""

    def __init__(self, cfg: ICLTransformerConfig, n_heads: int, generators, device):
        super().__init__()
        d, self.n_heads = cfg.d_model, n_heads
        self.d_head = d // n_heads
        self.dropout, self.rel_dropout = cfg.dropout, cfg.rel_dropout
        self.w_qkv = _normal((d, 3 * d), 0.02, generators)  # (S, d, 3d), bias-free
        self.w_out = _normal((d, d), 0.02, generators)  # (S, d, d)
        self.rel = _normal((n_heads, cfg.max_len, self.d_head), 0.02, generators)  # (S, nh, T_max, hs)
        self.hook_pattern = HookPoint()  # [S, B, head, query, key]

    def forward(self, x: torch.Tensor, last_query_only: bool = False, tokens: torch.Tensor | None = None,
                token_table: torch.Tensor | None = None) -> torch.Tensor:
        """x: (S, B, T, d) normalised inputs. Layer 1 may pass ``tokens`` (S, B, T, k) one-hot
        and ``token_table`` (S, k, d), the normalised embedding of each token, when x is a
        function of the token alone (no absolute positions): then queries, keys and values
        take only k values and the scores are built from k x k and k x T tables."""
        if tokens is not None:
            return self._forward_from_tokens(tokens, token_table)
        S, B, T, d = x.shape
        nh, hs = self.n_heads, self.d_head
        qkv = torch.bmm(x.reshape(S, B * T, d), self.w_qkv)  # (S, B*T, 3d)
        q, k, v = qkv.view(S, B, T, 3, nh, hs).permute(3, 0, 1, 4, 2, 5)  # each (S, B, nh, T, hs)
        if last_query_only:  # evaluation of the last position: one query row
            q = q[:, :, :, -1:]
        scores = q @ k.transpose(-2, -1)  # (S, B, nh, Tq, T): q_i . k_j
        scores = scores + self._relative_scores(q, T)  # + q_i . r_{i-j}
        return self._attend(scores, v, T, last_query_only)

    def _forward_from_tokens(self, tokens: torch.Tensor, token_table: torch.Tensor) -> torch.Tensor:
        S, B, T, k_vocab = tokens.shape
        nh, hs = self.n_heads, self.d_head
        qkv = torch.bmm(token_table, self.w_qkv)  # (S, k, 3d)
        q, k, v = qkv.view(S, k_vocab, 3, nh, hs).permute(2, 0, 3, 1, 4)  # each (S, nh, k, hs)
        q = q / math.sqrt(hs)  # scale the k x hs table, not the (T, T) scores
        one_hot = tokens.unsqueeze(2)  # (S, B, 1, T, k)
        query_rows = one_hot @ (q @ k.transpose(-2, -1)).unsqueeze(1)  # (S, B, nh, T, k): A[x_i, :]
        # scores = q_i . k_j + q_i . r_{i-j}, causal: one (T, T) pass for each term
        scores = torch.baddbmm(self._relative_scores_from_tokens(q, one_hot, T).reshape(-1, T, T),
                               query_rows.reshape(-1, T, k_vocab), one_hot.expand(S, B, nh, T, k_vocab)
                               .reshape(-1, T, k_vocab).transpose(1, 2)).view(S, B, nh, T, T)
        return self._attend(scores, None, T, False, scaled_and_masked=True, token_values=(one_hot, v))

    def _attend(self, scores: torch.Tensor, v: torch.Tensor | None, T: int, last_query_only: bool,
                scaled_and_masked: bool = False, token_values=None) -> torch.Tensor:
        S, B, nh = scores.shape[:3]
        d = nh * self.d_head
        if not scaled_and_masked:
            scores = scores / math.sqrt(self.d_head) + _causal_bias(T, last_query_only, scores.device)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))  # (S, B, nh, Tq, T)
        pattern = fast_dropout(pattern, self.dropout, self.training)
        if token_values is not None:  # v_j = v[x_j]: sum the pattern per token first (k << hs)
            one_hot, v_table = token_values  # (S, B, 1, T, k), (S, nh, k, hs)
            mixed = (pattern @ one_hot) @ v_table.unsqueeze(1)  # (S, B, nh, Tq, hs)
        else:
            mixed = pattern @ v  # (S, B, nh, Tq, hs)
        out = mixed.permute(0, 1, 3, 2, 4).reshape(S, -1, d)  # (S, B*Tq, d)
        out = torch.bmm(out, self.w_out).view(S, B, -1, d)  # (S, B, Tq, d)
        return fast_dropout(out, self.dropout, self.training)

    def _relative_scores_from_tokens(self, q: torch.Tensor, one_hot: torch.Tensor, T: int) -> torch.Tensor:
        """q_i . r_{i-j} when q_i = q[x_i] takes k values, with a large negative value for
        j > i (the causal mask): q (S, nh, k, hs) -> (S, B, nh, T, T)."""
        S, nh, k_vocab, hs = q.shape
        B = one_hot.shape[1]
        rel = self.rel[:, :, :T]  # (S, nh, T, hs)
        if self.training and self.dropout > 0 and self.rel_dropout == "gathered":
            offsets = torch.arange(T, device=q.device)[:, None] - torch.arange(T, device=q.device)
            gathered = fast_dropout(_toeplitz(rel), self.dropout, True)  # (S, nh, T, T, hs)
            per_token = torch.einsum("shad,shijd->shaij", q, gathered)  # (S, nh, k, T, T)
            per_token = per_token.masked_fill(offsets < 0, _MASKED)
            return torch.einsum("sbia,shaij->sbhij", one_hot.squeeze(2), per_token)
        if self.training and self.dropout > 0:
            rel = fast_dropout(rel, self.dropout, True)
        # Columns m = 0 .. 2T-2 stand for offsets i - j = T-1-m; negative offsets are masked.
        per_token = q @ rel.flip(2).transpose(-2, -1)  # (S, nh, k, T): offsets T-1 .. 0
        per_token = torch.cat([per_token, per_token.new_full((S, nh, k_vocab, T - 1), _MASKED)], dim=-1)
        table = (one_hot @ per_token.unsqueeze(1)).contiguous()  # (S, B, nh, T, 2T-1)
        # out[i, j] = table[i, j - i + T - 1]: a strided view, rows advancing 2T-2 elements.
        return table.as_strided((S, B, nh, T, T), (B * nh * T * (2 * T - 1), nh * T * (2 * T - 1),
                                                   T * (2 * T - 1), 2 * T - 2, 1), T - 1)


    def _relative_scores(self, q: torch.Tensor, T: int) -> torch.Tensor:
        """q_i . r_{i-j} for every query i and key j: (S, B, nh, Tq, T); anything for j > i."""
        S, B, nh, Tq, hs = q.shape
        rel = self.rel[:, :, :T]  # (S, nh, T, hs): r_0 .. r_{T-1}
        if self.training and self.dropout > 0 and self.rel_dropout == "gathered":
            # As the official code: dropout on the gathered (T, T, hs) tensor of r_{i-j}.
            gathered = fast_dropout(_toeplitz(rel), self.dropout, True)  # (S, nh, T, T, hs)
            return torch.einsum("sbhid,shijd->sbhij", q, gathered)
        if self.training and self.dropout > 0:  # "per_row": one mask per r_m, far cheaper
            rel = fast_dropout(rel, self.dropout, True)
        # table[i, m] = q_i . r_{T-1-m}; the relative shift of Transformer-XL (Dai et al.
        # 2019, appendix B) turns it into q_i . r_{i-j} with a pad and two views, no gather.
        table = q @ rel.flip(2).unsqueeze(1).transpose(-2, -1)  # (S, B, nh, Tq, T)
        if Tq == 1:  # the last query (i = T-1): table[T-1, m] = q . r_{T-1-m} = q . r_{i-j} at j = m
            return table
        return _relative_shift(table)


def _toeplitz(rel: torch.Tensor) -> torch.Tensor:
    """(S, nh, T, hs) r_0..r_{T-1}  ->  (S, nh, T, T, hs) with [i, j] = r_{i-j} (zero for j > i).

    A strided view of [r_{T-1}, ..., r_0, 0, ..., 0]: row i starts T-1-i entries in, so
    its backward is a sum over views, not the scatter an index would need.
    """
    S, nh, T, hs = rel.shape
    padded = torch.cat([rel.flip(2), rel.new_zeros(S, nh, T - 1, hs)], dim=2).contiguous()  # (S, nh, 2T-1, hs)
    # window i covers padded[T-1-i : 2T-1-i]; element j of it is r_{T-1-(T-1-i+j)} = r_{i-j}
    windows = padded.unfold(2, T, 1)  # (S, nh, T, hs, T): window w = padded[w : w + T]
    return windows.flip(2).permute(0, 1, 2, 4, 3)  # row i = window T-1-i


def _relative_shift(table: torch.Tensor) -> torch.Tensor:
    """(.., T, T) with table[i, m] = q_i . r_{T-1-m}  ->  out[i, j] = q_i . r_{i-j} for j <= i."""
    *lead, T, _ = table.shape
    padded = torch.cat([table.new_zeros(*lead, T, 1), table], dim=-1)  # (.., T, T+1)
    return padded.view(*lead, T + 1, T)[..., 1:, :].reshape(*lead, T, T)


_MASKED = -1e30  # finite, so that 0 * mask = 0 inside the one-hot matmuls; exp() of it is 0


def _causal_bias(T: int, last_query_only: bool, device) -> torch.Tensor:
    """0 where key j <= query i, -inf after: (Tq, T)."""
    bias = torch.full((T, T), float("-inf"), device=device).triu(1)
    return bias[-1:] if last_query_only else bias


class MLP(nn.Module):
    def __init__(self, cfg: ICLTransformerConfig, generators, device):
        super().__init__()
        self.w_in = _normal((cfg.d_model, 4 * cfg.d_model), 0.02, generators)  # (S, d, 4d)
        self.w_out = _normal((4 * cfg.d_model, cfg.d_model), 0.02, generators)  # (S, 4d, d)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S, B, T, d = x.shape
        h = F.gelu(torch.bmm(x.reshape(S, B * T, d), self.w_in))  # (S, B*T, 4d)
        return fast_dropout(torch.bmm(h, self.w_out).view(S, B, T, d), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, cfg: ICLTransformerConfig, n_heads: int, generators, device):
        super().__init__()
        n_replicas = len(generators)
        self.ln_attn = StackedLayerNorm(n_replicas, cfg.d_model, device)
        self.attn = RelativeAttention(cfg, n_heads, generators, device)
        self.ln_mlp = StackedLayerNorm(n_replicas, cfg.d_model, device) if cfg.mlp else None
        self.mlp = MLP(cfg, generators, device) if cfg.mlp else None

    def forward(self, x: torch.Tensor, last_query_only: bool = False, tokens: torch.Tensor | None = None,
                embedding: torch.Tensor | None = None) -> torch.Tensor:
        if tokens is not None:  # the first layer: its input is the token embedding alone
            attended = self.attn(x, tokens=tokens, token_table=self.ln_attn(embedding.unsqueeze(1)).squeeze(1))
        else:
            attended = self.attn(self.ln_attn(x), last_query_only)
        x = (x[:, :, -1:] if last_query_only else x) + attended
        if self.mlp is not None:
            x = x + self.mlp(self.ln_mlp(x))
        return x


@dataclass(frozen=True)
class ICLTransformerConfig:
    n_layers: int = param(2, Interval(1, 12), help="2 in the paper; 1 is the one-layer control")
    heads: tuple[int, ...] = param((1, 1), Interval(1, 64), help="heads per layer (n-1 in layer 1 for n-grams)")
    d_model: int = param(16, Interval(1, 4096))
    max_len: int = param(100, Interval(1, None), help="longest sequence (relative offsets 0..max_len-1)")
    mlp: bool = param(False, help="the paper's model is attention-only")
    dropout: float = param(0.1, Interval(0.0, 1.0, closed="left"))
    rel_dropout: Literal["gathered", "per_row"] = param("gathered",
                                                        help="dropout on the gathered T x T x d_head tensor, or on r")

    def check(self) -> str | None:
        if len(self.heads) != self.n_layers:
            return f"'heads' needs one entry per layer ({self.n_layers}); got {self.heads}"
        if any(self.d_model % h for h in self.heads):
            return f"d_model={self.d_model} must be divisible by every entry of heads={self.heads}"
        return None


class ICLTransformer(nn.Module):
    """S stacked attention-only transformers over a vocabulary of k tokens."""

    def __init__(self, vocab_size: int, cfg: ICLTransformerConfig, seeds: Sequence[int], device="cpu"):
        super().__init__()
        self.cfg, self.vocab_size, self.n_replicas = cfg, vocab_size, len(seeds)
        generators = [generator(seed, device) for seed in seeds]
        self.wte = _normal((vocab_size, cfg.d_model), 0.02, generators)  # (S, k, d)
        self.layers = nn.ModuleList(Block(cfg, cfg.heads[i], generators, device) for i in range(cfg.n_layers))
        self.ln_final = StackedLayerNorm(len(seeds), cfg.d_model, device)
        self.head = _normal((cfg.d_model, vocab_size), 0.01, generators)  # (S, d, k), bias-free
        self.token_tables = True  # False: compute layer 1 like any other layer (for tests)

    def forward(self, idx: torch.Tensor, last_position_only: bool = False) -> torch.Tensor:
        """Logits (S, B, T, k) for tokens (S, B, T); (S, B, 1, k) with ``last_position_only``,
        which computes the last layer for the last query alone (evaluation)."""
        S, B, T = idx.shape
        if T > self.cfg.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.cfg.max_len}")
        # A one-hot matmul, not an index: its backward is a matmul, not a scatter.
        one_hot = F.one_hot(idx.reshape(S, B * T), self.vocab_size).to(self.wte.dtype)  # (S, B*T, k)
        x = torch.bmm(one_hot, self.wte).view(S, B, T, self.cfg.d_model)  # (S, B, T, d)
        one_hot = one_hot.view(S, B, T, self.vocab_size)
        for i, layer in enumerate(self.layers):
            last = last_position_only and i == len(self.layers) - 1
            # Layer 1 sees only token embeddings: it runs on k x k and k x T tables (exact, cheaper).
            x = layer(x, last, tokens=one_hot if i == 0 and self.token_tables and not last else None,
                      embedding=self.wte)
        x = self.ln_final(x)
        return torch.bmm(x.reshape(S, -1, self.cfg.d_model), self.head).view(S, B, -1, self.vocab_size)

    def decay_parameters(self) -> list[nn.Parameter]:
        """The weight matrices, embeddings and relative encodings included (nanoGPT's rule:
        every parameter of two or more dimensions per replica); not the LayerNorms."""
        return [p for p in self.parameters() if p.dim() >= 3]

    def n_parameters(self) -> int:
        """Parameters of one replica."""
        return sum(p[0].numel() for p in self.parameters())
