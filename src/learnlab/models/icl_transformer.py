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

How it is fast. On a CPU (float32) the attention of every layer is a small compiled kernel
(``models._icl_kernel``): one (T, T) attention per (replica, sequence, head) with its rows in
L1, scores, softmax, dropout and the product with the values in one pass, its keep flags
stored as bits for the backward; LayerNorm and the residual dropout are fused too. The
module's own PyTorch path (below) is the fallback where no C compiler is found, on a GPU,
and in float64. Both compute the same numbers from the same masks:

- dropout masks are a keyed hash of each element's index (``_icl_kernel.keep_bits``), one
  64-bit key drawn from the global torch generator per forward and a key per site (layer x
  {relative table, attention pattern, residual, MLP}); element e of a site is dropped with
  probability round(p 2^16) / 2^16, the gathered relative table's mask indexed in the
  official (S, nh, T, T, d_head) order and the pattern's in the hook's (S, B, nh, T, T) order;
- layer 1 sees token embeddings only, so its scores are rows of a (k, T, T) table picked by
  the current token plus a k x k term, and its output is the pattern's mass on each token
  times k values;
- the fallback lays attention tensors out (B, R, T, T) with R = S x heads, so that q . k_j
  and q_i . r_{i-j} write one buffer in place, the causal mask riding along as an extra
  column of that matmul (``_Attention``), with softmax, dropout and the product with the
  values in one autograd node with a hand-written backward, and reused buffers;
- in training on the compiled path (no hooks, no MLP) the whole forward is one autograd node
  (``_KernelModel``): the kernel Functions' own forward and backward code called in turn, the
  matmuls' gradients by autograd's formulas, so the numbers of the module-by-module graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param
from learnlab.models import _icl_kernel as kernel
from learnlab.models.hooks import HookPoint
from learnlab.runtime import generator

__all__ = ["ICLTransformerConfig", "ICLTransformer"]

_MASKED = -1e30  # finite, so that 0 * mask = 0 inside the one-hot matmuls; exp() of it is 0


def _normal(shape: tuple[int, ...], std: float, generators: Sequence[torch.Generator]) -> nn.Parameter:
    """One N(0, std^2) draw per replica from its own generator, stacked: (S, *shape)."""
    return nn.Parameter(torch.stack([torch.randn(shape, generator=g, device=g.device) * std for g in generators]))


class _Workspace:
    """Reusable buffers for one attention layer's (B, R, T, T) tensors.

    A fresh multi-megabyte tensor per op costs a page fault per 4 kB page whenever the C
    allocator has handed the memory back to the system between steps (glibc does, for
    blocks this large): thousands of faults, a fifth of a 1-seed CPU step. A buffer is
    handed out again only when nothing else holds it or a view of it (``_use_count() ==
    1``): tensors saved by a graph not yet backpropagated, or captured by a hook, stay.
    """

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}
        self.pattern: torch.Tensor | None = None  # the last attention pattern, for the hook

    def get(self, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device,
            zeroed: bool = False) -> torch.Tensor:
        """A buffer of ``shape``; with ``zeroed``, all zeros when (re)allocated (the caller
        keeps the rest of it zero)."""
        buffer = self._buffers.get(name)
        if (buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype or buffer.device != device
                or buffer._use_count() != 1):
            buffer = self._buffers[name] = (torch.zeros if zeroed else torch.empty)(shape, dtype=dtype, device=device)
        return buffer


# Dropout sites of a layer: each gets its own key within a forward (see ``_icl_kernel.site_key``).
_TABLE, _PATTERN, _RESIDUAL, _MLP = range(4)


def _site_keys(key: int | None, layer: int) -> list[int]:
    return [0] * 4 if key is None else [kernel.site_key(key, 4 * layer + site) for site in range(4)]


def _keep01(shape: Sequence[int], p: float, key: int, like: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A 0/1 keep mask of ``shape`` (element e kept where keep_bits(key, e) >= round(p 2^16)) and
    the inverted-dropout scale: the masks of the kernel, in torch ops (the fallback path)."""
    level, scale = kernel.drop_scale(p)
    bits = kernel.keep_bits(key, torch.arange(math.prod(shape), device=like.device)).view(*shape)
    return (bits >= level).to(like.dtype), scale


def _dropout(x: torch.Tensor, p: float, key: int | None) -> torch.Tensor:
    """Inverted dropout of x with the masks of site ``key`` (None: off)."""
    if key is None or p == 0.0:
        return x
    if kernel.available(x):
        return kernel.Dropout.apply(x, p, key)  # the mask regenerated in the backward, not stored
    return x * kernel.keep_mask(x.shape, p, key, x.device, x.dtype)


def _residual_dropout(residual: torch.Tensor | None, x: torch.Tensor, p: float, key: int | None) -> torch.Tensor:
    """residual + inverted dropout of x (site ``key``; None: off), or the dropout alone without a residual;
    in one kernel pass where it takes the tensors (the same masks)."""
    if residual is None:
        return _dropout(x, p, key)
    if key is not None and p > 0.0 and residual.shape == x.shape and kernel.available(residual, x):
        return kernel.DropoutAdd.apply(residual, x, p, key)
    return residual + _dropout(x, p, key)


def _mix_forward(scores: torch.Tensor, values: torch.Tensor, keep: torch.Tensor | None, scale: float,
                 workspace: _Workspace, hooked: bool):
    """pattern = softmax(scores), kept = pattern * keep (dropped entries zeroed, unscaled) and
    out = kept @ values * scale, for scores (N, Tq, T) and values (N, T, e). ``keep`` may be
    any view the (N, Tq, T) pattern reshapes to (the masks are drawn in the (S, B, ...) order).
    The pattern goes to ``workspace.pattern``: a fresh tensor when ``hooked`` (a hook may keep
    it; ``capture`` detaches, which hides it from the buffer's use count), else a buffer."""
    pattern = torch.softmax(scores, -1) if hooked else \
        torch._softmax(scores, -1, False, out=workspace.get("pattern", scores.shape, scores.dtype, scores.device))
    workspace.pattern = pattern
    kept = pattern
    if keep is not None:
        kept = workspace.get("kept", scores.shape, scores.dtype, scores.device)
        torch.mul(pattern.view(keep.shape), keep, out=kept.view(keep.shape))
    out = torch.bmm(kept, values)  # (N, Tq, e)
    if scale != 1.0:
        out.mul_(scale)
    return pattern, kept, out


def _mix_backward(grad_out: torch.Tensor, pattern: torch.Tensor, kept: torch.Tensor, values: torch.Tensor,
                  scale: float, workspace: _Workspace, need_values: bool):
    """d scores (a workspace buffer) and d values of ``_mix_forward``: with g = d out @ values^T
    * scale, d scores = kept * g - pattern * sum_j(kept * g) (the softmax backward, written
    for the dropped-out product; dropped and masked entries get exactly 0)."""
    if scale != 1.0:
        grad_out = grad_out * scale
    grad_values = torch.bmm(kept.transpose(1, 2), grad_out) if need_values else None
    grad = torch.bmm(grad_out, values.transpose(1, 2), out=workspace.get("grad", pattern.shape, pattern.dtype,
                                                                           pattern.device))  # d loss / d kept
    grad.mul_(kept)  # = pattern * d loss / d pattern
    grad.addcmul_(pattern, grad.sum(dim=-1, keepdim=True), value=-1.0)
    return grad, grad_values


@lru_cache(maxsize=16)
def _causal_column(T: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, T, 1): 0 where key j <= query i, _MASKED after."""
    return torch.full((T, T), _MASKED, device=device, dtype=dtype).triu(1).unsqueeze(-1)


class _Attention(torch.autograd.Function):
    """Causal attention with the gathered relative encoding, one autograd node:
    out = dropout(softmax(q_i . (k_j + r_{i-j}))) @ v, and the softmax (for hooks).

    q, k, v (B, R, T, hs), q already divided by sqrt(hs); ``table`` (R, T, T, hs) with
    table[r, i, j] = r_{i-j} (after its dropout, zero for j > i). Two matmuls write one
    (B, R, T, T) buffer: q_i . r_{i-j} batched over (r, i), with a ones column on q
    meeting the causal mask as a column of the table, then q_i . k_j added in place,
    batched over (b, r). Returns out (B*R, T, hs); the pattern (B*R, T, T) is left in
    ``workspace.pattern`` for the hook (not an output: saved as an input, it keeps its use count).
    """

    @staticmethod
    def forward(ctx, q, k, v, table, keep, scale: float, workspace: _Workspace, hooked: bool):
        B, R, T, hs = q.shape
        q_aug = torch.cat([q, q.new_ones(B, R, T, 1)], dim=-1)  # (B, R, T, hs+1)
        table_aug = torch.cat([table, _causal_column(T, q.device, q.dtype).expand(R, T, T, 1)], dim=-1)
        scores = workspace.get("scores", (B, R, T, T), q.dtype, q.device)
        torch.bmm(q_aug.view(B, R * T, hs + 1).transpose(0, 1),  # (R*T, B, hs+1)
                  table_aug.view(R * T, T, hs + 1).transpose(1, 2),  # (R*T, hs+1, T)
                  out=scores.view(B, R * T, T).transpose(0, 1))  # (R*T, B, T), a view of scores
        scores = scores.view(B * R, T, T).baddbmm_(q.view(B * R, T, hs), k.view(B * R, T, hs).transpose(1, 2))
        pattern, kept, out = _mix_forward(scores, v.view(B * R, T, hs), keep, scale, workspace, hooked)
        ctx.save_for_backward(q, k, v, table, pattern, kept)
        ctx.scale, ctx.workspace = scale, workspace
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, table, pattern, kept = ctx.saved_tensors
        B, R, T, hs = q.shape
        grad, grad_v = _mix_backward(grad_out, pattern, kept, v.view(B * R, T, hs), ctx.scale, ctx.workspace,
                                     ctx.needs_input_grad[2])
        grad_q = torch.bmm(grad, k.view(B * R, T, hs)).view(B, R, T, hs)  # sum_j g_ij k_j
        grad_k = torch.bmm(grad.transpose(1, 2), q.view(B * R, T, hs)).view(B, R, T, hs)  # sum_i g_ij q_i
        # The (r, i)-batched terms read the gradient as (R*T, B, T): one transposed copy, then batched matmuls.
        by_row = ctx.workspace.get("grad_by_row", (R, T, B, T), grad.dtype, grad.device)
        by_row.copy_(grad.view(B, R, T, T).permute(1, 2, 0, 3))
        by_row = by_row.view(R * T, B, T)
        grad_q += torch.bmm(by_row, table.reshape(R * T, T, hs)).view(R, T, B, hs).permute(2, 0, 1, 3)  # g . r_{i-j}
        q_by_row = q.permute(1, 2, 0, 3).reshape(R * T, B, hs)
        grad_table = torch.bmm(by_row.transpose(1, 2), q_by_row).view(R, T, T, hs)  # sum_b g_ij q_i
        return grad_q, grad_k, None if grad_v is None else grad_v.view(B, R, T, hs), grad_table, None, None, None, None


class _TokenAttention(torch.autograd.Function):
    """Layer 1's attention when its input is the token embedding alone (k tokens), one node.

    scores[b, r, i, j] = rows[(r, i, x_i), j] + pairs[(r, x_i), x_j]: ``rows`` (R*T*k, T)
    holds q[a] . r_{i-j} (with the causal mask) for every token a, ``pairs`` (R*k, k) holds
    q[a] . k[c]. The values v[x_j] take k values, so the pattern is summed per token:
    out = dropout(softmax(scores)) @ one_hot (B*R, T, k), the pattern in ``workspace.pattern``.
    ``row_index`` and ``pair_index``
    (B*R*T,) pick each query's row; ``one_hot`` (B*R, T, k) are the tokens.
    """

    @staticmethod
    def forward(ctx, rows, pairs, row_index, pair_index, one_hot, keep, scale: float, workspace: _Workspace,
                hooked: bool):
        BR, T, k = one_hot.shape
        scores = workspace.get("scores", (BR * T, T), rows.dtype, rows.device)
        torch.index_select(rows, 0, row_index, out=scores)  # q[x_i] . r_{i-j}
        query_rows = pairs.index_select(0, pair_index).view(BR, T, k)  # q[x_i] . k[c]
        scores = scores.view(BR, T, T).baddbmm_(query_rows, one_hot.transpose(1, 2))  # + q[x_i] . k[x_j]
        pattern, kept, out = _mix_forward(scores, one_hot, keep, scale, workspace, hooked)
        ctx.save_for_backward(row_index, pair_index, one_hot, pattern, kept)
        ctx.scale, ctx.workspace, ctx.n_rows = scale, workspace, rows.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        row_index, pair_index, one_hot, pattern, kept = ctx.saved_tensors
        BR, T, k = one_hot.shape
        grad, _ = _mix_backward(grad_out, pattern, kept, one_hot, ctx.scale, ctx.workspace, False)  # (BR, T, T)
        grad_pairs = None
        if ctx.needs_input_grad[1]:
            grad_query_rows = torch.bmm(grad, one_hot).view(BR * T, k)  # sum over keys of each token
            grad_pairs = grad_query_rows.new_zeros(k * (ctx.n_rows // (T * k)), k).index_add_(0, pair_index,
                                                                                             grad_query_rows)
        grad_rows = None
        if ctx.needs_input_grad[0]:  # row (r, i, a) collects the gradient of the queries with x_i = a
            n_rows = ctx.n_rows
            R = n_rows // (T * k)
            B = BR // R
            by_row = ctx.workspace.get("grad_by_row", (R, T, B, T), grad.dtype, grad.device)
            by_row.copy_(grad.view(B, R, T, T).permute(1, 2, 0, 3))
            tokens_by_row = one_hot.view(B, R, T, k).permute(1, 2, 3, 0).reshape(R * T, k, B)
            grad_rows = torch.bmm(tokens_by_row, by_row.view(R * T, B, T)).view(n_rows, T)
        return grad_rows, grad_pairs, None, None, None, None, None, None, None


class _TokenTables(torch.autograd.Function):
    """Layer 1's per-token tables from the normalised token embedding ``table`` (S, k, d), one node (a
    dozen small ops and their autograd nodes before): q (S nh, k, hs) scaled by 1 / sqrt(hs), pairs
    q[a] . k[c] (S nh, k, k) and values (S, nh k, d), v[a] of head h through its block of ``w_out``.
    The backward is autograd's formulas for the same ops (the same products, the same numbers)."""

    @staticmethod
    def forward(ctx, table, w_qkv, w_out, nh: int):
        S, k, d = table.shape
        hs = d // nh
        qkv = torch.bmm(table, w_qkv)  # (S, k, 3d)
        q, key_, v = qkv.view(S, k, 3, nh, hs).permute(2, 0, 3, 1, 4).unbind(0)  # each (S, nh, k, hs)
        scale = 1.0 / math.sqrt(hs)
        q = q.reshape(S * nh, k, hs) * scale
        key_ = key_.reshape(S * nh, k, hs)
        v = v.reshape(S * nh, k, hs)
        pairs = torch.bmm(q, key_.transpose(1, 2))
        blocks = w_out.view(S * nh, hs, d)  # head h's rows of the output projection
        values = torch.bmm(v, blocks).view(S, nh * k, d)
        ctx.save_for_backward(table, w_qkv, blocks, q, key_, v)
        ctx.nh, ctx.scale = nh, scale
        return q, pairs, values

    @staticmethod
    def backward(ctx, grad_q, grad_pairs, grad_values):
        table, w_qkv, blocks, q, key_, v = ctx.saved_tensors
        S, k, d = table.shape
        nh, R = ctx.nh, q.shape[0]
        hs = d // nh
        grad_key = torch.zeros_like(key_) if grad_pairs is None else \
            q.transpose(1, 2).bmm(grad_pairs).transpose(1, 2)
        if grad_pairs is not None:
            from_pairs = grad_pairs.bmm(key_)
            grad_q = from_pairs if grad_q is None else grad_q + from_pairs
        grad_q = torch.zeros_like(q) if grad_q is None else grad_q * ctx.scale
        if grad_values is None:
            grad_v, grad_w_out = torch.zeros_like(v), torch.zeros_like(blocks)
        else:
            grad_values = grad_values.view(R, k, d)
            grad_v, grad_w_out = grad_values.bmm(blocks.transpose(1, 2)), v.transpose(1, 2).bmm(grad_values)
        grad_qkv = torch.stack([g.view(S, nh, k, hs) for g in (grad_q, grad_key, grad_v)])  # (3, S, nh, k, hs)
        grad_qkv = grad_qkv.permute(1, 3, 0, 2, 4).reshape(S, k, 3 * d)
        grad_table = grad_qkv.bmm(w_qkv.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_w_qkv = table.transpose(1, 2).bmm(grad_qkv)
        return grad_table, grad_w_qkv, grad_w_out.view(S, d, d), None


class StackedLayerNorm(nn.Module):
    """LayerNorm over the last dimension with per-replica weight and bias (S, d)."""

    def __init__(self, n_replicas: int, d: int, device):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_replicas, d, device=device))
        self.bias = nn.Parameter(torch.zeros(n_replicas, d, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (S, B, T, d)
        if kernel.available(x, self.weight):
            return kernel.LayerNorm.apply(x, self.weight, self.bias)
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return F.layer_norm(x, x.shape[-1:]) * self.weight.view(shape) + self.bias.view(shape)


class _Toeplitz(torch.autograd.Function):
    """(R, T, hs) r_0..r_{T-1}  ->  (R, T, T, hs) with [i, j] = r_{i-j}, zero for j > i.

    Forward: one gather from [r_{T-1}, ..., r_0, 0, ..., 0]. Backward: each diagonal's sum,
    by writing row i of the gradient T-1-i places into a zero row of length 2T-1 and
    summing the rows (no scatter).
    """

    @staticmethod
    def forward(ctx, rel, workspace: _Workspace | None = None):
        R, T, hs = rel.shape
        ctx.workspace = workspace
        padded = torch.cat([rel.flip(1), rel.new_zeros(R, T - 1, hs)], dim=1)  # (R, 2T-1, hs)
        return padded.index_select(1, _toeplitz_index(T, rel.device)).view(R, T, T, hs)

    @staticmethod
    def backward(ctx, grad):
        R, T, _, hs = grad.shape
        # The copy below writes the same entries every step, so a reused buffer stays zero
        # elsewhere: zero it once (a fresh one costs a page fault per 4 kB page and a fill).
        skewed = grad.new_zeros(R, T, 2 * T - 1, hs) if ctx.workspace is None else \
            ctx.workspace.get("toeplitz_skewed", (R, T, 2 * T - 1, hs), grad.dtype, grad.device, zeroed=True)
        # skewed[r, i, j - i + T - 1] = grad[r, i, j]: a strided view, every stride positive
        skewed.as_strided((R, T, T, hs), (T * (2 * T - 1) * hs, (2 * T - 2) * hs, hs, 1), (T - 1) * hs).copy_(grad)
        return skewed.sum(dim=1)[:, :T].flip(1), None  # column T-1-m holds the sum over i - j = m


@lru_cache(maxsize=16)
def _toeplitz_index(T: int, device: torch.device) -> torch.Tensor:
    """(T*T,) positions j - i + T - 1 into [r_{T-1}, ..., r_0, 0, ..., 0]."""
    positions = torch.arange(T, device=device)
    return (positions[None, :] - positions[:, None] + T - 1).reshape(-1)


class RelativeAttention(nn.Module):
    """Causal multi-head attention with a learned relative positional encoding r_{i-j}."""

    def __init__(self, cfg: ICLTransformerConfig, n_heads: int, generators, device, layer: int = 0):
        super().__init__()
        d, self.n_heads = cfg.d_model, n_heads
        self.d_head = d // n_heads
        self.dropout, self.rel_dropout, self.layer = cfg.dropout, cfg.rel_dropout, layer
        self.w_qkv = _normal((d, 3 * d), 0.02, generators)  # (S, d, 3d), bias-free
        self.w_out = _normal((d, d), 0.02, generators)  # (S, d, d)
        self.rel = _normal((n_heads, cfg.max_len, self.d_head), 0.02, generators)  # (S, nh, T_max, hs)
        self.hook_pattern = HookPoint()  # [S, B, head, query, key]
        self._workspace = _Workspace()  # reusable (B, R, T, T) buffers; not state

    def forward(self, x: torch.Tensor | None, last_query_only: bool = False, tokens: torch.Tensor | None = None,
                token_table: torch.Tensor | None = None, key: int | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """x: (S, B, T, d) normalised inputs; returns (S, B, Tq, d), Tq = 1 with ``last_query_only``;
        with ``residual`` (S, B, Tq, d), residual + the output (the add fused with the residual dropout).

        Layer 1 may pass ``tokens`` (S, B, T) token ids and ``token_table`` (S, k, d), the
        normalised embedding of each token, when x is a function of the token alone (no
        absolute positions): then queries, keys and values take only k values, and the
        scores are rows of a k x T x T table plus a k x k term. ``key``: the forward's dropout
        key (None: no dropout)."""
        keys = _site_keys(key if self.training and self.dropout > 0 else None, self.layer)
        dropping = self.training and self.dropout > 0
        if last_query_only:
            mixed = self._forward_last_query(x, keys if dropping else None)
            return _residual_dropout(residual, mixed, self.dropout, keys[_RESIDUAL] if dropping else None)
        like = self.w_qkv if tokens is not None else x
        if kernel.available(like, self.w_qkv):
            mixed = self._kernel_forward(x, tokens, token_table, keys, dropping)
        elif tokens is not None:
            mixed = self._forward_from_tokens(tokens, token_table, keys, dropping)
        else:
            mixed = self._forward_plain(x, keys, dropping)
        return _residual_dropout(residual, mixed, self.dropout, keys[_RESIDUAL] if dropping else None)

    def _kernel_forward(self, x, tokens, token_table, keys: list[int], dropping: bool) -> torch.Tensor:
        """The compiled path: (S, B, T, d) output before the residual dropout."""
        nh, hs = self.n_heads, self.d_head
        S, B, T = tokens.shape if tokens is not None else x.shape[:3]
        d = nh * hs
        table = self._kernel_table(T, keys, dropping)  # (S nh, T, hs, Tp)
        p = self.dropout if dropping else 0.0
        hooked = self._hooked()
        patterns = [] if hooked else None
        # the pattern: a fresh tensor when a hook may keep it, else a reused buffer when the backward needs it
        buffer = None if hooked or not torch.is_grad_enabled() else \
            self._workspace.get("kernel_pattern", (S, B, nh, T, T), table.dtype, table.device)
        if tokens is not None:
            k = token_table.shape[1]
            # each token's query (S nh, k, hs), q[a] . k[c] (S nh, k, k), each head's value of each token
            # through its block of the output projection (S, nh k, d): one autograd node
            q, pairs, values = _TokenTables.apply(token_table, self.w_qkv, self.w_out, nh)
            rows = kernel.TokenRows.apply(q, table)  # (S nh, T, k, Tp): q[a] . r_{i-j}
            mass = kernel.TokenAttention.apply(rows, pairs, tokens, nh, p, keys[_PATTERN], patterns, buffer)
            out = torch.bmm(mass.view(S, B * T, nh * k), values)
        else:
            qkv = torch.bmm(x.reshape(S, B * T, d), self.w_qkv).view(S, B, T, 3 * d)
            mixed = kernel.Attention.apply(qkv, table, nh, p, keys[_PATTERN], patterns, buffer)  # (S, B, T, d)
            out = torch.bmm(mixed.view(S, B * T, d), self.w_out)
        if hooked:
            self.hook_pattern(patterns[0])
        return out.view(S, B, T, d)

    def _kernel_table(self, T: int, keys: list[int], dropping: bool) -> torch.Tensor:
        """(S nh, T, hs, Tp): r_{i-j} (0 for j > i), with the relative dropout of ``_gathered_table``."""
        rel = self.rel
        if dropping and self.rel_dropout == "per_row":
            rel = _dropout(rel[:, :, :T], self.dropout, keys[_TABLE])
        gathered = dropping and self.rel_dropout == "gathered"
        return kernel.Table.apply(rel, T, self.dropout if gathered else 0.0, keys[_TABLE])

    def _forward_plain(self, x: torch.Tensor, keys: list[int], dropping: bool) -> torch.Tensor:
        S, B, T, d = x.shape
        nh, hs = self.n_heads, self.d_head
        R = S * nh  # attention runs on (B, R, ...) tensors: batch first, replica-heads second
        qkv = torch.bmm(x.reshape(S, B * T, d), self.w_qkv)  # (S, B*T, 3d)
        q, k, v = qkv.view(S, B, T, 3, nh, hs).permute(3, 1, 0, 4, 2, 5).contiguous().view(3, B, R, T, hs)  # (B, R, T, hs)
        q = q * (1.0 / math.sqrt(hs))
        table = self._gathered_table(T, keys, dropping)  # (R, T, T, hs): r_{i-j}
        keep, scale = self._pattern_keep(S, B, T, q, keys, dropping)
        mixed = _Attention.apply(q, k, v, table, keep, scale, self._workspace, self._hooked())  # (B*R, T, hs)
        self.hook_pattern(self._workspace.pattern.view(B, S, nh, T, T).transpose(0, 1))
        return self._project(mixed.view(B, R, T, hs), S)

    def _forward_last_query(self, x: torch.Tensor, keys: list[int] | None) -> torch.Tensor:
        """The last query (i = T-1) alone, for evaluation: it sees every key, so no mask, and
        only the keys and values are needed at every position. x (S, B, T, d) -> (S, B, 1, d)."""
        S, B, T, d = x.shape
        nh, hs = self.n_heads, self.d_head
        kv = torch.bmm(x.reshape(S, B * T, d), self.w_qkv[:, :, d:]).view(S, B, T, 2, nh, hs)  # keys and values
        q = torch.bmm(x[:, :, -1], self.w_qkv[:, :, :d]).view(S, B, nh, hs) * (1.0 / math.sqrt(hs))  # (S, B, nh, hs)
        relative = self._gathered_table(T, keys, keys is not None)[:, -1].view(S, nh, T, hs)  # r_{T-1-j}
        scores = torch.einsum("sbhd,sbthd->sbht", q, kv[:, :, :, 0]) + torch.einsum("sbhd,shtd->sbht", q, relative)
        pattern = torch.softmax(scores, dim=-1).unsqueeze(3)  # (S, B, nh, 1, T)
        self.hook_pattern(pattern)  # [S, B, head, query, key]
        if keys is not None:
            pattern = _dropout(pattern, self.dropout, keys[_PATTERN])
        mixed = torch.einsum("sbht,sbthd->sbhd", pattern.squeeze(3), kv[:, :, :, 1]).reshape(S, B, d)
        return torch.bmm(mixed, self.w_out).view(S, B, 1, d)  # the caller applies the residual dropout

    def _forward_from_tokens(self, tokens: torch.Tensor, token_table: torch.Tensor, keys: list[int],
                             dropping: bool) -> torch.Tensor:
        S, B, T = tokens.shape
        k_vocab = token_table.shape[1]
        nh, hs = self.n_heads, self.d_head
        R = S * nh
        qkv = torch.bmm(token_table, self.w_qkv)  # (S, k, 3d)
        q, k, v = qkv.view(S, k_vocab, 3, nh, hs).permute(2, 0, 3, 1, 4).reshape(3, R, k_vocab, hs)  # each (R, k, hs)
        q = q * (1.0 / math.sqrt(hs))  # scale the k x hs table, not the (T, T) scores
        table = self._gathered_table(T, keys, dropping)  # (R, T, T, hs)
        # q[a] . r_{i-j} for every token a, with the causal mask as an extra column: (R, T, T, k)
        q_aug = torch.cat([q, q.new_ones(R, k_vocab, 1)], dim=-1)  # (R, k, hs+1)
        table_aug = torch.cat([table, _causal_column(T, q.device, q.dtype).expand(R, T, T, 1)], dim=-1)
        per_token = torch.bmm(table_aug.view(R, T * T, hs + 1), q_aug.transpose(1, 2))  # (R, T*T, k)
        rows = per_token.view(R, T, T, k_vocab).transpose(2, 3).reshape(R * T * k_vocab, T)  # row (r, i, a)
        pairs = (q @ k.transpose(1, 2)).reshape(R * k_vocab, k_vocab)  # row (r, a): q[a] . k[c]
        ids = tokens.transpose(0, 1).unsqueeze(2).expand(B, S, nh, T).reshape(B, R, T).contiguous()  # (B, R, T)
        replica = torch.arange(R, device=ids.device)[:, None]  # (R, 1)
        row_index = ((replica * T + torch.arange(T, device=ids.device)) * k_vocab + ids).view(-1)  # (B*R*T,)
        pair_index = (replica * k_vocab + ids).view(-1)
        one_hot = F.one_hot(ids, k_vocab).to(q.dtype).view(B * R, T, k_vocab)
        keep, scale = self._pattern_keep(S, B, T, q, keys, dropping)
        per_value = _TokenAttention.apply(rows, pairs, row_index, pair_index, one_hot, keep, scale, self._workspace,
                                          self._hooked())
        self.hook_pattern(self._workspace.pattern.view(B, S, nh, T, T).transpose(0, 1))
        # v_j = v[x_j]: the pattern was summed per token first (k << hs)
        return self._project(per_value.view(B, R, T, k_vocab) @ v, S)  # (B, R, T, hs) -> (S, B, T, d)

    def _hooked(self) -> bool:
        """Whether a hook may keep the pattern (then it must not be a reused buffer)."""
        return bool(self.hook_pattern._forward_hooks or self.hook_pattern._forward_pre_hooks
                    or nn.modules.module._global_forward_hooks)

    def _pattern_keep(self, S: int, B: int, T: int, like: torch.Tensor, keys: list[int], dropping: bool):
        """The attention dropout's 0/1 keep mask as a (B, S, nh, T, T) view (indexed in the (S, B,
        nh, T, T) order of the hook's view, as the kernel's) and its scale; (None, 1.0) when off."""
        if not dropping:
            return None, 1.0
        keep, scale = _keep01((S, B, self.n_heads, T, T), self.dropout, keys[_PATTERN], like)
        return keep.transpose(0, 1), scale

    def _gathered_table(self, T: int, keys: list[int] | None = None, dropping: bool = False) -> torch.Tensor:
        """(R, T, T, hs): r_{i-j}, zero for j > i; in training, with dropout on the gathered
        tensor as the official code ("gathered") or on each r_m ("per_row", cheaper)."""
        S, nh, _, hs = self.rel.shape
        rel = self.rel[:, :, :T]
        if dropping and self.rel_dropout == "per_row":
            rel = _dropout(rel, self.dropout, keys[_TABLE])
        table = _Toeplitz.apply(rel.reshape(S * nh, T, hs), self._workspace)  # (R, T, T, hs)
        if dropping and self.rel_dropout == "gathered":
            table = _dropout(table, self.dropout, keys[_TABLE])
        return table

    def _project(self, mixed: torch.Tensor, S: int) -> torch.Tensor:
        """(B, R, Tq, hs) head outputs -> output projection: (S, B, Tq, d), before the residual dropout."""
        B, _, Tq, hs = mixed.shape
        nh = self.n_heads
        out = mixed.view(B, S, nh, Tq, hs).permute(1, 0, 3, 2, 4).reshape(S, B * Tq, nh * hs)  # (S, B*Tq, d)
        return torch.bmm(out, self.w_out).view(S, B, Tq, nh * hs)  # (S, B, Tq, d)


class MLP(nn.Module):
    def __init__(self, cfg: ICLTransformerConfig, generators, device, layer: int = 0):
        super().__init__()
        self.w_in = _normal((cfg.d_model, 4 * cfg.d_model), 0.02, generators)  # (S, d, 4d)
        self.w_out = _normal((4 * cfg.d_model, cfg.d_model), 0.02, generators)  # (S, 4d, d)
        self.dropout, self.layer = cfg.dropout, layer

    def forward(self, x: torch.Tensor, key: int | None = None) -> torch.Tensor:
        S, B, T, d = x.shape
        h = F.gelu(torch.bmm(x.reshape(S, B * T, d), self.w_in))  # (S, B*T, 4d)
        site = _site_keys(key, self.layer)[_MLP] if self.training and key is not None else None
        return _dropout(torch.bmm(h, self.w_out).view(S, B, T, d), self.dropout, site)


class Block(nn.Module):
    def __init__(self, cfg: ICLTransformerConfig, n_heads: int, generators, device, layer: int = 0):
        super().__init__()
        n_replicas = len(generators)
        self.ln_attn = StackedLayerNorm(n_replicas, cfg.d_model, device)
        self.attn = RelativeAttention(cfg, n_heads, generators, device, layer)
        self.ln_mlp = StackedLayerNorm(n_replicas, cfg.d_model, device) if cfg.mlp else None
        self.mlp = MLP(cfg, generators, device, layer) if cfg.mlp else None

    def forward(self, x: torch.Tensor, last_query_only: bool = False, tokens: torch.Tensor | None = None,
                embedding: torch.Tensor | None = None, key: int | None = None) -> torch.Tensor:
        residual = x[:, :, -1:] if last_query_only else x
        if tokens is not None:  # the first layer: its input is the token embedding alone
            x = self.attn(None, tokens=tokens, token_table=self.ln_attn(embedding.unsqueeze(1)).squeeze(1), key=key,
                          residual=residual)
        else:
            x = self.attn(self.ln_attn(x), last_query_only, key=key, residual=residual)
        if self.mlp is not None:
            x = x + self.mlp(self.ln_mlp(x), key)
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


class _Context:
    """An autograd context's stand-in, to run a kernel Function's forward and backward inside another
    node (``_KernelModel``): the same code, so the same numbers, without a graph node of its own."""

    def __init__(self, saving: bool):
        self.needs_input_grad = (saving,) * 8
        self.saved_tensors = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


def _bmm_backward(grad: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d a and d b of ``torch.bmm(a, b)``: autograd's formulas (the same products)."""
    return grad.bmm(b.transpose(1, 2)), a.transpose(1, 2).bmm(grad)


class _KernelModel(torch.autograd.Function):
    """The whole model on the compiled kernel, one autograd node: the forward of ``ICLTransformer``'s
    modules (embedding, layer 1 on its token tables, the later layers, final LayerNorm, head) and a
    backward that runs each part's backward in reverse, the kernel Functions' own forward and backward
    code called directly and the matmuls' gradients by autograd's formulas, so the numbers are those of
    the module-by-module graph (~20 nodes and their views before; the Python and autograd overhead
    of a 1-seed step). Taken where ``ICLTransformer._fusable`` says (no hooks, no MLP, ...)."""

    @staticmethod
    def forward(ctx, idx, model, key, saving: bool, *params):
        S, B, T = idx.shape
        cfg, k, d = model.cfg, model.vocab_size, model.cfg.d_model
        wte = params[0]
        # F.one_hot's values without its range checks (a min and max over the tokens, a scatter)
        one_hot = (idx.reshape(S, B * T, 1) == torch.arange(k, device=idx.device)).to(wte.dtype)  # (S, B*T, k)
        x = torch.bmm(one_hot, wte).view(S, B, T, d)
        steps = []  # per layer: what its backward needs
        for i, layer in enumerate(model.layers):
            attention, ln = layer.attn, layer.ln_attn
            nh, hs = attention.n_heads, attention.d_head
            dropping = attention.training and attention.dropout > 0
            keys = _site_keys(key if dropping else None, attention.layer)
            p = attention.dropout if dropping else 0.0
            c_table, c_ln, c_attn = _Context(saving), _Context(saving), _Context(saving)
            table = kernel.Table.forward(c_table, attention.rel, T, p, keys[_TABLE])  # (S nh, T, hs, Tp)
            buffer = attention._workspace.get("kernel_pattern", (S, B, nh, T, T), table.dtype, table.device) \
                if saving else None
            step = {"table": c_table, "ln": c_ln, "attn": c_attn}
            if i == 0:  # on the token tables (the module path's RelativeAttention with tokens)
                token_table = kernel.LayerNorm.forward(c_ln, wte.unsqueeze(1), ln.weight, ln.bias).squeeze(1)
                c_tables, c_rows = _Context(saving), _Context(saving)
                q, pairs, values = _TokenTables.forward(c_tables, token_table, attention.w_qkv, attention.w_out, nh)
                rows = kernel.TokenRows.forward(c_rows, q, table)
                mass = kernel.TokenAttention.forward(c_attn, rows, pairs, idx, nh, p, keys[_PATTERN], None, buffer)
                mixed = mass.view(S, B * T, nh * k)
                out = torch.bmm(mixed, values)
                step.update(tables=c_tables, rows=c_rows, mixed=mixed, values=values)
            else:
                h = kernel.LayerNorm.forward(c_ln, x, ln.weight, ln.bias).reshape(S, B * T, d)
                qkv = torch.bmm(h, attention.w_qkv).view(S, B, T, 3 * d)
                mixed = kernel.Attention.forward(c_attn, qkv, table, nh, p, keys[_PATTERN], None, buffer)
                mixed = mixed.view(S, B * T, d)
                out = torch.bmm(mixed, attention.w_out)
                step.update(h=h, w_qkv=attention.w_qkv, mixed=mixed, values=attention.w_out)
            out = out.view(S, B, T, d)
            if dropping:
                c_residual = step["residual"] = _Context(saving)
                x = kernel.DropoutAdd.forward(c_residual, x, out, p, keys[_RESIDUAL])
            else:
                x = x + out
            steps.append(step)
        c_final = _Context(saving)
        xf = kernel.LayerNorm.forward(c_final, x, model.ln_final.weight, model.ln_final.bias).reshape(S, B * T, d)
        head = params[-1]
        logits = torch.bmm(xf, head).view(S, B, T, k)
        if saving:
            ctx.steps, ctx.c_final, ctx.xf, ctx.head, ctx.one_hot = steps, c_final, xf, head, one_hot
            ctx.n_params, ctx.wte = len(params), wte
        return logits

    @staticmethod
    def backward(ctx, grad_logits):
        S, BT, d = ctx.xf.shape
        k = grad_logits.shape[-1]
        grad_xf, grad_head = _bmm_backward(grad_logits.reshape(S, BT, k), ctx.xf, ctx.head)
        grad_x, grad_lnf_w, grad_lnf_b = kernel.LayerNorm.backward(ctx.c_final, grad_xf)
        grads = []  # per layer, last first: ln weight, ln bias, w_qkv, w_out, rel
        grad_wte = None
        for i in range(len(ctx.steps) - 1, -1, -1):
            step = ctx.steps[i]
            if "residual" in step:
                grad_residual, grad_out = kernel.DropoutAdd.backward(step["residual"], grad_x)[:2]
            else:
                grad_residual, grad_out = grad_x, grad_x
            grad_mixed, grad_values = _bmm_backward(grad_out.reshape(S, BT, d), step["mixed"], step["values"])
            if i == 0:
                tokens = step["attn"].saved_tensors[0]
                grad_rows, grad_pairs = kernel.TokenAttention.backward(step["attn"], grad_mixed.view(
                    *tokens.shape, -1, k))[:2]
                grad_q, grad_table = kernel.TokenRows.backward(step["rows"], grad_rows)
                grad_token_table, grad_w_qkv, grad_w_out, _ = _TokenTables.backward(step["tables"], grad_q, grad_pairs,
                                                                                   grad_values)
                grad_rel = kernel.Table.backward(step["table"], grad_table)[0]
                grad_embedded, grad_ln_w, grad_ln_b = kernel.LayerNorm.backward(step["ln"],
                                                                                grad_token_table.unsqueeze(1))
                grad_wte = ctx.one_hot.transpose(1, 2).bmm(grad_residual.reshape(S, BT, d)) + grad_embedded.squeeze(1)
            else:
                grad_w_out = grad_values
                grad_qkv, grad_table = kernel.Attention.backward(step["attn"], grad_mixed.view(grad_residual.shape))[:2]
                grad_rel = kernel.Table.backward(step["table"], grad_table)[0]
                grad_h, grad_w_qkv = _bmm_backward(grad_qkv.view(S, BT, -1), step["h"], step["w_qkv"])
                grad_ln, grad_ln_w, grad_ln_b = kernel.LayerNorm.backward(step["ln"], grad_h.view(grad_residual.shape))
                grad_x = grad_residual + grad_ln
            grads.append((grad_ln_w, grad_ln_b, grad_w_qkv, grad_w_out, grad_rel))
        ordered = [g for layer in reversed(grads) for g in layer]
        return (None, None, None, None, grad_wte, *ordered, grad_lnf_w, grad_lnf_b, grad_head)


class ICLTransformer(nn.Module):
    """S stacked attention-only transformers over a vocabulary of k tokens."""

    def __init__(self, vocab_size: int, cfg: ICLTransformerConfig, seeds: Sequence[int], device="cpu"):
        super().__init__()
        self.cfg, self.vocab_size, self.n_replicas = cfg, vocab_size, len(seeds)
        generators = [generator(seed, device) for seed in seeds]
        self.wte = _normal((vocab_size, cfg.d_model), 0.02, generators)  # (S, k, d)
        self.layers = nn.ModuleList(Block(cfg, cfg.heads[i], generators, device, i) for i in range(cfg.n_layers))
        self.ln_final = StackedLayerNorm(len(seeds), cfg.d_model, device)
        self.head = _normal((cfg.d_model, vocab_size), 0.01, generators)  # (S, d, k), bias-free
        self.token_tables = True  # False: compute layer 1 like any other layer (for tests)
        self.fused = True  # False: the module-by-module graph where ``_KernelModel`` would run (for tests)

    def forward(self, idx: torch.Tensor, last_position_only: bool = False) -> torch.Tensor:
        """Logits (S, B, T, k) for tokens (S, B, T); (S, B, 1, k) with ``last_position_only``,
        which computes the last layer for the last query alone (evaluation). In training, one
        64-bit dropout key a forward from the global torch generator (see the module docstring)."""
        S, B, T = idx.shape
        if T > self.cfg.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.cfg.max_len}")
        key = int(torch.randint(0, 2**63 - 1, ()).item()) if self.training and self.cfg.dropout > 0 else None
        if not last_position_only and self._fusable():
            params = [self.wte]
            for layer in self.layers:
                params += [layer.ln_attn.weight, layer.ln_attn.bias, layer.attn.w_qkv, layer.attn.w_out, layer.attn.rel]
            params += [self.ln_final.weight, self.ln_final.bias, self.head]
            return _KernelModel.apply(idx, self, key, torch.is_grad_enabled(), *params)
        # A one-hot matmul, not an index: its backward is a matmul, not a scatter.
        one_hot = F.one_hot(idx.reshape(S, B * T), self.vocab_size).to(self.wte.dtype)  # (S, B*T, k)
        x = torch.bmm(one_hot, self.wte).view(S, B, T, self.cfg.d_model)  # (S, B, T, d)
        for i, layer in enumerate(self.layers):
            last = last_position_only and i == len(self.layers) - 1
            # Layer 1 sees only token embeddings: it runs on k x k and k x T x T tables (exact, cheaper).
            x = layer(x, last, tokens=idx if i == 0 and self.token_tables and not last else None,
                      embedding=self.wte, key=key)
        x = self.ln_final(x)
        return torch.bmm(x.reshape(S, -1, self.cfg.d_model), self.head).view(S, B, -1, self.vocab_size)

    def _fusable(self) -> bool:
        """Whether the forward runs as one node (``_KernelModel``): the compiled kernel takes the weights,
        layer 1 runs on token tables, no MLP, no hook that may keep a pattern, and the relative dropout
        (if any) on the gathered table."""
        return (self.fused and self.token_tables and not self.cfg.mlp and kernel.available(self.wte)
                and (self.cfg.rel_dropout == "gathered" or not self.training or self.cfg.dropout == 0)
                and not any(layer.attn._hooked() for layer in self.layers))

    def readouts(self) -> dict[str, torch.Tensor]:
        """Per-replica numbers read off the weights (no data), for evaluators: in a model of two
        or more layers, layer 1's positional score q[a] . r_m / sqrt(d_head) at offsets
        m = 0..5, averaged over tokens a and heads, as ``l1_rel_<m>`` (S,) each. The
        one-layer model has no previous-token layer to read: {}."""
        if len(self.layers) < 2:
            return {}
        attention = self.layers[0].attn
        table = self.layers[0].ln_attn(self.wte.unsqueeze(1)).squeeze(1)  # (S, k, d)
        q = torch.bmm(table, attention.w_qkv)[..., : self.cfg.d_model]  # (S, k, d)
        S, k, _ = q.shape
        q = q.view(S, k, attention.n_heads, attention.d_head).transpose(1, 2)  # (S, nh, k, hs)
        offsets = min(6, attention.rel.shape[2])
        scores = q @ attention.rel[:, :, :offsets].transpose(-2, -1) / attention.d_head**0.5  # (S, nh, k, 6)
        return {f"l1_rel_{m}": scores[..., m].mean(dim=(1, 2)) for m in range(offsets)}

    def decay_parameters(self) -> list[nn.Parameter]:
        """The weight matrices, embeddings and relative encodings included (nanoGPT's rule:
        every parameter of two or more dimensions per replica); not the LayerNorms."""
        return [p for p in self.parameters() if p.dim() >= 3]

    def n_parameters(self) -> int:
        """Parameters of one replica."""
        return sum(p[0].numel() for p in self.parameters())
