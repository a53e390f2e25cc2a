"""Mamba without ``mamba_ssm`` (which needs CUDA): the selective state-space block.

Gu and Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (2023); the
block of the official ``mamba_simple.py`` and of Hugging Face's ``MambaMixer``, with the
same parameter names: ``in_proj`` (d -> 2 d_inner: x and the gate z), a causal depthwise
``conv1d`` and SiLU on x, ``x_proj`` (x -> dt, B, C, all input-dependent), ``dt_proj``
with softplus (Delta), A = -exp(``A_log``), the skip ``D``, the gate SiLU(z) and
``out_proj``. The recurrence, per channel c and state n:

    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t,    y_t = C_t . h_t + D x_t

Three scans, one recurrence. ``scan="compiled"`` runs the block between ``in_proj`` and
``out_proj`` (conv, SiLU, the scan, its gate) as small C++ kernels (``_scan.py``: built once
with the machine's compiler and cached; CPU only; numbers in ``benchmarks/mamba.py``).
``scan="sequential"`` runs the recurrence step by step in PyTorch: the reference, and the
fallback where nothing compiles. ``scan="parallel"`` is a Hillis-Steele prefix scan of the
linear recurrence: log2(T) whole-sequence steps instead of T, with decays multiplied (never
divided), so nothing overflows: for accelerators, where a loop of T kernel launches is the
cost. ``auto`` (the default) takes the compiled kernels on a CPU if they build, else the
sequential scan, and the parallel scan on any other device (not run on a GPU here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.config import Interval, param
from learnlab.models import _scan
from learnlab.models.layers import masked_cross_entropy

__all__ = ["MambaConfig", "MambaBlock", "Mamba", "selective_scan", "resolve_scan"]


ScanMethod = Literal["auto", "compiled", "sequential", "parallel"]


def resolve_scan(method: ScanMethod, device: torch.device) -> Literal["compiled", "sequential", "parallel"]:
    """The scan ``auto`` means on ``device``: the compiled kernel on a CPU when it builds (else the
    sequential scan), the parallel scan elsewhere. Other methods are returned as they are."""
    if method != "auto":
        return method
    if device.type != "cpu":
        return "parallel"
    return "compiled" if _scan.kernel() is not None else "sequential"


def _check_compiled(device: torch.device) -> None:
    if device.type != "cpu" or _scan.kernel() is None:
        raise RuntimeError(f"the compiled selective scan needs a CPU tensor and a built kernel (got {device}, "
                           f"kernel {'built' if _scan.kernel() is not None else 'unavailable'})")


def selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None, *,
                   delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                   method: ScanMethod = "auto", chunk: int | None = None) -> torch.Tensor:
    """(y + D x) SiLU(z), y (b, T, c) the recurrence above, for x, delta (b, T, c), A (c, n), B, C (b, T, n),
    D (c,) and the gate z (b, T, c); mamba_ssm's ``selective_scan_fn`` arguments and order.

    ``delta_bias`` (c,) is added to delta, then softplus taken if ``delta_softplus``; D, z and
    delta_bias None: no such term. ``method``: see the module docstring; ``compiled`` raises
    RuntimeError where the kernel did not build, or off the CPU (it fuses all the terms above into
    one pass). ``chunk``: time steps per cache-sized chunk of the sequential scan (None: about 2^20
    state entries)."""
    method = resolve_scan(method, x.device)
    if method == "compiled":
        _check_compiled(x.device)
        return _scan.compiled_selective_scan(x, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if delta_bias is not None:
        delta = delta + delta_bias
    if delta_softplus:
        delta = F.softplus(delta)
    y = _sequential_scan(x, delta, A, B, C, chunk) if method == "sequential" else _parallel_scan(x, delta, A, B, C)
    if D is not None:
        y = y + x * D
    return y if z is None else y * F.silu(z)


def _sequential_scan(x, delta, A, B, C, chunk):
    time_major = (t.transpose(0, 1).contiguous() for t in (delta, delta * x, B, C))
    delta_t, xd_t, B_t, C_t = time_major
    if chunk is None:
        chunk = max(1, (1 << 20) // (x.shape[0] * x.shape[2] * A.shape[1]))
    return _SequentialScan.apply(delta_t, xd_t, A, B_t, C_t, chunk).transpose(0, 1)


def _parallel_scan(x, delta, A, B, C):
    length = x.shape[1]
    a = torch.exp(delta.unsqueeze(-1) * A)  # (b, T, c, n): the decay exp(Delta A), in (0, 1]
    u = (delta * x).unsqueeze(-1) * B.unsqueeze(2)  # (b, T, c, n): Delta B x
    # Hillis-Steele prefix scan of h_t = a_t h_{t-1} + u_t: after the step with shift s, (a_t, u_t)
    # composes steps t - 2s + 1 .. t. log2(T) steps over the whole sequence; products of a stay in (0, 1].
    shift = 1
    while shift < length:
        a_before = F.pad(a[:, :-shift], (0, 0, 0, 0, shift, 0), value=1.0)
        u_before = F.pad(u[:, :-shift], (0, 0, 0, 0, shift, 0), value=0.0)
        u = a * u_before + u
        a = a * a_before
        shift *= 2
    return (u * C.unsqueeze(2)).sum(-1)  # (b, T, c)


def _scan_chunk(delta, xd, A, B, h0):
    """decay and h over one time chunk (t, b, c, n), from the state h0 (b, c, n) before it."""
    decay = (delta.unsqueeze(-1) * A).exp_()
    state = xd.unsqueeze(-1) * B.unsqueeze(2)  # u_t, overwritten in place by h_t
    state[0].addcmul_(decay[0], h0)
    for t in range(1, len(state)):
        state[t].addcmul_(decay[t], state[t - 1])
    return decay, state


class _SequentialScan(torch.autograd.Function):
    """The recurrence step by step, with a hand-written backward (autograd through a loop of T
    small steps records ~5T nodes and costs ~15x more on a CPU).

    Inputs are time-major, delta, xd = delta x (T, b, c), A (c, n), B, C (T, b, n). Time is cut
    into chunks of about a million state entries, so each chunk's (t, b, c, n) tensors stay in
    cache: the whole-sequence tensors are memory-bound (at b = 64 a step took 3x longer). Only
    the state at each chunk boundary is kept; backward recomputes a chunk's states from it.

    Backward, with a_t = exp(delta_t A) and h_t = a_t h_{t-1} + xd_t B_t:
    dh_t = C_t dy_t + a_{t+1} dh_{t+1} (a reverse scan, carried across chunks);
    g_t = dh_t a_t h_{t-1} (the gradient of delta_t A); d delta = sum_n g A,
    dA = sum_{t,b} g delta, d xd = sum_n dh B, dB = sum_c dh xd, dC = sum_c dy h.
    """

    @staticmethod
    def forward(ctx, delta, xd, A, B, C, chunk: int):
        length, batch, channels = delta.shape
        y = delta.new_empty(length, batch, channels)
        h = delta.new_zeros(batch, channels, A.shape[1])
        starts = list(range(0, length, chunk))
        boundaries = []
        for s in starts:
            e = min(s + chunk, length)
            boundaries.append(h)
            _, state = _scan_chunk(delta[s:e], xd[s:e], A, B[s:e], h)
            y[s:e] = torch.bmm(state.view(-1, channels, state.shape[-1]), C[s:e].reshape(-1, C.shape[-1], 1)).view(
                e - s, batch, channels)
            h = state[-1].clone()
        ctx.chunk = chunk
        ctx.save_for_backward(delta, xd, A, B, C, torch.stack(boundaries))
        return y

    @staticmethod
    def backward(ctx, dy):
        delta, xd, A, B, C, boundaries = ctx.saved_tensors
        length, batch, channels = delta.shape
        n = A.shape[1]
        dy = dy.contiguous()
        d_delta, d_xd = torch.empty_like(delta), torch.empty_like(xd)
        d_B, d_C, d_A = torch.empty_like(B), torch.empty_like(C), torch.zeros_like(A)
        carry = delta.new_zeros(batch, channels, n)  # a_s dh_s of the chunk after: the gradient reaching h_{s-1}
        for index in range(len(boundaries) - 1, -1, -1):
            s = index * ctx.chunk
            e = min(s + ctx.chunk, length)
            h0 = boundaries[index]
            decay, state = _scan_chunk(delta[s:e], xd[s:e], A, B[s:e], h0)
            rows = (e - s) * batch
            d_C[s:e] = torch.bmm(dy[s:e].view(rows, 1, channels), state.view(rows, channels, n)).view(e - s, batch, n)
            d_state = dy[s:e].unsqueeze(-1) * C[s:e].unsqueeze(2)
            d_state[-1].add_(carry)
            for t in range(e - s - 2, -1, -1):
                d_state[t].addcmul_(decay[t + 1], d_state[t + 1])
            carry = decay[0] * d_state[0]
            flat = d_state.view(rows, channels, n)
            d_xd[s:e] = torch.bmm(flat, B[s:e].reshape(rows, n, 1)).view(e - s, batch, channels)
            d_B[s:e] = torch.bmm(xd[s:e].reshape(rows, 1, channels), flat).view(e - s, batch, n)
            g = d_state.mul_(decay)  # d_state is not needed after this
            g[1:].mul_(state[:-1])
            g[0].mul_(h0)
            d_delta[s:e] = (g * A).sum(-1)
            d_A += g.mul_(delta[s:e].unsqueeze(-1)).sum((0, 1))  # no permuted copy of g, unlike an einsum
        return d_delta, d_xd, d_A, d_B, d_C, None


def _causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv1d`` (weight (c, 1, K), groups c, padding K - 1, first T outputs kept) on x (b, T, c), channels
    last: out_t = bias + sum_k weight[:, k] x_{t - K + 1 + k}. K shifted multiply-adds; on a CPU the
    backward is ~8x faster than the depthwise convolution's, and there are no transposes."""
    length, width = x.shape[1], weight.shape[-1]
    padded = F.pad(x, (0, 0, width - 1, 0))  # (b, T + K - 1, c): zeros before the start
    w = weight[:, 0, :]  # (c, K)
    out = padded[:, :length] * w[:, 0] if bias is None else torch.addcmul(bias, padded[:, :length], w[:, 0])
    for k in range(1, width):
        out = out.addcmul(padded[:, k:k + length], w[:, k])
    return out


@dataclass(frozen=True)
class MambaConfig:
    d_model: int = param(128, Interval(1, None))
    n_layer: int = param(4, Interval(1, None))
    d_state: int = param(16, Interval(1, None))
    d_conv: int = param(4, Interval(1, None))
    expand: int = param(2, Interval(1, None))
    dt_rank: int | None = param(None, Interval(1, None), help="None: ceil(d_model / 16)")
    vocab_size: int = param(30, Interval(1, None))
    # On a CPU the compiled loop is fastest, then the PyTorch step-by-step loop (64 steps: 0.05 s vs
    # 0.26 s forward at batch 16); the log-depth scan is for accelerators, where a Python loop of T
    # kernel launches is the cost.
    scan: ScanMethod = param("auto", help="auto: the compiled kernel on CPU (sequential if it cannot be built), "
                                          "parallel on GPU")


class MambaBlock(nn.Module):
    """One mixer (Hugging Face's ``MambaMixer`` names): (b, T, d) -> (b, T, d)."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        inner, rank = cfg.expand * cfg.d_model, cfg.dt_rank or math.ceil(cfg.d_model / 16)
        self.inner, self.rank = inner, rank
        self.in_proj = nn.Linear(cfg.d_model, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, cfg.d_conv, groups=inner, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(inner, rank + 2 * cfg.d_state, bias=False)
        self.dt_proj = nn.Linear(rank, inner)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, cfg.d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, cfg.d_model, bias=False)
        with torch.no_grad():  # the official init: Delta log-uniform in [1e-3, 1e-1] through the softplus
            dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        xz = self.in_proj(hidden)  # (b, T, 2 inner)
        if resolve_scan(self.cfg.scan, xz.device) == "compiled":  # all that follows, as one autograd node
            _check_compiled(xz.device)
            return self.out_proj(_scan.compiled_mamba_inner(
                xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight, self.dt_proj.bias,
                self.A_log, self.D))
        x, z = xz.chunk(2, dim=-1)  # (b, T, inner) each
        x = F.silu(_causal_depthwise_conv(x, self.conv1d.weight, self.conv1d.bias))  # (b, T, inner)
        dt, B, C = self.x_proj(x).split([self.rank, self.cfg.d_state, self.cfg.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight)  # (b, T, inner): its bias and softplus go in the scan
        A = -torch.exp(self.A_log.float())  # (inner, n)
        y = selective_scan(x, delta, A, B, C, self.D, z, delta_bias=self.dt_proj.bias, delta_softplus=True,
                           method=self.cfg.scan)  # (y + D x) SiLU(z)
        return self.out_proj(y)


class _Residual(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.norm, self.mixer = nn.LayerNorm(cfg.d_model), MambaBlock(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))


class Mamba(nn.Module):
    """Embedding -> n_layer pre-norm residual Mamba blocks -> LayerNorm -> tied output head."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(_Residual(cfg) for _ in range(cfg.n_layer))
        self.norm_f = nn.LayerNorm(cfg.d_model)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.embedding(idx)  # (b, T, d)
        for layer in self.layers:
            x = layer(x)
        logits = self.norm_f(x) @ self.embedding.weight.T  # (b, T, V)
        if targets is None:
            return logits, None
        return logits, masked_cross_entropy(logits, targets, loss_mask)
