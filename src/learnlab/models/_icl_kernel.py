"""The ICL transformer's attention as a small compiled CPU kernel, and its dropout masks.

``models.icl_transformer`` spends a CPU training step in its (B, T, T) attention tensors: a
dozen passes of PyTorch ops over 2.5 MB scores, patterns, masks and gradients per layer, and
16 random bits an element from the mt19937 generator (~11 ns per 64-bit word here). This
kernel does one (T, T) attention per work item (replica, sequence, head) with its rows in
L1: the scores q_i . (k_j + r~_{i-j}) as vectors over the keys j, the softmax (glibc's
vectorised ``expf``), the dropout and the product with the values in one pass, and in the
backward the same rows again, the relative table's gradient summed over the batch in
per-thread accumulators. Only the softmax pattern P is written (the hook's view and the
backward's input). Layer 1, whose input is the token embedding alone, runs on its k x T x T
tables (``ll_token_forward``).

Dropout masks are a keyed hash of each element's index (Wellons' lowbias32, twice): element
e of a draw keyed ``key`` is kept where ``bits16(key, e) >= round(p * 2^16)``, so P(drop) =
p to 2^-16 (0.1 -> 0.1000061), as the masks before. No state and no stored mask: the backward
recomputes them, and :func:`keep_bits` computes the same bits with torch ops, so the
fallback path (no compiler, a GPU, float64) draws bit-identical masks. The model draws one
64-bit key per forward from the global torch generator and derives a key per dropout site.

Plain C, compiled by the system's C compiler into a shared library and loaded with
``ctypes`` (no PyTorch headers: about a second to build, once, cached by a hash of the
source and flags under ``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``).
``-ffast-math`` is a compile flag only, never a link flag, so the process's denormal mode is
untouched; OpenMP threads come from the ``libgomp`` PyTorch itself loaded (same soname), as
many as ``torch.get_num_threads()``. Where it cannot be built :func:`library` returns None with
a warning and the model takes its pure-PyTorch path; ``LEARNLAB_ICL_KERNEL=0`` asks for that
path without trying.
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
           "LayerNorm", "CrossEntropy", "Dropout"]

_SOURCE = (Path(__file__).with_name("_icl_kernel.c")).read_text()
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
    lib.ll_attn_forward.argtypes = [p, i64, i64, i64, i64, i64, p, p, p, p, *drop]
    lib.ll_attn_backward.argtypes = [p, p, p, p, i64, i64, i64, i64, i64, p, p, *stored]
    lib.ll_token_forward.argtypes = [p, p, p, i64, i64, i64, i64, i64, p, p, p, *drop]
    lib.ll_token_backward.argtypes = [p, p, p, i64, i64, i64, i64, i64, p, p, *stored]
    lib.ll_layer_norm_forward.argtypes = [p, p, p, i64, i64, i64, p, p, p, c_int]
    lib.ll_layer_norm_backward.argtypes = [p, p, p, p, p, i64, i64, i64, p, p, p, c_int]
    lib.ll_cross_entropy_forward.argtypes = [p, p, i64, i64, i64, p, c_int]
    lib.ll_cross_entropy_backward.argtypes = [p, p, p, i64, i64, i64, p, c_int]
    lib.ll_dropout_forward.argtypes = [p, p, p, i64, u64, u32, f32, c_int]
    lib.ll_dropout_backward.argtypes = [p, p, p, i64, f32, c_int]
    lib.ll_eval_two_layer.argtypes = [p] * 16 + [i64] * 7 + [p] * 5 + [c_int]
    lib.ll_eval_two_layer.restype = c_int
    for function in (lib.ll_keep_mask, lib.ll_table_forward, lib.ll_table_backward, lib.ll_attn_forward,
                     lib.ll_attn_backward, lib.ll_token_forward, lib.ll_token_backward, lib.ll_layer_norm_forward,
                     lib.ll_layer_norm_backward, lib.ll_cross_entropy_forward, lib.ll_cross_entropy_backward,
                     lib.ll_dropout_forward, lib.ll_dropout_backward):
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
        library().ll_attn_forward(qkv.data_ptr(), S, B, T, nh, d // nh, table.data_ptr(), out.data_ptr(),
                                  _ptr(pattern), _ptr(bits), key, level, scale, int(p > 0), torch.get_num_threads())
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
        library().ll_token_forward(rows.data_ptr(), pairs.data_ptr(), tokens.data_ptr(), S, B, T, nh, k, out.data_ptr(),
                                   _ptr(pattern), _ptr(bits), key, level, scale, int(p > 0), torch.get_num_threads())
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
        bits, = ctx.saved_tensors
        grad = grad.contiguous()
        out = torch.empty_like(grad)
        library().ll_dropout_backward(grad.data_ptr(), out.data_ptr(), bits.data_ptr(), grad.numel(), ctx.scale,
                                      torch.get_num_threads())
        return out, None, None


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
