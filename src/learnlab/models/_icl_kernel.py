"""The ICL transformer's attention as a small compiled CPU kernel, and its dropout masks.

``models.icl_transformer`` spent a CPU training step in its (B, T, T) attention tensors: a
dozen passes of PyTorch ops over 2.5 MB scores, patterns, masks and gradients per layer, and
16 random bits an element from the mt19937 generator (~11 ns per 64-bit word here). This
kernel does one (T, T) attention per work item (replica, sequence, head) with its rows in
L1: the scores q_i . (k_j + r~_{i-j}) as vectors over the keys j, the softmax (glibc's
vectorised ``expf``), the dropout and the product with the values in one pass; items of a
(replica, head) go in groups of four sequences so that each row of the relative table (and
of its gradient's accumulator) is read once a group. The backward redoes the rows from the
saved pattern, sums the table's gradient over the batch in per-thread accumulators and forms
dk and dv sixteen keys at a time with their sums in registers. Only the softmax pattern P
(the hook's view and the backward's input) and the keep flags (one bit an element) are
stored. Layer 1, whose input is the token embedding alone, runs on its k x T x T tables
(``ll_token_forward``). Also here: LayerNorm, cross-entropy and dropout for this model's
(S, B, T, 16) tensors (PyTorch's CPU kernels spend ~40 ns a row of 16 or 2), and the
last-position evaluation of a two-layer model (``ll_eval_two_layer``, for
``probes.markov.transformer_last_position``).

Dropout masks are a keyed hash of each element's index (Wellons' lowbias32, twice): element
e of a draw keyed ``key`` is kept where ``bits16(key, e) >= round(p * 2^16)``, so P(drop) =
p to 2^-16 (0.1 -> 0.1000061), as the masks before. No state: :func:`keep_bits` computes the
same bits with torch ops, so the fallback path (no compiler, a GPU, float64) draws
bit-identical masks. The model draws one 64-bit key per forward from the global torch
generator and derives a key per dropout site (:func:`site_key`).

Plain C, compiled by the system's C compiler into a shared library and loaded with
``ctypes`` (no PyTorch headers: a few seconds to build, once, cached by a hash of the
source and flags under ``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``).
``-ffast-math`` is a compile flag only, never a link flag, so the process's denormal mode is
untouched; OpenMP threads come from the ``libgomp`` PyTorch itself loaded (same soname), as
many as ``torch.get_num_threads()``. Where it cannot be built :func:`library` returns None with
a warning and the model takes its pure-PyTorch path; ``LEARNLAB_ICL_KERNEL=0`` asks for that
path without trying. Float32 on the CPU only (:func:`available`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["library", "available", "keep_bits", "keep_mask", "site_key", "Table", "Attention", "TokenAttention",
           "TokenRows", "LayerNorm", "CrossEntropy", "Dropout", "DropoutAdd"]

_LEVELS = 1 << 16
_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1
_VECTOR_FLAGS = {"AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma",
                            "-mprefer-vector-width=512"],
                 "AVX2": ["-mavx2", "-mfma"]}


def _build(directory: Path, flags: list[str]) -> Path:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc, gcc) on PATH")
    digest = hashlib.sha1("\0".join([_SOURCE, compiler, *flags]).encode()).hexdigest()[:12]
    target = directory / f"learnlab_icl_attention_{digest}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as work:  # concurrent builds never meet half a file
        source, obj, lib = Path(work, "k.c"), Path(work, "k.o"), Path(work, "k.so")
        source.write_text(_SOURCE)
        for command in ([compiler, *flags, "-c", str(source), "-o", str(obj)],
                        [compiler, "-shared", "-fopenmp", str(obj), "-o", str(lib), "-lm"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:2])} ...: {(done.stderr or done.stdout).strip()[:500]}")
        os.replace(lib, target)
    return target


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The compiled kernel, built or loaded once a process; None where it cannot be built (a
    warning says why) or with ``LEARNLAB_ICL_KERNEL=0``."""
    if os.environ.get("LEARNLAB_ICL_KERNEL", "1") == "0":
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", "-ffast-math", "-fopenmp", "-fPIC", "-std=c11", *_VECTOR_FLAGS.get(capability, [])]
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    try:
        lib = ctypes.CDLL(str(_build(root / f"learnlab_icl_{capability.lower()}", flags)))
    except Exception as error:  # no compiler, a failed build: the pure-PyTorch attention instead
        warnings.warn(f"learnlab: the compiled ICL attention is unavailable ({type(error).__name__}: "
                      f"{str(error)[:300]}); using the pure-PyTorch path", RuntimeWarning, stacklevel=2)
        return None
    p, i64, u64, u32, f32, c_int = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32,
                                    ctypes.c_float, ctypes.c_int)
    drop = [u64, u32, f32, c_int, c_int]  # key, threshold, scale, dropping, threads
    stored = [p, f32, c_int, c_int]  # the forward's keep bits, scale, dropping, threads
    lib.ll_keep_mask.argtypes = [p, i64, u64, u32, f32, u64, c_int]
    lib.ll_table_forward.argtypes = [p, i64, i64, i64, i64, p, p, *drop]
    lib.ll_table_backward.argtypes = [p, i64, i64, i64, i64, p, *stored]
    full = [u64, u32, f32, c_int, c_int, c_int]  # key, threshold, scale, dropping, the whole pattern, threads
    lib.ll_attn_forward.argtypes = [p, i64, i64, i64, i64, i64, p, p, p, p, *full]
    lib.ll_attn_backward.argtypes = [p, p, p, p, i64, i64, i64, i64, i64, p, p, *stored]
    lib.ll_token_forward.argtypes = [p, p, p, i64, i64, i64, i64, i64, p, p, p, *full]
    lib.ll_token_backward.argtypes = [p, p, p, i64, i64, i64, i64, i64, p, p, *stored]
    lib.ll_token_rows_forward.argtypes = [p, p, i64, i64, i64, i64, p, c_int]
    lib.ll_token_rows_backward.argtypes = [p, p, p, i64, i64, i64, i64, p, p, c_int]
    lib.ll_layer_norm_forward.argtypes = [p, p, p, i64, i64, i64, p, p, p, c_int]
    lib.ll_layer_norm_backward.argtypes = [p, p, p, p, p, i64, i64, i64, p, p, p, c_int]
    lib.ll_cross_entropy_forward.argtypes = [p, p, i64, i64, i64, p, c_int]
    lib.ll_cross_entropy_backward.argtypes = [p, p, p, i64, i64, i64, p, c_int]
    lib.ll_dropout_forward.argtypes = [p, p, p, i64, u64, u32, f32, c_int]
    lib.ll_dropout_backward.argtypes = [p, p, p, i64, f32, c_int]
    lib.ll_dropout_add_forward.argtypes = [p, p, p, p, i64, u64, u32, f32, c_int]
    lib.ll_eval_two_layer.argtypes = [p] * 16 + [i64] * 7 + [p] * 5 + [c_int]
    lib.ll_eval_two_layer.restype = c_int
    for function in (lib.ll_keep_mask, lib.ll_table_forward, lib.ll_table_backward, lib.ll_attn_forward,
                     lib.ll_attn_backward, lib.ll_token_forward, lib.ll_token_backward, lib.ll_token_rows_forward,
                     lib.ll_token_rows_backward, lib.ll_layer_norm_forward,
                     lib.ll_layer_norm_backward, lib.ll_cross_entropy_forward, lib.ll_cross_entropy_backward,
                     lib.ll_dropout_forward, lib.ll_dropout_backward, lib.ll_dropout_add_forward):
        function.restype = None
    return lib


def available(*tensors: torch.Tensor) -> bool:
    """Whether the kernel takes these tensors: float32 on the CPU, and the library built."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and library() is not None


# --- dropout masks -------------------------------------------------------------------------------

def site_key(key: int, site: int) -> int:
    """The key of dropout site ``site`` (layer and place) within a forward keyed ``key``."""
    z = (key + (site + 1) * 0x9E3779B97F4A7C15) & _M64  # splitmix64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return (z ^ (z >> 31)) >> 1  # 63 bits: a Python int that fits an int64 wherever torch records arguments


def _signed32(value: int) -> int:
    """A 32-bit pattern as the int32 that holds it."""
    return value - (1 << 32) if value >= 1 << 31 else value


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int32 bit patterns (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (32 - bits)) - 1)


def _mix32(x: torch.Tensor) -> torch.Tensor:  # int32 lanes; products wrap mod 2^32, as in C
    x = x ^ _shift_right(x, 16)
    x = x * _signed32(0x7FEB352D)
    x = x ^ _shift_right(x, 15)
    x = x * _signed32(0x846CA68B)
    return x ^ _shift_right(x, 16)


def keep_bits(key: int, index: torch.Tensor) -> torch.Tensor:
    """16 random bits (int32 in [0, 2^16)) per element index (int64 >= 0) of the draw ``key``:
    the kernel's ``bits16``, in torch ops (32-bit lanes)."""
    lo, hi = _signed32(key & _M32), _signed32((key >> 32) & _M32)
    low = (index & _M32).to(torch.int32)  # the bit pattern of the index's low word
    high = (index >> 32).to(torch.int32) * _signed32(0x9E3779B9)
    return _shift_right(_mix32(_mix32(low ^ lo) ^ hi ^ high), 16)


def threshold(p: float) -> int:
    return round(p * _LEVELS)


def keep_mask(shape, p: float, key: int, device, dtype=torch.float32, first: int = 0) -> torch.Tensor:
    """The inverted-dropout multiplier of a tensor of ``shape``: 1 / (1 - p') where kept, 0 where
    dropped (p' = round(p 2^16) / 2^16), element e (row-major) kept where keep_bits(key, first + e)
    >= p' 2^16."""
    level, scale = drop_scale(p)
    numel = 1
    for size in shape:
        numel *= size
    if dtype == torch.float32 and torch.device(device).type == "cpu" and library() is not None:
        out = torch.empty(shape, dtype=dtype)
        library().ll_keep_mask(out.data_ptr(), numel, key, level, scale, first, torch.get_num_threads())
        return out
    bits = keep_bits(key, torch.arange(first, first + numel, device=device, dtype=torch.int64)).view(shape)
    return (bits >= level).to(dtype) * scale


def padded(T: int) -> int:
    """T rounded up to 16: the kernel's rows of keys are whole 16-float vectors."""
    return -(-T // 16) * 16


def drop_scale(p: float) -> tuple[int, float]:
    level = threshold(p)
    return level, (_LEVELS / (_LEVELS - level) if level < _LEVELS else 0.0)


# --- autograd nodes ------------------------------------------------------------------------------

def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _bits(n: int, device) -> torch.Tensor:
    """Room for ``n`` keep flags, one bit each (the kernel's u16 words)."""
    return torch.empty(-(-n // 16), dtype=torch.int16, device=device)


class Table(torch.autograd.Function):
    """rel (S, nh, max_len, hs) -> the gathered relative table (S nh, T, hs, Tp): [r, i, :, j] =
    r_{i-j} (0 for j > i, Tp = ``padded(T)``), dropped out per element of the official (S, nh, T, T, hs) gather
    when ``p`` > 0 (key ``key``)."""

    @staticmethod
    def forward(ctx, rel, T: int, p: float, key: int):
        S, nh, max_len, hs = rel.shape
        rel = rel.contiguous()
        level, scale = drop_scale(p)
        Tp = padded(T)
        table = rel.new_empty(S * nh, T, hs, Tp)
        bits = _bits(S * nh * T * hs * Tp, rel.device) if p > 0 else None
        library().ll_table_forward(rel.data_ptr(), S * nh, max_len * hs, T, hs, table.data_ptr(), _ptr(bits), key,
                                   level, scale, int(p > 0), torch.get_num_threads())
        ctx.save_for_backward(bits)
        ctx.shape, ctx.drop = rel.shape, (T, scale, int(p > 0))
        return table

    @staticmethod
    def backward(ctx, grad):
        bits, = ctx.saved_tensors
        S, nh, max_len, hs = ctx.shape
        T, scale, dropping = ctx.drop
        grad_rel = grad.new_zeros(S, nh, max_len, hs)
        grad = grad.contiguous()  # held: a temporary's memory could be freed before the call reads it
        library().ll_table_backward(grad.data_ptr(), S * nh, max_len * hs, T, hs, grad_rel.data_ptr(),
                                    _ptr(bits), scale, dropping, torch.get_num_threads())
        return grad_rel, None, None, None


class Attention(torch.autograd.Function):
    """Causal attention of every (replica, sequence, head) with the gathered relative encoding:
    qkv (S, B, T, 3d) (the input projection's output), table (S nh, T, hs, Tp) -> out (S, B, T, d),
    softmax((q . (k_j + r~_{i-j})) / sqrt(hs)) dropped out (key ``key``) @ v; the pattern (S, B,
    nh, T, T) goes to ``pattern_out[0]`` when ``pattern_out`` is a list."""

    @staticmethod
    def forward(ctx, qkv, table, nh: int, p: float, key: int, pattern_out: list | None, pattern=None):
        S, B, T, d3 = qkv.shape
        d = d3 // 3
        qkv = qkv.contiguous()
        level, scale = drop_scale(p)
        out = qkv.new_empty(S, B, T, d)
        saving = any(ctx.needs_input_grad[:2])
        if pattern is None and (saving or pattern_out is not None):
            pattern = qkv.new_empty(S, B, nh, T, T)
        bits = _bits(S * B * nh * T * padded(T), qkv.device) if p > 0 else None
        full = int(pattern_out is not None)  # a hook's pattern: zeros above the diagonal too
        library().ll_attn_forward(qkv.data_ptr(), S, B, T, nh, d // nh, table.data_ptr(), out.data_ptr(),
                                  _ptr(pattern), _ptr(bits), key, level, scale, int(p > 0), full,
                                  torch.get_num_threads())
        if pattern_out is not None:
            pattern_out.append(pattern)
        ctx.save_for_backward(qkv, table, pattern, bits)
        ctx.drop, ctx.nh = (scale, int(p > 0)), nh
        return out

    @staticmethod
    def backward(ctx, grad):
        qkv, table, pattern, bits = ctx.saved_tensors
        S, B, T, d3 = qkv.shape
        nh = ctx.nh
        hs = d3 // 3 // nh
        grad_qkv = torch.empty_like(qkv)
        grad_table = table.new_empty(table.shape)
        grad = grad.contiguous()
        library().ll_attn_backward(qkv.data_ptr(), table.data_ptr(), pattern.data_ptr(), grad.data_ptr(),
                                   S, B, T, nh, hs, grad_qkv.data_ptr(), grad_table.data_ptr(), _ptr(bits), *ctx.drop,
                                   torch.get_num_threads())
        return grad_qkv, grad_table, None, None, None, None, None


class TokenAttention(torch.autograd.Function):
    """Layer 1 on token tables: scores rows[r, i, x_i, j] + pairs[r, x_i, x_j] (rows (S nh, T, k, Tp),
    pairs (S nh, k, k), tokens (S, B, T)) -> the dropped-out pattern's mass on each token (S, B,
    T, nh, k); the pattern as in ``Attention``."""

    @staticmethod
    def forward(ctx, rows, pairs, tokens, nh: int, p: float, key: int, pattern_out: list | None, pattern=None):
        S, B, T = tokens.shape
        k = pairs.shape[-1]
        rows, pairs, tokens = rows.contiguous(), pairs.contiguous(), tokens.contiguous()
        level, scale = drop_scale(p)
        out = rows.new_empty(S, B, T, nh, k)
        saving = any(ctx.needs_input_grad[:2])
        if pattern is None and (saving or pattern_out is not None):
            pattern = rows.new_empty(S, B, nh, T, T)
        bits = _bits(S * B * nh * T * padded(T), rows.device) if p > 0 else None
        full = int(pattern_out is not None)  # a hook's pattern: zeros above the diagonal too
        library().ll_token_forward(rows.data_ptr(), pairs.data_ptr(), tokens.data_ptr(), S, B, T, nh, k, out.data_ptr(),
                                   _ptr(pattern), _ptr(bits), key, level, scale, int(p > 0), full,
                                   torch.get_num_threads())
        if pattern_out is not None:
            pattern_out.append(pattern)
        ctx.save_for_backward(tokens, pattern, bits)
        ctx.drop, ctx.nh, ctx.k = (scale, int(p > 0)), nh, k
        return out

    @staticmethod
    def backward(ctx, grad):
        tokens, pattern, bits = ctx.saved_tensors
        S, B, T = tokens.shape
        nh, k = ctx.nh, ctx.k
        grad_rows = grad.new_empty(S * nh, T, k, padded(T))
        grad_pairs = grad.new_empty(S * nh, k, k)
        grad = grad.contiguous()
        library().ll_token_backward(pattern.data_ptr(), tokens.data_ptr(), grad.data_ptr(), S, B, T, nh, k,
                                    grad_rows.data_ptr(), grad_pairs.data_ptr(), _ptr(bits), *ctx.drop,
                                    torch.get_num_threads())
        return grad_rows, grad_pairs, None, None, None, None, None, None


class TokenRows(torch.autograd.Function):
    """Layer 1's score rows for every token: q (R, k, hs), table (R, T, hs, Tp) -> rows (R, T, k, Tp),
    rows[r, i, a] = q[r, a] @ table[r, i] (``torch.matmul(q.unsqueeze(1), table)``, one pass each way)."""

    @staticmethod
    def forward(ctx, q, table):
        R, T, hs, Tp = table.shape
        k = q.shape[1]
        q, table = q.contiguous(), table.contiguous()
        rows = q.new_empty(R, T, k, Tp)
        library().ll_token_rows_forward(q.data_ptr(), table.data_ptr(), R, T, k, hs, rows.data_ptr(),
                                        torch.get_num_threads())
        ctx.save_for_backward(q, table)
        return rows

    @staticmethod
    def backward(ctx, grad):
        q, table = ctx.saved_tensors
        R, T, hs, Tp = table.shape
        k = q.shape[1]
        grad = grad.contiguous()
        grad_q, grad_table = torch.empty_like(q), torch.empty_like(table)
        library().ll_token_rows_backward(q.data_ptr(), table.data_ptr(), grad.data_ptr(), R, T, k, hs,
                                         grad_q.data_ptr(), grad_table.data_ptr(), torch.get_num_threads())
        return grad_q, grad_table


class Dropout(torch.autograd.Function):
    """x * keep_mask(x.shape, p, key); the keep flags kept as bits for the backward."""

    @staticmethod
    def forward(ctx, x, p: float, key: int):
        x = x.contiguous()
        level, scale = drop_scale(p)
        y = torch.empty_like(x)
        bits = _bits(padded(x.numel()), x.device)
        library().ll_dropout_forward(x.data_ptr(), y.data_ptr(), bits.data_ptr(), x.numel(), key, level, scale,
                                     torch.get_num_threads())
        ctx.save_for_backward(bits)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad):
        return _dropout_backward(ctx, grad), None, None


class DropoutAdd(torch.autograd.Function):
    """x + y * keep_mask(y.shape, p, key): the residual add with the dropout of ``y`` (the masks of
    ``Dropout``), one pass; the keep flags kept as bits for the backward."""

    @staticmethod
    def forward(ctx, x, y, p: float, key: int):
        x, y = x.contiguous(), y.contiguous()
        level, scale = drop_scale(p)
        out = torch.empty_like(y)
        bits = _bits(padded(y.numel()), y.device)
        library().ll_dropout_add_forward(x.data_ptr(), y.data_ptr(), out.data_ptr(), bits.data_ptr(), y.numel(), key,
                                         level, scale, torch.get_num_threads())
        ctx.save_for_backward(bits)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad, _dropout_backward(ctx, grad), None, None


def _dropout_backward(ctx, grad: torch.Tensor) -> torch.Tensor:
    """grad * keep_mask * scale from the keep bits a dropout forward saved."""
    bits, = ctx.saved_tensors
    grad = grad.contiguous()
    out = torch.empty_like(grad)
    library().ll_dropout_backward(grad.data_ptr(), out.data_ptr(), bits.data_ptr(), grad.numel(), ctx.scale,
                                  torch.get_num_threads())
    return out


class LayerNorm(torch.autograd.Function):
    """F.layer_norm over the last dimension (eps 1e-5) with per-replica weight and bias (S, d), for
    x (S, ..., d): PyTorch's CPU kernel spends ~40 ns a row on rows of 16."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        S, d = weight.shape
        x = x.contiguous()
        N = x.numel() // (S * d)
        y = torch.empty_like(x)
        mean, rstd = x.new_empty(S, N), x.new_empty(S, N)
        weight, bias = weight.contiguous(), bias.contiguous()
        library().ll_layer_norm_forward(x.data_ptr(), weight.data_ptr(), bias.data_ptr(), S,
                                        N, d, y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), torch.get_num_threads())
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        S, d = weight.shape
        N = x.numel() // (S * d)
        grad = grad.contiguous()
        dx, dw, db = torch.empty_like(x), torch.empty_like(weight), torch.empty_like(weight)
        weight = weight.contiguous()
        library().ll_layer_norm_backward(grad.data_ptr(), x.data_ptr(), weight.data_ptr(), mean.data_ptr(),
                                         rstd.data_ptr(), S, N, d, dx.data_ptr(), dw.data_ptr(), db.data_ptr(),
                                         torch.get_num_threads())
        return dx, dw, db


class CrossEntropy(torch.autograd.Function):
    """Per-replica mean cross-entropy: logits (S, ..., k), targets (S, ...) int64 -> (S,)."""

    @staticmethod
    def forward(ctx, logits, targets):
        S, k = logits.shape[0], logits.shape[-1]
        logits, targets = logits.contiguous(), targets.contiguous()
        N = logits.numel() // (S * k)
        loss = logits.new_empty(S)
        library().ll_cross_entropy_forward(logits.data_ptr(), targets.data_ptr(), S, N, k, loss.data_ptr(),
                                           torch.get_num_threads())
        ctx.save_for_backward(logits, targets)
        return loss

    @staticmethod
    def backward(ctx, grad):
        logits, targets = ctx.saved_tensors
        S, k = logits.shape[0], logits.shape[-1]
        N = logits.numel() // (S * k)
        out = torch.empty_like(logits)
        grad = grad.contiguous()
        library().ll_cross_entropy_backward(logits.data_ptr(), targets.data_ptr(), grad.data_ptr(), S, N,
                                            k, out.data_ptr(), torch.get_num_threads())
        return out, None


# The kernel (C11, OpenMP; built by ``library()``). Layouts and the mask rule are described at its top.
_SOURCE = r"""// Fused CPU attention for learnlab.models.icl_transformer (see _icl_kernel.py for what and why).
//
// Layouts (float32, contiguous): S replicas, B sequences, nh heads of hs, d = nh * hs, T tokens and
// Tp = T rounded up to 16 (rows padded so that every loop over keys is whole 16-float vectors),
// R = S * nh (replica, head) slices, items n = (s * B + b) * nh + h (one (T, T) attention each).
//   qkv   (S, B, T, 3, nh, hs)  the input projection's output, q unscaled
//   table (R, T, hs, Tp)       table[r][i][c][j] = r~_{i-j}[c] (after its dropout), 0 for j > i
//   out   (S, B, T, nh, hs)    the heads' outputs, ready for the output projection
//   P     (S, B, nh, T, T)     softmax pattern (0 above the diagonal): the hook's view and the backward's input
// Dropout masks are a keyed hash of the element's index in the logical tensor (no state, no
// stored mask): keep element e of the draw keyed k where bits16(k, e) >= threshold; the backward
// recomputes them. _icl_kernel.py computes the same bits with torch ops (the fallback).
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;
typedef uint32_t u32;
typedef uint64_t u64;

#define INLINE static inline __attribute__((always_inline))

INLINE i64 pad16(i64 n) { return (n + 15) & ~(i64)15; }

// Loops over keys run in whole blocks of 16 floats (rows are padded to Tp): a loop whose trip count
// the compiler cannot see to be a multiple of the vector width gets a scalar epilogue, which here
// ran as often as the vector body (with scalar expf calls). Reductions keep 16 partial sums.
#define BLOCKS(j0, n) for (i64 j0 = 0; j0 < (n); j0 += 16)
#define SIMD _Pragma("omp simd")

// Horizontal sum and max of 16 lanes as a tree (4 dependent steps, not 15).
INLINE float sum16(const float *acc) {
  float t8[8], t4[4];
  for (int e = 0; e < 8; e++) t8[e] = acc[e] + acc[e + 8];
  for (int e = 0; e < 4; e++) t4[e] = t8[e] + t8[e + 4];
  return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

INLINE float max16(const float *acc) {
  float t8[8], t4[4];
  for (int e = 0; e < 8; e++) t8[e] = acc[e] > acc[e + 8] ? acc[e] : acc[e + 8];
  for (int e = 0; e < 4; e++) t4[e] = t8[e] > t8[e + 4] ? t8[e] : t8[e + 4];
  const float a = t4[0] > t4[2] ? t4[0] : t4[2], b = t4[1] > t4[3] ? t4[1] : t4[3];
  return a > b ? a : b;
}

INLINE float dot_padded(const float *restrict a, const float *restrict b, i64 Lp) {
  float acc[16] = {0};
  BLOCKS(j0, Lp) {
    SIMD for (int jj = 0; jj < 16; jj++) acc[jj] += a[j0 + jj] * b[j0 + jj];
  }
  return sum16(acc);
}

INLINE u32 mix32(u32 x) {  // Wellons' lowbias32: a bijection with low bias
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

INLINE u32 bits16(u32 lo, u32 hi, u64 index) {
  const u32 x = mix32((u32)index ^ lo);
  return mix32(x ^ hi ^ ((u32)(index >> 32) * 0x9E3779B9U)) >> 16;
}

// out[e] = scale where element start + e * step of the draw `key` is kept, else 0, for e < n. The index is
// carried in 32-bit lanes (its low word, and the high word plus a carry), so 16 elements go per vector.
INLINE void mask_row(float *restrict out, i64 n, u64 key, u64 start, u64 step, u32 threshold, float scale) {
  const u32 lo = (u32)key, hi = (u32)(key >> 32), base = (u32)start, base_hi = (u32)(start >> 32), st = (u32)step;
  if (step > 0xFFFF || n > 0xFFFF) {  // e * step may pass 2^32: the 64-bit index
    for (i64 e = 0; e < n; e++) out[e] = bits16(lo, hi, start + (u64)e * step) >= threshold ? scale : 0.0f;
    return;
  }
  i64 e0 = 0;
  for (; e0 + 16 <= n; e0 += 16) {
    SIMD for (u32 jj = 0; jj < 16; jj++) {
      const u32 index = base + ((u32)e0 + jj) * st, index_hi = base_hi + (index < base);
      const u32 x = mix32(index ^ lo);
      out[e0 + jj] = (mix32(x ^ hi ^ (index_hi * 0x9E3779B9U)) >> 16) >= threshold ? scale : 0.0f;
    }
  }
  for (i64 e = e0; e < n; e++) out[e] = bits16(lo, hi, start + (u64)e * step) >= threshold ? scale : 0.0f;
}

typedef uint16_t u16;

// A row's keep flags as bits (one u16 per 16 elements), stored by the forward for the backward.
INLINE void pack_bits(u16 *restrict words, const float *restrict mask, i64 Lp) {
  BLOCKS(j0, Lp) {
    u32 w = 0;
#pragma omp simd reduction(| : w)
    for (u32 jj = 0; jj < 16; jj++) w |= (mask[j0 + jj] != 0.0f ? 1U : 0U) << jj;
    words[j0 / 16] = (u16)w;
  }
}

INLINE void unpack_bits(float *restrict mask, const u16 *restrict words, i64 Lp, float scale) {
  BLOCKS(j0, Lp) {
    const u32 w = words[j0 / 16];
    SIMD for (u32 jj = 0; jj < 16; jj++) mask[j0 + jj] = (w >> jj) & 1U ? scale : 0.0f;
  }
}

// Elements a work unit of a flat pass over n (a multiple of 16): 16384, or in a parallel pass (n > 4 x 16384)
// an even share of each thread's (two units a thread; 16384 x 6.25 had split 4 : 3 on two threads).
INLINE i64 flat_chunk(i64 n, int threads) {
  if (n <= 4 * 16384 || threads <= 1) return 16384;
  const i64 share = pad16((n + 2 * threads - 1) / (2 * threads));
  return share > 16384 ? share : 16384;
}

static float *scratch(i64 floats) {  // 64-byte aligned, whole cache lines, zeroed
  i64 bytes = (floats * (i64)sizeof(float) + 63) / 64 * 64;
  float *p = (float *)aligned_alloc(64, bytes > 0 ? bytes : 64);
  memset(p, 0, bytes > 0 ? bytes : 64);
  return p;
}

// the keep-scale of elements first .. first + n - 1 of the draw `key`
void ll_keep_mask(float *out, i64 n, u64 key, u32 threshold, float scale, u64 first, int threads) {
  const i64 chunk = flat_chunk(n, threads);
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 4 * 16384)
  for (i64 start = 0; start < n; start += chunk)
    mask_row(out + start, n - start < chunk ? n - start : chunk, key, first + (u64)start, 1, threshold, scale);
}

// table[r][i][c][j] = rel[r][i - j][c] * mask(((r T + i) T + j) hs + c) for j <= i, else 0 (j < Tp);
// rel rows `stride` floats apart per r (the first T of max_len rows).
void ll_table_forward(const float *rel, i64 R, i64 stride, i64 T, i64 hs, float *table, u16 *bits, u64 key,
                      u32 threshold, float scale, int dropping, int threads) {
  const i64 Tp = pad16(T);
  // rev[r][c][T - 1 - m] = rel[r][m][c]: row (i, c) of the table is then the contiguous rev[r][c][T-1-i .. T-1]
  float *rev = scratch(R * hs * T);
  for (i64 r = 0; r < R; r++)
    for (i64 m = 0; m < T; m++)
      for (i64 c = 0; c < hs; c++) rev[(r * hs + c) * T + T - 1 - m] = rel[r * stride + m * hs + c];
#pragma omp parallel num_threads(threads)
  {
    float *mask = scratch(Tp);
#pragma omp for schedule(static)
    for (i64 ri = 0; ri < R * T; ri++) {
      const i64 r = ri / T, i = ri % T, Lp = pad16(i + 1);
      for (i64 c = 0; c < hs; c++) {
        float *restrict row = table + (ri * hs + c) * Tp;
        memcpy(row, rev + (r * hs + c) * T + T - 1 - i, (i + 1) * sizeof(float));
        memset(row + i + 1, 0, (Tp - i - 1) * sizeof(float));
        if (dropping) {  // element (r, i, j, c) of the gathered (R, T, T, hs) tensor
          mask_row(mask, Lp, key, (u64)(ri * T) * (u64)hs + (u64)c, (u64)hs, threshold, scale);
          pack_bits(bits + (ri * hs + c) * (Tp / 16), mask, Lp);
          BLOCKS(j0, Lp) {
            SIMD for (int jj = 0; jj < 16; jj++) row[j0 + jj] *= mask[j0 + jj];
          }
        }
      }
    }
    free(mask);
  }
  free(rev);
}

// drel[r][m][c] = sum over i - j = m of dtable[r][i][c][j] * mask (the forward's elements)
void ll_table_backward(const float *dtable, i64 R, i64 stride, i64 T, i64 hs, float *drel, const u16 *bits,
                       float scale, int dropping, int threads) {
  const i64 Tp = pad16(T);
  float *columns = scratch(R * hs * T);  // [r][c][m]
#pragma omp parallel num_threads(threads)
  {
    // acc[T - 1 - m] collects offset m: row i's entry j goes to acc[T - 1 - i + j], consecutive in j (vectors)
    float *mask = scratch(Tp), *acc = scratch(T + Tp);
#pragma omp for schedule(static)
    for (i64 rc = 0; rc < R * hs; rc++) {
      const i64 r = rc / hs, c = rc % hs;
      for (i64 m = 0; m < T + Tp; m++) acc[m] = 0.0f;
      for (i64 i = 0; i < T; i++) {
        const i64 Lp = pad16(i + 1);
        const float *restrict row = dtable + ((r * T + i) * hs + c) * Tp;
        float *restrict out = acc + T - 1 - i;  // entries past j = i read the row's zeros (or dropped ones)
        if (dropping) {
          unpack_bits(mask, bits + ((r * T + i) * hs + c) * (Tp / 16), Lp, scale);
          for (i64 j = 0; j <= i; j++) out[j] += row[j] * mask[j];
        } else {
          for (i64 j = 0; j <= i; j++) out[j] += row[j];
        }
      }
      for (i64 m = 0; m < T; m++) columns[rc * T + m] = acc[T - 1 - m];
    }
    free(mask);
    free(acc);
  }
  // drel written by one thread: the threads' columns c of a row m share its cache line
  for (i64 rc = 0; rc < R * hs; rc++) {
    const i64 r = rc / hs, c = rc % hs;
    for (i64 m = 0; m < T; m++) drel[r * stride + m * hs + c] = columns[rc * T + m];
  }
  free(columns);
}

// softmax over row[0..L) in place, entries L..Lp-1 set to 0. The exponent is clamped at -87 (exp = 1.6e-38,
// 0 next to the row's largest term, which is 1): nothing underflows in the vector expf.
INLINE void softmax_row(float *restrict row, i64 L, i64 Lp) {
  float top16[16];
  for (int jj = 0; jj < 16; jj++) top16[jj] = -3e38f;
  BLOCKS(j0, Lp) {
    const i64 valid = L - j0;
    SIMD for (int jj = 0; jj < 16; jj++) {
      const float v = row[j0 + jj];
      top16[jj] = jj < valid && v > top16[jj] ? v : top16[jj];
    }
  }
  const float top = max16(top16);
  float acc[16] = {0};
  BLOCKS(j0, Lp) {
    float *restrict r = row + j0;
    const i64 valid = L - j0;
    SIMD for (int jj = 0; jj < 16; jj++) {
      const float x = r[jj] - top;
      const float e = expf(x > -87.0f ? (x < 0.0f ? x : 0.0f) : -87.0f);
      r[jj] = jj < valid ? e : 0.0f;
    }
    SIMD for (int jj = 0; jj < 16; jj++) acc[jj] += r[jj];
  }
  const float inv = 1.0f / sum16(acc);
  BLOCKS(j0, Lp) {
    SIMD for (int jj = 0; jj < 16; jj++) row[j0 + jj] *= inv;
  }
}

// Row i of P: its L entries, zeros up to `T` (the whole row for a hook; L alone for the backward, which reads no more).
INLINE void store_pattern(float *restrict Pi, const float *restrict row, i64 L, i64 T) {
  memcpy(Pi, row, L * sizeof(float));
  memset(Pi + L, 0, (T - L) * sizeof(float));
}

// Load item (sb, h): q scaled (T x hs), k transposed (hs x Tp), v (T x hs) or transposed (hs x Tp).
INLINE void load_item(const float *qkv, i64 sb, i64 h, i64 T, i64 Tp, i64 nh, const i64 hs, float qscale,
                      float *restrict Q, float *restrict KT, float *restrict V, float *restrict VT) {
  const i64 d = nh * hs;
  const float *base = qkv + sb * T * 3 * d + h * hs;
  for (i64 t = 0; t < T; t++) {
    const float *row = base + t * 3 * d;
    for (i64 c = 0; c < hs; c++) {
      Q[t * hs + c] = row[c] * qscale;
      KT[c * Tp + t] = row[d + c];
      if (V) V[t * hs + c] = row[2 * d + c];
      if (VT) VT[c * Tp + t] = row[2 * d + c];
    }
  }
}

// Work items of one (replica, head) slice go in groups of up to G sequences: each row i of the relative
// table (hs x Tp floats, and its gradient's accumulator) is read once for the group, not once a sequence.
#define G 4

typedef struct {
  float *Q, *KT, *V, *VT, *dO, *DS, *KEPT, *p, *g, *ds, *mask;  // DS, KEPT: the item's (T, Tp) rows, backward
} Item;

static Item item_buffers(i64 T, i64 hs, int backward) {
  const i64 Tp = pad16(T);
  Item w = {scratch(T * hs), scratch(hs * Tp), NULL, NULL, NULL, NULL, NULL, scratch(Tp), NULL, NULL, scratch(Tp)};
  if (backward) {
    w.VT = scratch(hs * Tp), w.dO = scratch(T * hs), w.DS = scratch(T * Tp), w.KEPT = scratch(T * Tp);
    w.g = scratch(Tp), w.ds = scratch(Tp);
  } else {
    w.V = scratch(Tp * hs);
  }
  return w;
}

static void item_free(Item *w) {
  float *all[] = {w->Q, w->KT, w->V, w->VT, w->dO, w->DS, w->KEPT, w->p, w->g, w->ds, w->mask};
  for (int e = 0; e < 11; e++) free(all[e]);
}

// Work units: (slice, group of up to G consecutive sequences), in slice order.
INLINE i64 groups_per_slice(i64 B) { return (B + G - 1) / G; }

INLINE void attn_forward_group(const float *qkv, i64 s, i64 h, i64 b0, const int ng, i64 B, i64 T, i64 nh,
                               const i64 hs, const float *tab, float *out, float *P, u16 *bits, u64 key,
                               u32 threshold, float dscale, int dropping, int full, Item *w) {
  const i64 Tp = pad16(T), d = nh * hs;
  for (int g = 0; g < ng; g++)
    load_item(qkv, s * B + b0 + g, h, T, Tp, nh, hs, 1.0f / sqrtf((float)hs), w[g].Q, w[g].KT, w[g].V, NULL);
  for (i64 i = 0; i < T; i++) {
    const i64 L = i + 1, Lp = pad16(L);
    const float *tab_i = tab + i * hs * Tp;
    BLOCKS(j0, Lp) {  // q_i . (k_j + r~_ij) for 16 keys j of every sequence of the group
      float acc[G][16];
      memset(acc, 0, sizeof acc);
      for (i64 c = 0; c < hs; c++) {
        const float *restrict rt = tab_i + c * Tp + j0;
        for (int g = 0; g < ng; g++) {
          const float qc = w[g].Q[i * hs + c];
          const float *restrict kt = w[g].KT + c * Tp + j0;
          SIMD for (int jj = 0; jj < 16; jj++) acc[g][jj] += qc * (kt[jj] + rt[jj]);
        }
      }
      for (int g = 0; g < ng; g++) memcpy(w[g].p + j0, acc[g], sizeof acc[g]);
    }
    for (int g = 0; g < ng; g++) {
      const i64 sb = s * B + b0 + g, n = sb * nh + h;
      float *restrict row = w[g].p;
      softmax_row(row, L, Lp);
      if (P) store_pattern(P + (n * T + i) * T, row, L, full ? T : L);
      if (dropping) {
        mask_row(w[g].mask, Lp, key, (u64)((n * T + i) * T), 1, threshold, dscale);
        pack_bits(bits + (n * T + i) * (Tp / 16), w[g].mask, Lp);
        BLOCKS(j0, Lp) {
          SIMD for (int jj = 0; jj < 16; jj++) row[j0 + jj] *= w[g].mask[j0 + jj];
        }
      }
      float acc[4][hs];  // four partial sums: the FMAs of consecutive keys do not wait on each other
      memset(acc, 0, sizeof acc);
      BLOCKS(j0, Lp) {
        for (i64 jj = 0; jj < 16; jj += 4)
          for (int u = 0; u < 4; u++) {
            const float pj = row[j0 + jj + u];
            const float *restrict vj = w[g].V + (j0 + jj + u) * hs;
            SIMD for (i64 c = 0; c < hs; c++) acc[u][c] += pj * vj[c];
          }
      }
      float *o = out + (sb * T + i) * d + h * hs;
      SIMD for (i64 c = 0; c < hs; c++) o[c] = (acc[0][c] + acc[1][c]) + (acc[2][c] + acc[3][c]);
    }
  }
}

void ll_attn_forward(const float *qkv, i64 S, i64 B, i64 T, i64 nh, i64 hs, const float *table, float *out, float *P,
                     u16 *bits, u64 key, u32 threshold, float dscale, int dropping, int full, int threads) {
  const i64 Tp = pad16(T), groups = groups_per_slice(B);
#pragma omp parallel num_threads(threads)
  {
    Item w[G];
    for (int g = 0; g < G; g++) w[g] = item_buffers(T, hs, 0);
#pragma omp for schedule(static)
    for (i64 unit = 0; unit < S * nh * groups; unit++) {
      const i64 r = unit / groups, b0 = (unit % groups) * G, s = r / nh, h = r % nh;
      const int ng = B - b0 < G ? (int)(B - b0) : G;
      const float *tab = table + r * T * hs * Tp;
#define FORWARD(NG, HS) \
  attn_forward_group(qkv, s, h, b0, NG, B, T, nh, HS, tab, out, P, bits, key, threshold, dscale, dropping, full, w)
      if (ng == G && hs == 16)
        FORWARD(G, 16);
      else if (ng == G)
        FORWARD(G, hs);
      else
        FORWARD(ng, hs);
#undef FORWARD
    }
    for (int g = 0; g < G; g++) item_free(&w[g]);
  }
}

// Work units of a backward that sums over the batch into per-slice accumulators of `size` floats:
// slices x chunks of the batch, chunk 0 of a slice writing into `accumulators`, chunk c > 0 into
// scratch, added in afterwards.
typedef struct {
  i64 slices, chunks, size;
  float *accumulators, *extra;
} Units;

static Units units_for(i64 slices, i64 B, i64 size, float *accumulators, int threads) {
  Units u = {slices, 1, size, accumulators, NULL};
  if (slices < threads) u.chunks = (threads + slices - 1) / slices;
  if (u.chunks > B) u.chunks = B;
  if (u.chunks > 1) u.extra = scratch(slices * (u.chunks - 1) * size);
  return u;
}

static float *unit_accumulator(const Units *u, i64 unit) {
  const i64 slice = unit / u->chunks, chunk = unit % u->chunks;
  float *acc = chunk == 0 ? u->accumulators + slice * u->size
                          : u->extra + (slice * (u->chunks - 1) + chunk - 1) * u->size;
  memset(acc, 0, u->size * sizeof(float));
  return acc;
}

static void units_reduce(Units *u) {
  if (!u->extra) return;
  for (i64 slice = 0; slice < u->slices; slice++)
    for (i64 chunk = 1; chunk < u->chunks; chunk++) {
      float *restrict target = u->accumulators + slice * u->size;
      const float *restrict part = u->extra + (slice * (u->chunks - 1) + chunk - 1) * u->size;
#pragma omp simd
      for (i64 e = 0; e < u->size; e++) target[e] += part[e];
    }
  free(u->extra);
}

// d loss / d x_j = sum over i >= j of a[i][j] y_i, for every key j: a (T, Tp) rows (zero for j > i), y (T, hs); written
// to out[j * stride + c]. Sixteen keys at a time with their hs sums in registers (no read-modify-write a row).
INLINE void transposed_product(const float *restrict a, const float *restrict y, i64 T, const i64 hs, float *out,
                               i64 stride) {
  const i64 Tp = pad16(T);
  BLOCKS(j0, Tp) {
    float acc[hs][16];
    memset(acc, 0, sizeof acc);
    for (i64 i = j0; i < T; i++) {
      const float *restrict row = a + i * Tp + j0, *restrict yi = y + i * hs;
      for (i64 c = 0; c < hs; c++) {
        const float yc = yi[c];
        SIMD for (int jj = 0; jj < 16; jj++) acc[c][jj] += yc * row[jj];
      }
    }
    for (int jj = 0; jj < 16 && j0 + jj < T; jj++)
      for (i64 c = 0; c < hs; c++) out[(j0 + jj) * stride + c] = acc[c][jj];
  }
}

INLINE void attn_backward_group(const float *qkv, const float *tab, const float *P, const float *gout, i64 s, i64 h,
                                i64 b0, const int ng, i64 B, i64 T, i64 nh, const i64 hs, float *gqkv, float *gtab,
                                const u16 *bits, float dscale, int dropping, Item *w) {
  const i64 Tp = pad16(T), d = nh * hs;
  const float qscale = 1.0f / sqrtf((float)hs);
  for (int g = 0; g < ng; g++) {
    const i64 sb = s * B + b0 + g;
    load_item(qkv, sb, h, T, Tp, nh, hs, qscale, w[g].Q, w[g].KT, NULL, w[g].VT);
    for (i64 t = 0; t < T; t++) memcpy(w[g].dO + t * hs, gout + (sb * T + t) * d + h * hs, hs * sizeof(float));
  }
  for (i64 i = 0; i < T; i++) {
    const i64 L = i + 1, Lp = pad16(L);
    for (int g = 0; g < ng; g++) {  // the softmax backward of row i, per sequence
      const i64 n = (s * B + b0 + g) * nh + h;
      float *restrict p = w[g].p, *restrict ds = w[g].DS + i * Tp, *restrict kept = w[g].KEPT + i * Tp;
      float *restrict mask = w[g].mask;
      memcpy(p, P + (n * T + i) * T, L * sizeof(float));
      for (i64 j = L; j < Lp; j++) p[j] = 0.0f;
      const float *restrict dOi = w[g].dO + i * hs;
      if (dropping) unpack_bits(mask, bits + (n * T + i) * (Tp / 16), Lp, dscale);
      float dot16[16] = {0};
      BLOCKS(j0, Lp) {  // d loss / d p_ij = mask_ij (dO_i . v_j)
        float acc[16] = {0};
        for (i64 c = 0; c < hs; c++) {
          const float oc = dOi[c];
          const float *restrict vt = w[g].VT + c * Tp + j0;
          SIMD for (int jj = 0; jj < 16; jj++) acc[jj] += oc * vt[jj];
        }
        if (dropping) {
          SIMD for (int jj = 0; jj < 16; jj++) {
            acc[jj] *= mask[j0 + jj];
            kept[j0 + jj] = p[j0 + jj] * mask[j0 + jj];
          }
        } else {
          SIMD for (int jj = 0; jj < 16; jj++) kept[j0 + jj] = p[j0 + jj];
        }
        SIMD for (int jj = 0; jj < 16; jj++) {
          ds[j0 + jj] = acc[jj];
          dot16[jj] += p[j0 + jj] * acc[jj];
        }
      }
      const float dot = sum16(dot16);
      BLOCKS(j0, Lp) {  // d loss / d score_ij
        SIMD for (int jj = 0; jj < 16; jj++) ds[j0 + jj] = p[j0 + jj] * (ds[j0 + jj] - dot);
      }
    }
    // dq_i = sum_j ds_ij (k_j + r~_ij), and the table's gradient ds_ij q_i summed over the group
    const float *tab_i = tab + i * hs * Tp;
    float *gtab_i = gtab + i * hs * Tp;
    for (i64 c = 0; c < hs; c++) {
      const float *restrict rt = tab_i + c * Tp;
      float *restrict dr = gtab_i + c * Tp;
      float acc[G][16];
      memset(acc, 0, sizeof acc);
      BLOCKS(j0, Lp) {
        float sum[16];
        SIMD for (int jj = 0; jj < 16; jj++) sum[jj] = dr[j0 + jj];
        for (int g = 0; g < ng; g++) {
          const float qc = w[g].Q[i * hs + c];
          const float *restrict ds = w[g].DS + i * Tp + j0, *restrict kt = w[g].KT + c * Tp + j0;
          float *restrict ag = acc[g];
          SIMD for (int jj = 0; jj < 16; jj++) {
            ag[jj] += ds[jj] * (kt[jj] + rt[j0 + jj]);
            sum[jj] += ds[jj] * qc;
          }
        }
        SIMD for (int jj = 0; jj < 16; jj++) dr[j0 + jj] = sum[jj];
      }
      for (int g = 0; g < ng; g++) gqkv[((s * B + b0 + g) * T + i) * 3 * d + h * hs + c] = sum16(acc[g]) * qscale;
    }
  }
  for (int g = 0; g < ng; g++) {  // dk_j = sum_i ds_ij q_i, dv_j = sum_i kept_ij dO_i
    float *gbase = gqkv + (s * B + b0 + g) * T * 3 * d + h * hs;
    transposed_product(w[g].DS, w[g].Q, T, hs, gbase + d, 3 * d);
    transposed_product(w[g].KEPT, w[g].dO, T, hs, gbase + 2 * d, 3 * d);
  }
}

// gqkv (S, B, T, 3d) and gtable (R, T, hs, Tp) (summed over the batch) from gout (S, B, T, nh, hs)
void ll_attn_backward(const float *qkv, const float *table, const float *P, const float *gout, i64 S, i64 B, i64 T,
                      i64 nh, i64 hs, float *gqkv, float *gtable, const u16 *bits, float dscale, int dropping,
                      int threads) {
  const i64 Tp = pad16(T);
  Units u = units_for(S * nh, B, T * hs * Tp, gtable, threads);
#pragma omp parallel num_threads(threads)
  {
    Item w[G];
    for (int g = 0; g < G; g++) w[g] = item_buffers(T, hs, 1);
#pragma omp for schedule(static)
    for (i64 unit = 0; unit < u.slices * u.chunks; unit++) {
      const i64 r = unit / u.chunks, chunk = unit % u.chunks, s = r / nh, h = r % nh;
      float *gtab = unit_accumulator(&u, unit);
      const float *tab = table + r * T * hs * Tp;
      const i64 first = chunk * B / u.chunks, last = (chunk + 1) * B / u.chunks;
      for (i64 b0 = first; b0 < last; b0 += G) {
        const int ng = last - b0 < G ? (int)(last - b0) : G;
#define BACKWARD(NG, HS) \
  attn_backward_group(qkv, tab, P, gout, s, h, b0, NG, B, T, nh, HS, gqkv, gtab, bits, dscale, dropping, w)
        if (ng == G && hs == 16)
          BACKWARD(G, 16);
        else if (ng == G)
          BACKWARD(G, hs);
        else
          BACKWARD(ng, hs);
#undef BACKWARD
      }
    }
    for (int g = 0; g < G; g++) item_free(&w[g]);
  }
  units_reduce(&u);
}

// Layer 1 on token tables (k tokens): score_ij = rows[r][i][x_i][j] + pairs[r][x_i][x_j], rows (R, T, k, Tp),
// pairs (R, k, k), tokens (S, B, T); out (S, B, T, nh, k): the dropped-out pattern's mass on each token.
void ll_token_forward(const float *rows, const float *pairs, const i64 *tokens, i64 S, i64 B, i64 T, i64 nh, i64 k,
                      float *out, float *P, u16 *bits, u64 key, u32 threshold, float dscale, int dropping, int full,
                      int threads) {
  const i64 N = S * B * nh, Tp = pad16(T);
#pragma omp parallel num_threads(threads)
  {
    float *pv = scratch(k * Tp), *hot = scratch(k * Tp), *row = scratch(Tp), *mask = scratch(Tp);
#pragma omp for schedule(static)
    for (i64 n = 0; n < N; n++) {
      const i64 h = n % nh, sb = n / nh, s = sb / B, r = s * nh + h;
      const i64 *x = tokens + sb * T;
      for (i64 a = 0; a < k; a++)
        for (i64 j = 0; j < T; j++) {
          pv[a * Tp + j] = pairs[(r * k + a) * k + x[j]];
          hot[a * Tp + j] = x[j] == a ? 1.0f : 0.0f;
        }
      for (i64 i = 0; i < T; i++) {
        const i64 L = i + 1, Lp = pad16(L), a = x[i];
        const float *restrict rw = rows + ((r * T + i) * k + a) * Tp, *restrict pa = pv + a * Tp;
        BLOCKS(j0, Lp) {
          SIMD for (int jj = 0; jj < 16; jj++) row[j0 + jj] = rw[j0 + jj] + pa[j0 + jj];
        }
        softmax_row(row, L, Lp);
        if (P) store_pattern(P + (n * T + i) * T, row, L, full ? T : L);
        if (dropping) {
          mask_row(mask, Lp, key, (u64)((n * T + i) * T), 1, threshold, dscale);
          pack_bits(bits + (n * T + i) * (Tp / 16), mask, Lp);
          BLOCKS(j0, Lp) {
            SIMD for (int jj = 0; jj < 16; jj++) row[j0 + jj] *= mask[j0 + jj];
          }
        }
        float *o = out + ((sb * T + i) * nh + h) * k;
        for (i64 c = 0; c < k; c++) o[c] = dot_padded(row, hot + c * Tp, Lp);
      }
    }
    free(pv), free(hot), free(row), free(mask);
  }
}

// grows (R, T, k, Tp) and gpairs (R, k, k), both summed over the batch, from gout (S, B, T, nh, k)
void ll_token_backward(const float *P, const i64 *tokens, const float *gout, i64 S, i64 B, i64 T, i64 nh, i64 k,
                       float *grows, float *gpairs, const u16 *bits, float dscale, int dropping, int threads) {
  const i64 Tp = pad16(T), rows_size = T * k * Tp, size = rows_size + k * k;
  float *both = scratch(S * nh * size);  // per slice: its rows' gradient, then its pairs'
  Units u = units_for(S * nh, B, size, both, threads);
#pragma omp parallel num_threads(threads)
  {
    float *hot = scratch(k * Tp), *p = scratch(Tp), *g = scratch(Tp), *mask = scratch(Tp);
#pragma omp for schedule(static)
    for (i64 unit = 0; unit < u.slices * u.chunks; unit++) {
      const i64 r = unit / u.chunks, chunk = unit % u.chunks, s = r / nh, h = r % nh;
      float *acc = unit_accumulator(&u, unit), *acc_pairs = acc + rows_size;
      for (i64 b = chunk * B / u.chunks; b < (chunk + 1) * B / u.chunks; b++) {
        const i64 sb = s * B + b, n = sb * nh + h;
        const i64 *x = tokens + sb * T;
        for (i64 a = 0; a < k; a++)
          for (i64 j = 0; j < T; j++) hot[a * Tp + j] = x[j] == a ? 1.0f : 0.0f;
        for (i64 i = 0; i < T; i++) {
          const i64 L = i + 1, Lp = pad16(L), a = x[i];
          memcpy(p, P + (n * T + i) * T, L * sizeof(float));
          for (i64 j = L; j < Lp; j++) p[j] = 0.0f;
          const float *go = gout + ((sb * T + i) * nh + h) * k;
          if (dropping) unpack_bits(mask, bits + (n * T + i) * (Tp / 16), Lp, dscale);
          float dot16[16] = {0};
          BLOCKS(j0, Lp) {  // g_ij = d loss / d p_ij = mask_ij gout_i[x_j]
            float acc[16] = {0};
            for (i64 c = 0; c < k; c++) {
              const float gc = go[c];
              const float *restrict hc = hot + c * Tp + j0;
              SIMD for (int jj = 0; jj < 16; jj++) acc[jj] += gc * hc[jj];
            }
            if (dropping) {
              SIMD for (int jj = 0; jj < 16; jj++) acc[jj] *= mask[j0 + jj];
            }
            SIMD for (int jj = 0; jj < 16; jj++) {
              g[j0 + jj] = acc[jj];
              dot16[jj] += p[j0 + jj] * acc[jj];
            }
          }
          const float dot = sum16(dot16);
          float *restrict gr = acc + (i * k + a) * Tp;
          BLOCKS(j0, Lp) {
            SIMD for (int jj = 0; jj < 16; jj++) {
              const i64 j = j0 + jj;
              g[j] = p[j] * (g[j] - dot);  // d loss / d score_ij
              gr[j] += g[j];
            }
          }
          for (i64 c = 0; c < k; c++) acc_pairs[a * k + c] += dot_padded(g, hot + c * Tp, Lp);
        }
      }
    }
    free(hot), free(p), free(g), free(mask);
  }
  units_reduce(&u);
  for (i64 r = 0; r < S * nh; r++) {
    memcpy(grows + r * rows_size, both + r * size, rows_size * sizeof(float));
    memcpy(gpairs + r * k * k, both + r * size + rows_size, k * k * sizeof(float));
  }
  free(both);
}

// Layer 1's score rows for every token: rows[r][i][a][j] = sum_c q[r][a][c] table[r][i][c][j], q (R, k, hs),
// table (R, T, hs, Tp), rows (R, T, k, Tp) (a batch of T products (k x hs) @ (hs x Tp) that MKL takes ~0.15 ms
// forward and ~0.75 ms backward for).
void ll_token_rows_forward(const float *q, const float *table, i64 R, i64 T, i64 k, i64 hs, float *rows,
                           int threads) {
  const i64 Tp = pad16(T);
#pragma omp parallel for num_threads(threads) schedule(static) if (R * T * k * hs * Tp > (1 << 21))
  for (i64 ri = 0; ri < R * T; ri++) {
    const i64 r = ri / T;
    const float *tab = table + ri * hs * Tp;
    for (i64 a = 0; a < k; a++) {
      const float *qa = q + (r * k + a) * hs;
      float *out = rows + (ri * k + a) * Tp;
      BLOCKS(j0, Tp) {
        float acc[16] = {0};
        for (i64 c = 0; c < hs; c++) {
          const float qc = qa[c];
          const float *restrict t = tab + c * Tp + j0;
          SIMD for (int jj = 0; jj < 16; jj++) acc[jj] += qc * t[jj];
        }
        memcpy(out + j0, acc, sizeof acc);
      }
    }
  }
}

// gq[r][a][c] = sum over i, j of grows[r][i][a][j] table[r][i][c][j]; gtable[r][i][c][j] = sum_a q[r][a][c] grows[r][i][a][j]
void ll_token_rows_backward(const float *q, const float *table, const float *grows, i64 R, i64 T, i64 k, i64 hs,
                            float *gq, float *gtable, int threads) {
  const i64 Tp = pad16(T);
#pragma omp parallel for num_threads(threads) schedule(static) if (R > 1 && R * T * k * hs * Tp > (1 << 21))
  for (i64 r = 0; r < R; r++) {
    float *gqr = gq + r * k * hs;
    const float *qr = q + r * k * hs;
    for (i64 e = 0; e < k * hs; e++) gqr[e] = 0.0f;
    for (i64 i = 0; i < T; i++) {
      const i64 ri = r * T + i;
      const float *tab = table + ri * hs * Tp, *g = grows + ri * k * Tp;
      float *gt = gtable + ri * hs * Tp;
      for (i64 c = 0; c < hs; c++) {
        const float *restrict t = tab + c * Tp;
        float *restrict out = gt + c * Tp;
        BLOCKS(j0, Tp) {
          float acc[16] = {0};
          for (i64 a = 0; a < k; a++) {
            const float qac = qr[a * hs + c];
            const float *restrict ga = g + a * Tp + j0;
            SIMD for (int jj = 0; jj < 16; jj++) acc[jj] += qac * ga[jj];
          }
          memcpy(out + j0, acc, sizeof acc);
        }
        for (i64 a = 0; a < k; a++) gqr[a * hs + c] += dot_padded(g + a * Tp, t, Tp);
      }
    }
  }
}

// LayerNorm over the last dimension d of x (S, N, d) with per-replica weight and bias (S, d), eps 1e-5
// (F.layer_norm's): y, and the rows' mean and 1 / std (S, N) for the backward.
INLINE void layer_norm_rows(const float *x, const float *w, const float *b, i64 N, const i64 d, float *y,
                            float *mean, float *rstd) {
  for (i64 n = 0; n < N; n++) {
    const float *restrict xr = x + n * d;
    float *restrict yr = y + n * d;
    float total = 0.0f;
    SIMD for (i64 c = 0; c < d; c++) total += xr[c];
    const float mu = total / (float)d;
    float squares = 0.0f;
    SIMD for (i64 c = 0; c < d; c++) squares += (xr[c] - mu) * (xr[c] - mu);
    const float r = 1.0f / sqrtf(squares / (float)d + 1e-5f);
    SIMD for (i64 c = 0; c < d; c++) yr[c] = (xr[c] - mu) * r * w[c] + b[c];
    mean[n] = mu, rstd[n] = r;
  }
}

void ll_layer_norm_forward(const float *x, const float *weight, const float *bias, i64 S, i64 N, i64 d, float *y,
                           float *mean, float *rstd, int threads) {
  // rows a work unit (no division a row): up to 1024, four units a thread where N allows (7 units of 1024 of
  // 6400 rows had split 4 : 3 on two threads)
  i64 chunk = (N + 4 * threads - 1) / (4 * threads);
  chunk = chunk > 1024 ? 1024 : chunk < 64 ? 64 : chunk;
  const i64 chunks = (N + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(static) if (S * N * d > 65536)
  for (i64 unit = 0; unit < S * chunks; unit++) {
    const i64 s = unit / chunks, n0 = (unit % chunks) * chunk, rows = N - n0 < chunk ? N - n0 : chunk;
    const i64 off = s * N + n0;
    if (d == 16)
      layer_norm_rows(x + off * d, weight + s * d, bias + s * d, rows, 16, y + off * d, mean + off, rstd + off);
    else
      layer_norm_rows(x + off * d, weight + s * d, bias + s * d, rows, d, y + off * d, mean + off, rstd + off);
  }
}

INLINE void layer_norm_backward_rows(const float *dy, const float *x, const float *restrict w, const float *mean,
                                     const float *rstd, i64 first, i64 N, const i64 d, float *dx, float *restrict dw,
                                     float *restrict db) {
  for (i64 sn = first; sn < first + N; sn++) {
    const float *restrict xr = x + sn * d, *restrict gr = dy + sn * d;
    float *restrict out = dx + sn * d;
    const float mu = mean[sn], r = rstd[sn];
    float a = 0.0f, bsum = 0.0f;  // mean of w dy and of w dy xhat
    SIMD for (i64 c = 0; c < d; c++) {
      const float xhat = (xr[c] - mu) * r, g = gr[c] * w[c];
      a += g;
      bsum += g * xhat;
      dw[c] += gr[c] * xhat;
      db[c] += gr[c];
    }
    a /= (float)d, bsum /= (float)d;
    SIMD for (i64 c = 0; c < d; c++) out[c] = r * (gr[c] * w[c] - a - (xr[c] - mu) * r * bsum);
  }
}

// dx (S, N, d), dweight and dbias (S, d) from dy; the replica's rows summed in order (one thread a replica)
void ll_layer_norm_backward(const float *dy, const float *x, const float *weight, const float *mean, const float *rstd,
                            i64 S, i64 N, i64 d, float *dx, float *dweight, float *dbias, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (S > 1 && S * N * d > 65536)
  for (i64 s = 0; s < S; s++) {
    float *restrict dw = dweight + s * d, *restrict db = dbias + s * d;
    for (i64 c = 0; c < d; c++) dw[c] = 0.0f, db[c] = 0.0f;
    // d stays a variable here: its constant 16 changes the order of the row sums (and the last bits of dx)
    layer_norm_backward_rows(dy, x, weight + s * d, mean, rstd, s * N, N, d, dx, dw, db);
  }
}

// Cross-entropy of logits (S, N, k) against targets (S, N), averaged over each replica's N rows: loss (S);
// the backward's d loss_s / d logits = (softmax - one_hot) / N, scaled by the loss gradient g_s.
void ll_cross_entropy_forward(const float *logits, const i64 *targets, i64 S, i64 N, i64 k, float *loss, int threads) {
  for (i64 s = 0; s < S; s++) {
    double total = 0.0;
    if (k == 2) {  // this model's case: log(1 + exp(other - target)), a vector over rows
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total) if (N > 65536)
      for (i64 n0 = 0; n0 < N; n0 += 4096) {
        float part = 0.0f;
        SIMD for (i64 n = n0; n < (N < n0 + 4096 ? N : n0 + 4096); n++) {
          const float *row = logits + (s * N + n) * 2;
          const i64 t = targets[s * N + n];
          const float x = (t ? row[0] : row[1]) - (t ? row[1] : row[0]);  // other - target
          part += (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
        }
        total += (double)part;
      }
    } else {
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total) if (N * k > 65536)
      for (i64 n = 0; n < N; n++) {
        const float *row = logits + (s * N + n) * k;
        float top = row[0];
        for (i64 c = 1; c < k; c++) top = row[c] > top ? row[c] : top;
        float sum = 0.0f;
        for (i64 c = 0; c < k; c++) sum += expf(row[c] - top);
        total += (double)(top + logf(sum) - row[targets[s * N + n]]);
      }
    }
    loss[s] = (float)(total / (double)N);
  }
}

void ll_cross_entropy_backward(const float *logits, const i64 *targets, const float *grad_loss, i64 S, i64 N, i64 k,
                               float *grad, int threads) {
  if (k == 2) {  // d/d logit_c = (softmax_c - [c = target]) g / N, with softmax_1 = sigmoid(l1 - l0)
#pragma omp parallel for num_threads(threads) schedule(static) if (S * N > 65536)
    for (i64 s = 0; s < S; s++) {
      const float scale = grad_loss[s] / (float)N;
      SIMD for (i64 n = 0; n < N; n++) {
        const float *row = logits + (s * N + n) * 2;
        const float p1 = 1.0f / (1.0f + expf(row[0] - row[1]));
        const float d1 = (p1 - (targets[s * N + n] ? 1.0f : 0.0f)) * scale;
        grad[(s * N + n) * 2] = -d1, grad[(s * N + n) * 2 + 1] = d1;
      }
    }
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static) if (S * N * k > 65536)
  for (i64 sn = 0; sn < S * N; sn++) {
    const i64 s = sn / N;
    const float *row = logits + sn * k;
    float *out = grad + sn * k;
    float top = row[0];
    for (i64 c = 1; c < k; c++) top = row[c] > top ? row[c] : top;
    float sum = 0.0f;
    for (i64 c = 0; c < k; c++) sum += (out[c] = expf(row[c] - top));
    const float scale = grad_loss[s] / (float)N / sum;
    for (i64 c = 0; c < k; c++) out[c] *= scale;
    out[targets[sn]] -= grad_loss[s] / (float)N;
  }
}

// One chunk of a flat dropout: elements start .. start + m - 1's mask (scale or 0, zero-padded to 16)
// and its keep bits.
static void dropout_chunk(float *mask, u16 *bits, i64 start, i64 m, u64 key, u32 threshold, float scale) {
  mask_row(mask, m, key, (u64)start, 1, threshold, scale);
  for (i64 e = m; e < pad16(m); e++) mask[e] = 0.0f;
  pack_bits(bits + start / 16, mask, pad16(m));
}

// A flat pass goes over a work unit SUB elements at a time, its mask (4 kB) staying in L1 between its passes
// (a unit's whole 64 kB mask had gone to L2 and back for each).
#define SUB 1024
#define SUBCHUNKS(e0, me, m) \
  for (i64 e0 = 0, me = (m) < SUB ? (m) : SUB; e0 < (m); e0 += SUB, me = (m) - e0 < SUB ? (m) - e0 : SUB)

// Inverted dropout y = x * mask(key), the keep flags stored as bits (ceil(n / 16) u16) for the backward.
void ll_dropout_forward(const float *x, float *y, u16 *bits, i64 n, u64 key, u32 threshold, float scale, int threads) {
  const i64 chunk = flat_chunk(n, threads);
#pragma omp parallel num_threads(threads) if (n > 4 * 16384)
  {
    float *mask = scratch(SUB);
#pragma omp for schedule(static)
    for (i64 start = 0; start < n; start += chunk) {
      const i64 m = n - start < chunk ? n - start : chunk;
      SUBCHUNKS(e0, me, m) {
        dropout_chunk(mask, bits, start + e0, me, key, threshold, scale);
        const float *restrict xs = x + start + e0;
        float *restrict ys = y + start + e0;
        SIMD for (i64 e = 0; e < me; e++) ys[e] = xs[e] * mask[e];
      }
    }
    free(mask);
  }
}

// out = x + y * mask(key): the residual add with y's dropout (keep flags as bits, as ll_dropout_forward).
void ll_dropout_add_forward(const float *x, const float *y, float *out, u16 *bits, i64 n, u64 key, u32 threshold,
                            float scale, int threads) {
  const i64 chunk = flat_chunk(n, threads);
#pragma omp parallel num_threads(threads) if (n > 4 * 16384)
  {
    float *mask = scratch(SUB);
#pragma omp for schedule(static)
    for (i64 start = 0; start < n; start += chunk) {
      const i64 m = n - start < chunk ? n - start : chunk;
      SUBCHUNKS(e0, me, m) {
        dropout_chunk(mask, bits, start + e0, me, key, threshold, scale);
        const float *restrict xs = x + start + e0, *restrict ys = y + start + e0;
        float *restrict os = out + start + e0;
        // the product rounded before the add (no FMA): the numbers of a dropout, then an add
        SIMD for (i64 e = 0; e < me; e++) mask[e] *= ys[e];
        SIMD for (i64 e = 0; e < me; e++) os[e] = xs[e] + mask[e];
      }
    }
    free(mask);
  }
}

void ll_dropout_backward(const float *g, float *out, const u16 *bits, i64 n, float scale, int threads) {
  const i64 chunk = flat_chunk(n, threads);
#pragma omp parallel num_threads(threads) if (n > 4 * 16384)
  {
    float *mask = scratch(SUB);
#pragma omp for schedule(static)
    for (i64 start = 0; start < n; start += chunk) {
      const i64 m = n - start < chunk ? n - start : chunk;
      SUBCHUNKS(e0, me, m) {
        unpack_bits(mask, bits + (start + e0) / 16, pad16(me), scale);
        const float *restrict gs = g + start + e0;
        float *restrict os = out + start + e0;
        SIMD for (i64 e = 0; e < me; e++) os[e] = gs[e] * mask[e];
      }
    }
    free(mask);
  }
}

// Evaluation of a two-layer attention-only model at the last position, per sequence (eval mode, no
// dropout), from the tables probes.markov.transformer_last_position builds (S replicas, nh1 heads in
// layer 1, nh2 in layer 2, k tokens, m = k (1 + nh1) stream coordinates, d model width):
//   counts (S nh1, N, k, k, T)  [c][a][i] = sum over keys j <= i holding token c of exp(q[a] . r_{i-j} - row max)
//   expP (S nh1, k, T, Tp) the exp() table itself (for the probes), expA (S nh1, k, k) exp(q[a] . k[c] - row max)
//   gram (S, m, m) of the centred basis / d; qmap, kmap, vmap (S, m, d) with shifts (S, 3d); relT (S, nh2, hs2, Tp)
//   r_{T-1-j} transposed; basis (S, m, d); wout (S, d, d); lnw, lnb (S, d); head (S, d, k); tokens (N, T)
//   follows (N, T) or NULL
// Out: logits (S, N, k), previous (S, N) (best head's mean attention to the previous token), induction
// (S, N) (last query's layer-2 attention on `follows`, mean over heads), and for sequence 0 head 0's layer-1
// pattern first1 (S, T, T) and layer-2 last-query pattern first2 (S, T). Returns 1 where a layer-1 row's
// mass underflowed (the caller then takes the exact path), else 0.
int ll_eval_two_layer(const float *counts, const float *expP, const float *expA, const float *gram, const float *qmap,
                      const float *kmap, const float *vmap, const float *shifts, const float *relT, const float *basis,
                      const float *wout, const float *lnw, const float *lnb, const float *head, const i64 *tokens,
                      const float *follows, i64 S, i64 N, i64 T, i64 nh1, i64 nh2, i64 k, i64 d, float *logits,
                      float *previous, float *induction, float *first1, float *first2, int threads) {
  const i64 Tp = pad16(T), m = k * (1 + nh1), hs2 = d / nh2;
  int underflow = 0;
#pragma omp parallel num_threads(threads) reduction(| : underflow)
  {
    float *gT = scratch(m * Tp), *sigma = scratch(Tp), *u = scratch(m), *p = scratch(Tp), *score = scratch(Tp);
    float *avg = scratch(m), *q = scratch(d), *mixed = scratch(d), *x = scratch(d), *y = scratch(d), *f = scratch(Tp);
#pragma omp for schedule(static)
    for (i64 sn = 0; sn < S * N; sn++) {
      const i64 s = sn / N, n = sn % N;
      const i64 *xs = tokens + n * T;
      memset(gT, 0, m * Tp * sizeof(float));
      float best_previous = 0.0f;
      for (i64 h = 0; h < nh1; h++) {  // layer 1: each query's attention mass on each token
        const i64 r = s * nh1 + h;
        const float *block = counts + (r * N + n) * k * k * T;  // [c][a][i]
        float prev_sum = 0.0f;
        for (i64 i = 0; i < T; i++) {
          const i64 a = xs[i];
          const float *pair = expA + (r * k + a) * k;
          float total = 0.0f;
          for (i64 c = 0; c < k; c++) total += (gT[(k + h * k + c) * Tp + i] = pair[c] * block[(c * k + a) * T + i]);
          if (!(total > 1e-30f)) underflow = 1;
          const float inv = 1.0f / total;
          for (i64 c = 0; c < k; c++) gT[(k + h * k + c) * Tp + i] *= inv;
          const float *row = expP + ((r * k + a) * T + i) * Tp;
          if (i > 0) prev_sum += row[i - 1] * pair[xs[i - 1]] * inv;
          if (first1 && n == 0 && h == 0) {
            float *out = first1 + (s * T + i) * T;
            for (i64 j = 0; j < T; j++) out[j] = j <= i ? row[j] * pair[xs[j]] * inv : 0.0f;
          }
        }
        const float mean_previous = T > 1 ? prev_sum / (float)(T - 1) : 0.0f;
        best_previous = h == 0 || mean_previous > best_previous ? mean_previous : best_previous;
      }
      previous[sn] = best_previous;
      for (i64 i = 0; i < T; i++) gT[xs[i] * Tp + i] = 1.0f;  // the token's own embedding
      // layer 2 at the last query: LayerNorm(x_j) = (g_j / sigma_j) @ ((u - mean u) w) + b, sigma_j^2 = g_j^T C g_j
      const float *C = gram + s * m * m;
      for (i64 j = 0; j < Tp; j++) sigma[j] = 0.0f;
      for (i64 a = 0; a < m; a++)
        for (i64 b = 0; b < m; b++) {
          const float cab = C[a * m + b];
          const float *restrict ga = gT + a * Tp, *restrict gb = gT + b * Tp;
          BLOCKS(j0, Tp) {
            SIMD for (int jj = 0; jj < 16; jj++) sigma[j0 + jj] += cab * ga[j0 + jj] * gb[j0 + jj];
          }
        }
      BLOCKS(j0, Tp) {
        SIMD for (int jj = 0; jj < 16; jj++) sigma[j0 + jj] = 1.0f / sqrtf(sigma[j0 + jj] + 1e-5f);
      }
      const float *sh = shifts + s * 3 * d;
      const float last_sigma = sigma[T - 1];
      for (i64 c = 0; c < d; c++) {
        float acc = sh[c];
        for (i64 a = 0; a < m; a++) acc += gT[a * Tp + T - 1] * last_sigma * qmap[(s * m + a) * d + c];
        q[c] = acc / sqrtf((float)hs2);
      }
      if (follows)
        for (i64 j = 0; j < T; j++) f[j] = follows[n * T + j];
      float mass = 0.0f;
      for (i64 h = 0; h < nh2; h++) {
        float cst = 0.0f;
        for (i64 c = 0; c < hs2; c++) cst += q[h * hs2 + c] * sh[d + h * hs2 + c];
        for (i64 a = 0; a < m; a++) {
          float acc = 0.0f;
          for (i64 c = 0; c < hs2; c++) acc += kmap[(s * m + a) * d + h * hs2 + c] * q[h * hs2 + c];
          u[a] = acc;
        }
        for (i64 j = 0; j < Tp; j++) score[j] = 0.0f;
        for (i64 a = 0; a < m; a++) {  // (g_j / sigma_j) . (kmap q) + q . r_{T-1-j}, a vector over keys j
          const float ua = u[a];
          const float *restrict ga = gT + a * Tp;
          BLOCKS(j0, Tp) {
            SIMD for (int jj = 0; jj < 16; jj++) score[j0 + jj] += ua * ga[j0 + jj];
          }
        }
        const float *rh = relT + (s * nh2 + h) * hs2 * Tp;
        BLOCKS(j0, Tp) {
          SIMD for (int jj = 0; jj < 16; jj++) p[j0 + jj] = score[j0 + jj] * sigma[j0 + jj] + cst;
        }
        for (i64 c = 0; c < hs2; c++) {
          const float qc = q[h * hs2 + c];
          const float *restrict rc = rh + c * Tp;
          BLOCKS(j0, Tp) {
            SIMD for (int jj = 0; jj < 16; jj++) p[j0 + jj] += qc * rc[j0 + jj];
          }
        }
        softmax_row(p, T, Tp);
        if (follows) mass += dot_padded(p, f, Tp) / (float)nh2;
        if (first2 && n == 0 && h == 0) memcpy(first2 + s * T, p, T * sizeof(float));
        BLOCKS(j0, Tp) {
          SIMD for (int jj = 0; jj < 16; jj++) score[j0 + jj] = p[j0 + jj] * sigma[j0 + jj];
        }
        for (i64 a = 0; a < m; a++) avg[a] = dot_padded(score, gT + a * Tp, Tp);
        for (i64 c = 0; c < hs2; c++) {
          float acc = sh[2 * d + h * hs2 + c];
          for (i64 a = 0; a < m; a++) acc += avg[a] * vmap[(s * m + a) * d + h * hs2 + c];
          mixed[h * hs2 + c] = acc;
        }
      }
      induction[sn] = mass;
      for (i64 c = 0; c < d; c++) {  // the residual stream at the last position, its LayerNorm, the head
        float acc = 0.0f;
        for (i64 a = 0; a < m; a++) acc += gT[a * Tp + T - 1] * basis[(s * m + a) * d + c];
        for (i64 e = 0; e < d; e++) acc += mixed[e] * wout[(s * d + e) * d + c];
        x[c] = acc;
      }
      float mu = 0.0f, var = 0.0f;
      for (i64 c = 0; c < d; c++) mu += x[c];
      mu /= (float)d;
      for (i64 c = 0; c < d; c++) var += (x[c] - mu) * (x[c] - mu);
      const float rs = 1.0f / sqrtf(var / (float)d + 1e-5f);
      for (i64 c = 0; c < d; c++) y[c] = (x[c] - mu) * rs * lnw[s * d + c] + lnb[s * d + c];
      for (i64 c = 0; c < k; c++) {
        float acc = 0.0f;
        for (i64 e = 0; e < d; e++) acc += y[e] * head[(s * d + e) * k + c];
        logits[sn * k + c] = acc;
      }
    }
    free(gT), free(sigma), free(u), free(p), free(score), free(avg), free(q), free(mixed), free(x), free(y), free(f);
  }
  return underflow;
}
"""
