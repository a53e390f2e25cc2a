"""Mamba's selective scan, and the block around it, as a small compiled CPU kernel (C++, built once by
``torch.utils.cpp_extension``).

The recurrence of ``learnlab.models.mamba``, per batch row, channel c and state n:

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t,    y_t = C_t . h_t

In PyTorch each time step is a handful of small ops over (b, c, n) tensors that go through
memory; here one pass keeps a block of 64 channels' state (n x 64 floats) in L1 and reads
each input once. Work items are (batch row, block of channels), split over threads by
``at::parallel_for`` (PyTorch's own OpenMP pool). Fused in: delta's bias and softplus, the
skip D x and the gate SiLU(z) (mamba_ssm's ``selective_scan_fn`` arguments). The backward
recomputes the item's states and decays into two (T, n, 64) buffers (~260 kB each at T = 64,
n = 16: in L2), then runs the reverse scan, as ``mamba_ssm``'s CUDA kernel does; only the
inputs are saved. A second kernel does the causal depthwise conv and its SiLU;
:func:`compiled_mamba_inner` puts both, with the x_proj and dt_proj products, in one autograd
node, as ``mamba_inner_fn`` does. B and C are read in place from x_proj's output (rows rank + 2n
apart) and their gradients written in place into its gradient, so the node copies nothing: the
backward's work items are whole batch rows (their channel blocks in order), which makes a row's
sums over blocks (dB, dC) its own. Sums over batch rows (the gradients of A, D, delta's bias and the
conv's weight and bias) go to one partial a thread, added after. The threads' scratch buffers are
64-byte aligned: at 16-byte alignment (what the allocator gave) every vector load and store of the
backward's state and decay buffers split across two cache lines (backward 4.9 -> 3.7 ms a layer, one
thread, standalone, best of 40; 2026-12-03 evening).

Full blocks in float (every block at the benchmark shape) take a second version of each pass
written with GCC's vector types (16 floats): a step's per-channel values (Delta, Delta x, y, the
gradient sums) stay in registers across the n states, and exp is inlined. With AVX-512: 10
instructions, ``vrndscaleps``/``vscalefps`` for the reduction and the scaling and a degree-5
polynomial (within ~3 ulp of glibc's ``expf``; ``exp(-87.3)`` ~ 1e-38 for inputs below -87.3,
where ``expf`` is denormal or 0); without it Cephes' degree-7 ``expf``. About half of the forward's
time was its exps (a standalone copy with each exp replaced by a multiply-add ran in half the
time). Delta's softplus is inlined too (``vsoftplus``: log1p by the atanh series, no libmvec
call, whose spills of every vector register cost ~15% of the forward), and the backward's sums of
dB_t and dC_t over a block's channels are reduced 16 states at a time by a shuffle tree
(``hsum16``). Forward 2.0 -> 1.4 ms a layer (a standalone copy of the kernel, one thread, best of
60, loaded machine); the backward stayed at ~4.8 ms: half its time is the reverse loop's loads and
stores (not its exps, nor L1 misses: the same with 4 steps' buffers in L1). Partial blocks and float64
(the gradchecks) take plain ``omp simd`` loops over the block's channels, float with the same
inlined polynomial (0 below -87.3), float64 with ``std::exp``. Measured at the benchmark shape,
one layer at one thread on a loaded 2-core machine (CPU time): scan forward 5.7 -> 3.1-3.6 ms,
backward 12.4 -> 7.2-8.0 ms, conv + SiLU backward 1.9-2.4 -> 0.4-0.5 ms (hoisting the tensors'
``data_ptr()`` out of its loops, then the vector version), its forward 0.6 -> 0.3-0.45 ms.

Built with ``-O3 -ffast-math`` (so gcc vectorises the remaining ``expf``/``log1pf`` through
libmvec) and the vector extensions PyTorch itself found on this CPU; ``-ffast-math`` is a compile
flag only, never a link flag, so the process's denormal mode is untouched. The build is cached in the torch
extensions directory (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``),
named by CPU capability, torch version and a hash of the source: about a minute once (three
on a loaded 2-core machine), then a load of ~0.3 s. Where it cannot be built (no compiler,
no ninja) :func:`kernel` returns None, with a warning naming the error, and callers take the
pure-PyTorch path; ``LEARNLAB_SCAN_KERNEL=0`` asks for that path without trying.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings

import torch

__all__ = ["kernel", "compiled_selective_scan", "compiled_mamba_inner"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

// Vectorise the loop that follows (-fopenmp-simd semantics; _Pragma works inside macro arguments).
#define SIMD _Pragma("omp simd")

namespace {

// A work item is one batch row and a block of up to kBlock channels. Every inner loop runs over
// the block's channels (contiguous in x, delta, z and in the transposed A), so all of it is
// vector code, the transcendental functions included (glibc's vectorised expf / log1pf), and
// the only horizontal sums are dB_t and dC_t, one per state index and step.
constexpr int64_t kBlock = 64;

// exp, inlined into the vector loops. For float, Cephes' expf (Cody-Waite reduction by ln 2, a
// degree-7 polynomial, 2^k put in the exponent bits): within 2 ulp of expf over its range, and pure
// arithmetic, so gcc keeps it in vector registers (a call to libmvec's expf spills them all: the
// exps were most of the scan's time). 0 below -87.3 (expf is denormal or 0 there), exp(88.3) above
// 88.3; no branch. Double: std::exp (libmvec).
template <typename T>
inline T fast_exp(T v) {
  return std::exp(v);
}

template <>
inline float fast_exp<float>(float v) {
  const float x = std::min(std::max(v, -87.3f), 88.3f);
  const float k = std::floor(std::fma(x, 1.44269504088896341f, 0.5f));  // round(x / ln 2), in [-126, 127]
  float r = std::fma(k, -0.693359375f, x);  // x - k ln 2 in two parts (the first exact in k ln 2)
  r = std::fma(k, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p * r, r, r) + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(k) + 127) << 23);
  return v < -87.3f ? 0.0f : p * scale;
}

template <typename T>
inline T sigmoid(T v) {  // 1 / (1 + exp(-v)): no branch, so the loops vectorise
  return T(1) / (T(1) + fast_exp(-v));
}

// The inputs, whole tensors (all contiguous, one dtype). At: A transposed, (n, c).
template <typename T>
struct Inputs {
  const T *delta, *x, *At, *B, *C, *D, *z, *bias;  // z: nullptr when there is no gate
  bool softplus;
  int64_t batch, length, channels, n;
  int64_t z_row;  // elements from one (b, t) row of z to the next: z may be the z half of in_proj's output
  int64_t bc_row;  // the same for B and C: they may be column slices of x_proj's output (b T, rank + 2n)

  // Delta = softplus(delta + bias) (torch's threshold 20: beyond it, the identity) for the width
  // channels from element i0, channel c0 on.
  void deltas(int64_t i0, int64_t c0, int64_t width, T* __restrict out) const {
    const T* __restrict raw = delta + i0;
    const T* __restrict b = bias + c0;
    if (softplus) {
SIMD
      for (int64_t j = 0; j < width; ++j) {
        const T v = raw[j] + b[j];
        out[j] = v > T(20) ? v : std::log1p(fast_exp(v));
      }
    } else {
SIMD
      for (int64_t j = 0; j < width; ++j) out[j] = raw[j] + b[j];
    }
  }
};

// One time step of an item's states, h (n, kBlock): h = exp(Delta A) h_prev + Delta x B_t and
// y = C_t . h per channel; the decays exp(Delta A) kept in `decay` (n, kBlock) if not null.
template <typename T>
inline void state_step(const Inputs<T>& s, int64_t c0, int64_t width, const T* __restrict d,
                       const T* __restrict u, const T* __restrict Bt, const T* __restrict Ct,
                       const T* __restrict prev, T* __restrict next, T* __restrict y, T* __restrict decay) {
  std::fill(y, y + width, T(0));
  for (int64_t k = 0; k < s.n; ++k) {
    const T* __restrict Ak = s.At + k * s.channels + c0;
    const T* __restrict hp = prev + k * kBlock;
    T* __restrict hn = next + k * kBlock;
    const T Bk = Bt[k], Ck = Ct[k];
    if (decay) {
      T* __restrict ak = decay + k * kBlock;
SIMD
      for (int64_t j = 0; j < width; ++j) {
        const T a = fast_exp(d[j] * Ak[j]);
        ak[j] = a;
        hn[j] = a * hp[j] + u[j] * Bk;
        y[j] += Ck * hn[j];
      }
    } else {
SIMD
      for (int64_t j = 0; j < width; ++j) {
        hn[j] = fast_exp(d[j] * Ak[j]) * hp[j] + u[j] * Bk;
        y[j] += Ck * hn[j];
      }
    }
  }
}

// Forward of one item: batch row b, channels [c0, c1). h: (n, kBlock); scratch: 3 kBlock.
template <typename T>
void forward_item(const Inputs<T>& s, T* __restrict out, T* __restrict h, T* __restrict scratch, int64_t b,
                  int64_t c0, int64_t c1) {
  const int64_t n = s.n, L = s.length, width = c1 - c0;
  T* __restrict d = scratch;
  T* __restrict u = scratch + kBlock;
  T* __restrict y = scratch + 2 * kBlock;
  std::fill(h, h + n * kBlock, T(0));
  for (int64_t t = 0; t < L; ++t) {
    const int64_t i0 = (b * L + t) * s.channels + c0;
    const T* __restrict x = s.x + i0;
    const T* __restrict D = s.D + c0;
    s.deltas(i0, c0, width, d);
SIMD
    for (int64_t j = 0; j < width; ++j) u[j] = d[j] * x[j];
    state_step<T>(s, c0, width, d, u, s.B + (b * L + t) * s.bc_row, s.C + (b * L + t) * s.bc_row, h, h, y, nullptr);
    T* __restrict o = out + i0;
    if (s.z) {  // (y + D x) silu(z)
      const T* __restrict z = s.z + (b * L + t) * s.z_row + c0;
SIMD
      for (int64_t j = 0; j < width; ++j) o[j] = (y[j] + D[j] * x[j]) * z[j] * sigmoid(z[j]);
    } else {
SIMD
      for (int64_t j = 0; j < width; ++j) o[j] = y[j] + D[j] * x[j];
    }
  }
}

template <typename T>
struct Grads {
  T *delta, *x, *z;  // (b, T, c), z nullptr when there is no gate, its rows z_row apart
  int64_t z_row;
  T *At, *D, *bias;  // per batch row: (b, n, c), (b, c), (b, c)
  T *B, *C;          // (b, T, n), rows bc_row apart: a batch row's sums over its channel blocks, in block order
  int64_t bc_row;
};

// Backward of one item. H: (T + 1, n, kBlock), row 0 the zero initial state; decay: (T, n, kBlock);
// dh: (n, kBlock); kept: (2, T, kBlock), Delta and C_t . h_t of the recomputed forward; scratch: 5 kBlock.
// dh_t = C_t dy_t + a_{t+1} dh_{t+1};  g = dh_t a_t h_{t-1} is the gradient of delta_t A.
template <typename T>
void backward_item(const Inputs<T>& s, const T* __restrict dy, const Grads<T>& g, T* __restrict H,
                   T* __restrict decay, T* __restrict dh, T* __restrict kept, T* __restrict scratch, int64_t b,
                   int64_t block, int64_t c0, int64_t c1) {
  const int64_t n = s.n, L = s.length, width = c1 - c0, row = n * kBlock;
  T* __restrict u = scratch;
  T* __restrict g_y = scratch + kBlock;
  T* __restrict d_u = scratch + 2 * kBlock;
  T* __restrict d_d = scratch + 3 * kBlock;
  std::fill(H, H + row, T(0));
  for (int64_t t = 0; t < L; ++t) {  // the forward again, every state and decay kept this time
    const int64_t i0 = (b * L + t) * s.channels + c0;
    T* __restrict d = kept + t * kBlock;
    s.deltas(i0, c0, width, d);
    const T* __restrict x = s.x + i0;
SIMD
    for (int64_t j = 0; j < width; ++j) u[j] = d[j] * x[j];
    state_step<T>(s, c0, width, d, u, s.B + (b * L + t) * s.bc_row, s.C + (b * L + t) * s.bc_row, H + t * row,
                  H + (t + 1) * row, kept + (L + t) * kBlock, decay + t * row);
  }
  std::fill(dh, dh + row, T(0));
  T* __restrict dD = g.D + c0;
  T* __restrict dbias = g.bias + c0;
  for (int64_t t = L - 1; t >= 0; --t) {
    const int64_t i0 = (b * L + t) * s.channels + c0;
    const T* __restrict x = s.x + i0;
    const T* __restrict D = s.D + c0;
    const T* __restrict dyt = dy + i0;
    const T* __restrict d = kept + t * kBlock;
    const T* __restrict y = kept + (L + t) * kBlock;
    if (s.z) {  // out = (y + D x) silu(z): the gradients of z and of y
      const T* __restrict z = s.z + (b * L + t) * s.z_row + c0;
      T* __restrict dz = g.z + (b * L + t) * g.z_row + c0;
SIMD
      for (int64_t j = 0; j < width; ++j) {
        const T sg = sigmoid(z[j]);
        dz[j] = dyt[j] * (y[j] + D[j] * x[j]) * sg * (T(1) + z[j] * (T(1) - sg));
        g_y[j] = dyt[j] * z[j] * sg;
      }
    } else {
SIMD
      for (int64_t j = 0; j < width; ++j) g_y[j] = dyt[j];
    }
SIMD
    for (int64_t j = 0; j < width; ++j) {
      dD[j] += g_y[j] * x[j];
      u[j] = d[j] * x[j];
      d_u[j] = T(0);
      d_d[j] = T(0);
    }
    const T* __restrict Bt = s.B + (b * L + t) * s.bc_row;
    const T* __restrict Ct = s.C + (b * L + t) * s.bc_row;
    T* __restrict dBt = g.B + (b * L + t) * g.bc_row;
    T* __restrict dCt = g.C + (b * L + t) * g.bc_row;
    for (int64_t k = 0; k < n; ++k) {
      const T* __restrict Ak = s.At + k * s.channels + c0;
      const T* __restrict ak = decay + t * row + k * kBlock;
      const T* __restrict hk = H + (t + 1) * row + k * kBlock;
      const T* __restrict hp = H + t * row + k * kBlock;
      T* __restrict dhk = dh + k * kBlock;
      T* __restrict dAk = g.At + k * s.channels + c0;
      const T Bk = Bt[k], Ck = Ct[k];
      T sum_B = 0, sum_C = 0;
_Pragma("omp simd reduction(+ : sum_B, sum_C)")
      for (int64_t j = 0; j < width; ++j) {
        const T g_h = dhk[j] + Ck * g_y[j];  // dh_t
        const T g_a = g_h * ak[j] * hp[j];
        sum_C += g_y[j] * hk[j];
        sum_B += g_h * u[j];
        d_u[j] += g_h * Bk;
        d_d[j] += g_a * Ak[j];
        dAk[j] += g_a * d[j];
        dhk[j] = g_h * ak[j];  // a_t dh_t, what reaches h_{t-1}
      }
      dBt[k] += sum_B;
      dCt[k] += sum_C;
    }
    T* __restrict dx = g.x + i0;
    T* __restrict ddelta = g.delta + i0;
    const T* __restrict raw = s.delta + i0;
    const T* __restrict bias = s.bias + c0;
    const bool softplus = s.softplus;
SIMD
    for (int64_t j = 0; j < width; ++j) {
      dx[j] = d_u[j] * d[j] + g_y[j] * D[j];
      const T v = raw[j] + bias[j];
      const T gd = (d_d[j] + d_u[j] * x[j]) * (softplus && !(v > T(20)) ? sigmoid(v) : T(1));
      ddelta[j] = gd;
      dbias[j] += gd;
    }
  }
}

// ---- Full blocks in float: the same two passes written with GCC's vector types (16 floats, one
// AVX-512 register; two AVX2 ones), so that a step's per-channel values (Delta, Delta x, y, the
// gradients being summed) stay in registers across the n states instead of going through memory
// once a state, and the exp is inlined on whole vectors. Partial blocks and double take the loops above.
typedef float vf __attribute__((vector_size(64), aligned(4)));
typedef int32_t vi __attribute__((vector_size(64), aligned(4)));
constexpr int64_t kLanes = 16, kVecs = kBlock / kLanes;

inline vf vload(const float* p) { vf v; __builtin_memcpy(&v, p, sizeof v); return v; }
inline void vstore(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
inline vf splat(float s) { return vf{} + s; }
#define VECS _Pragma("GCC unroll 4") for (int64_t v = 0; v < kVecs; ++v)

#ifdef __AVX512F__
// exp a vector at a time, 10 instructions: k = round(x / ln 2) (vrndscaleps), r = x - k ln 2 in one
// fma (ln 2's float rounding costs k * 1.4e-9 in r: < 2e-8 relative for x > -10, 2e-7 at -87), a
// degree-5 polynomial fitted to e^r over [-ln2/2, ln2/2] (relative error 1.6e-7 in float, ~3 ulp;
// Cephes' degree 7 is 1 ulp and 3 instructions more), 2^k by vscalefps. Inputs below -87.3 give
// exp(-87.3) ~ 1e-38 (never a denormal, whose results cost microcode assists).
inline vf vexp(vf v) {
  const __m512 x = _mm512_max_ps(reinterpret_cast<__m512>(v), _mm512_set1_ps(-87.3f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693147180559945f), x);
  __m512 p = _mm512_set1_ps(8.31253082e-3f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.18901108e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66671135e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.99992304e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return reinterpret_cast<vf>(_mm512_scalef_ps(p, k));
}
#else
inline vf vexp(vf v) {  // fast_exp<float>, a vector at a time
  vf x = v < -87.3f ? splat(-87.3f) : v;
  x = x > 88.3f ? splat(88.3f) : x;
  const vf t = x * 1.44269504088896341f;
  const vi ki = __builtin_convertvector(t + (t < 0.0f ? splat(-0.5f) : splat(0.5f)), vi);  // round(t)
  const vf k = __builtin_convertvector(ki, vf);
  vf r = x - k * 0.693359375f;
  r = r + k * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r) * r + r + 1.0f;
  const vf scale = reinterpret_cast<vf>((ki + 127) << 23);
  return v < -87.3f ? splat(0.0f) : p * scale;
}
#endif

inline vf vsigmoid(vf v) { return 1.0f / (1.0f + vexp(-v)); }

// softplus(v) = max(v, 0) + log1p(e), e = exp(-|v|) in (0, 1], inlined (a call to libmvec's log1pf
// spills every vector register, once per step and block: ~15% of the forward). log1p(e) =
// 2 atanh(s), s = e / (2 + e) in (0, 1/3], by its series to s^13 (truncation < 1e-8 relative; no
// cancellation for small e). Beyond v = 20 the second term is below 2e-9 and v + it rounds to v:
// torch's threshold, with no branch.
inline vf vsoftplus(vf v) {
  const vf e = vexp(v < 0.0f ? v : -v);
  const vf s = e / (2.0f + e);
  const vf q = s * s;
  vf p = splat(1.0f / 13.0f);
  p = p * q + 1.0f / 11.0f;
  p = p * q + 1.0f / 9.0f;
  p = p * q + 1.0f / 7.0f;
  p = p * q + 1.0f / 5.0f;
  p = p * q + 1.0f / 3.0f;
  p = p * q + 1.0f;
  return (v > 0.0f ? v : splat(0.0f)) + 2.0f * s * p;
}

// Delta = softplus(delta + bias) (or delta + bias) for a full block's 64 channels from element i0,
// channel c0 on: Inputs::deltas, vectorised.
inline void vdeltas(const Inputs<float>& s, int64_t i0, int64_t c0, vf* d) {
  VECS {
    const vf raw = vload(s.delta + i0 + v * kLanes) + vload(s.bias + c0 + v * kLanes);
    d[v] = s.softplus ? vsoftplus(raw) : raw;
  }
}

inline float hsum(vf v) {
  float s = 0;
  for (int64_t i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// One level of a transpose-reduction: x and y each hold 16 / (2w) sources of 2w partial sums
// (contiguous); the result holds those 2 * 16 / (2w) sources (x's, then y's), w partials each.
template <int w>
inline vf fold(vf x, vf y) {
  constexpr int S = kLanes / (2 * w);
  vi lo, hi;
  for (int j = 0; j < kLanes; ++j) {
    const int o = j / w, p = j % w;
    lo[j] = o < S ? o * 2 * w + p : kLanes + (o - S) * 2 * w + p;
    hi[j] = lo[j] + w;
  }
  return __builtin_shuffle(x, y, lo) + __builtin_shuffle(x, y, hi);
}

// The 16 lane sums of v[0..16), as one vector (lane i: the sum of v[i]): 15 two-source shuffles
// pairs and adds, where 16 separate horizontal sums are ~16 serial scalar adds each.
inline vf hsum16(const vf* v) {
  vf a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i) a[i] = fold<8>(v[2 * i], v[2 * i + 1]);
  for (int i = 0; i < 4; ++i) b[i] = fold<4>(a[2 * i], a[2 * i + 1]);
  for (int i = 0; i < 2; ++i) c[i] = fold<2>(b[2 * i], b[2 * i + 1]);
  return fold<1>(c[0], c[1]);
}


// forward_item for a full block: h (n, kBlock); d: kBlock scratch.
bool forward_block(const Inputs<float>& s, float* __restrict out, float* __restrict h, float* __restrict dbuf,
                   int64_t b, int64_t c0) {
  const int64_t n = s.n, L = s.length;
  std::fill(h, h + n * kBlock, 0.0f);
  for (int64_t t = 0; t < L; ++t) {
    const int64_t i0 = (b * L + t) * s.channels + c0;
    vf d[kVecs], u[kVecs], y[kVecs];
    vdeltas(s, i0, c0, d);
    VECS {
      u[v] = d[v] * vload(s.x + i0 + v * kLanes);
      y[v] = splat(0.0f);
    }
    const float* __restrict Bt = s.B + (b * L + t) * s.bc_row;
    const float* __restrict Ct = s.C + (b * L + t) * s.bc_row;
    for (int64_t k = 0; k < n; ++k) {
      const float* __restrict Ak = s.At + k * s.channels + c0;
      float* __restrict hk = h + k * kBlock;
      const float Bk = Bt[k], Ck = Ct[k];
      VECS {
        const vf hv = vexp(d[v] * vload(Ak + v * kLanes)) * vload(hk + v * kLanes) + u[v] * Bk;
        vstore(hk + v * kLanes, hv);
        y[v] += Ck * hv;
      }
    }
    float* __restrict o = out + i0;
    const float* __restrict z = s.z ? s.z + (b * L + t) * s.z_row + c0 : nullptr;
    VECS {
      const vf xv = vload(s.x + i0 + v * kLanes);
      vf r = y[v] + vload(s.D + c0 + v * kLanes) * xv;
      if (z) {
        const vf zv = vload(z + v * kLanes);
        r = r * zv * vsigmoid(zv);
      }
      vstore(o + v * kLanes, r);
    }
  }
  return true;
}

// backward_item for a full block, the same buffers.
bool backward_block(const Inputs<float>& s, const float* __restrict dy, const Grads<float>& g, float* __restrict H,
                    float* __restrict decay, float* __restrict dh, float* __restrict kept, int64_t b, int64_t block,
                    int64_t c0) {
  const int64_t n = s.n, L = s.length, row = n * kBlock;
  std::fill(H, H + row, 0.0f);
  for (int64_t t = 0; t < L; ++t) {  // the forward again, every state and decay kept this time
    const int64_t i0 = (b * L + t) * s.channels + c0;
    float* __restrict dbuf = kept + t * kBlock;
    vf d[kVecs], u[kVecs], y[kVecs];
    vdeltas(s, i0, c0, d);
    VECS {
      vstore(dbuf + v * kLanes, d[v]);
      u[v] = d[v] * vload(s.x + i0 + v * kLanes);
      y[v] = splat(0.0f);
    }
    const float* __restrict Bt = s.B + (b * L + t) * s.bc_row;
    const float* __restrict Ct = s.C + (b * L + t) * s.bc_row;
    const float* __restrict hp = H + t * row;
    float* __restrict hn = H + (t + 1) * row;
    float* __restrict at = decay + t * row;
    for (int64_t k = 0; k < n; ++k) {
      const float* __restrict Ak = s.At + k * s.channels + c0;
      const float Bk = Bt[k], Ck = Ct[k];
      VECS {
        const int64_t o = k * kBlock + v * kLanes;
        const vf a = vexp(d[v] * vload(Ak + v * kLanes));
        const vf hv = a * vload(hp + o) + u[v] * Bk;
        vstore(at + o, a);
        vstore(hn + o, hv);
        y[v] += Ck * hv;
      }
    }
    VECS vstore(kept + (L + t) * kBlock + v * kLanes, y[v]);
  }
  std::fill(dh, dh + row, 0.0f);
  vf dD[kVecs], dbias[kVecs];
  VECS { dD[v] = splat(0.0f); dbias[v] = splat(0.0f); }
  for (int64_t t = L - 1; t >= 0; --t) {
    const int64_t i0 = (b * L + t) * s.channels + c0;
    vf g_y[kVecs], d[kVecs], u[kVecs], xv[kVecs], d_u[kVecs], d_d[kVecs];
    VECS {
      xv[v] = vload(s.x + i0 + v * kLanes);
      d[v] = vload(kept + t * kBlock + v * kLanes);
      const vf dyt = vload(dy + i0 + v * kLanes);
      if (s.z) {  // out = (y + D x) silu(z): the gradients of z and of y
        const vf zv = vload(s.z + (b * L + t) * s.z_row + c0 + v * kLanes);
        const vf sg = vsigmoid(zv);
        const vf pre = vload(kept + (L + t) * kBlock + v * kLanes) + vload(s.D + c0 + v * kLanes) * xv[v];
        vstore(g.z + (b * L + t) * g.z_row + c0 + v * kLanes, dyt * pre * sg * (1.0f + zv * (1.0f - sg)));
        g_y[v] = dyt * zv * sg;
      } else {
        g_y[v] = dyt;
      }
      dD[v] += g_y[v] * xv[v];
      u[v] = d[v] * xv[v];
      d_u[v] = splat(0.0f);
      d_d[v] = splat(0.0f);
    }
    const float* __restrict Bt = s.B + (b * L + t) * s.bc_row;
    const float* __restrict Ct = s.C + (b * L + t) * s.bc_row;
    float* __restrict dBt = g.B + (b * L + t) * g.bc_row;
    float* __restrict dCt = g.C + (b * L + t) * g.bc_row;
    const float* __restrict at = decay + t * row;
    const float* __restrict hp = H + t * row;
    const float* __restrict hn = H + (t + 1) * row;
    vf sums_B[kLanes], sums_C[kLanes];  // a group of 16 states' partial sums, reduced together
    for (int64_t k = 0; k < n; ++k) {
      const float* __restrict Ak = s.At + k * s.channels + c0;
      float* __restrict dAk = g.At + k * s.channels + c0;
      const float Bk = Bt[k], Ck = Ct[k];
      vf sum_B = splat(0.0f), sum_C = splat(0.0f);
      VECS {
        const int64_t o = k * kBlock + v * kLanes;
        const vf a = vload(at + o);
        const vf g_h = vload(dh + o) + Ck * g_y[v];  // dh_t
        const vf g_a = g_h * a * vload(hp + o);
        sum_C += g_y[v] * vload(hn + o);
        sum_B += g_h * u[v];
        d_u[v] += g_h * Bk;
        d_d[v] += g_a * vload(Ak + v * kLanes);
        vstore(dAk + v * kLanes, vload(dAk + v * kLanes) + g_a * d[v]);
        vstore(dh + o, g_h * a);  // a_t dh_t, what reaches h_{t-1}
      }
      const int64_t k0 = k & ~(kLanes - 1);
      if (k0 + kLanes <= n) {  // a full group of 16: one transpose-reduction at its last state
        sums_B[k - k0] = sum_B;
        sums_C[k - k0] = sum_C;
        if (k == k0 + kLanes - 1) {
          vstore(dBt + k0, vload(dBt + k0) + hsum16(sums_B));
          vstore(dCt + k0, vload(dCt + k0) + hsum16(sums_C));
        }
      } else {
        dBt[k] += hsum(sum_B);
        dCt[k] += hsum(sum_C);
      }
    }
    VECS {
      vstore(g.x + i0 + v * kLanes, d_u[v] * d[v] + g_y[v] * vload(s.D + c0 + v * kLanes));
      const vf raw = vload(s.delta + i0 + v * kLanes) + vload(s.bias + c0 + v * kLanes);
      vf gd = d_d[v] + d_u[v] * xv[v];
      if (s.softplus) gd = raw > 20.0f ? gd : gd * vsigmoid(raw);
      vstore(g.delta + i0 + v * kLanes, gd);
      dbias[v] += gd;
    }
  }
  VECS {
    vstore(g.D + c0 + v * kLanes, vload(g.D + c0 + v * kLanes) + dD[v]);
    vstore(g.bias + c0 + v * kLanes, vload(g.bias + c0 + v * kLanes) + dbias[v]);
  }
  return true;
}

// Double: no vector version (the generic loops then).
bool forward_block(const Inputs<double>&, double*, double*, double*, int64_t, int64_t) { return false; }
bool backward_block(const Inputs<double>&, const double*, const Grads<double>&, double*, double*, double*, double*,
                    int64_t, int64_t, int64_t) {
  return false;
}

// A thread's scratch memory, kept between calls: fresh buffers this size come from mmap, and
// faulting their pages in (and zero-filling them) took ~10% of a backward call.
template <typename T>
T* thread_buffer(size_t size) {
  thread_local std::vector<T> buffer;
  constexpr size_t pad = 64 / sizeof(T);  // aligned to a cache line: no 64-byte load or store splits across two
  if (buffer.size() < size + pad) buffer.resize(size + pad);
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(buffer.data()) + 63) & ~uintptr_t(63));
}

// This thread's partial-sum slot, of `slots` (at::get_num_threads() when the call began).
int64_t thread_slot(int64_t slots) {
  const int64_t tid = at::get_thread_num();
  TORCH_CHECK(tid >= 0 && tid < slots, "thread ", tid, " outside the ", slots, " partial-sum slots");
  return tid;
}

// The per-thread partials (slots, ...) added up.
at::Tensor slots_sum(const at::Tensor& partials) {
  return partials.size(0) == 1 ? partials[0] : partials.sum(0);
}

// Items per thread at least: small problems (the tests' gradchecks) run on the calling thread, as
// waking the pool costs more than their whole scan.
int64_t grain(int64_t length, int64_t channels, int64_t n) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, length * std::min(channels, kBlock) * n));
}

void check(const at::Tensor& t, const char* name, at::IntArrayRef shape, const at::Tensor& like,
           bool rows = false) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU (this kernel is CPU-only)");
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  if (rows) {  // (b, T, c) rows at a fixed stride, channels contiguous: a slice of the last dimension
    TORCH_CHECK(t.stride(2) == 1 && t.stride(0) == t.stride(1) * t.size(1), name,
                " must have contiguous channels and evenly spaced (b, t) rows");
  } else {
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  }
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have the dtype of delta");
}

template <typename T>
Inputs<T> inputs(const at::Tensor& delta, const at::Tensor& x, const at::Tensor& At, const at::Tensor& B,
                 const at::Tensor& C, const at::Tensor& D, const at::Tensor& z, const at::Tensor& bias,
                 bool softplus) {
  const int64_t batch = delta.size(0), length = delta.size(1), channels = delta.size(2), n = At.size(0);
  check(delta, "delta", {batch, length, channels}, delta);
  check(x, "x", {batch, length, channels}, delta);
  check(At, "A transposed", {n, channels}, delta);
  check(B, "B", {batch, length, n}, delta, true);
  check(C, "C", {batch, length, n}, delta, true);
  TORCH_CHECK(B.stride(1) == C.stride(1), "B and C must have the same row stride");
  check(D, "D", {channels}, delta);
  check(bias, "delta_bias", {channels}, delta);
  if (z.numel() > 0) check(z, "z", {batch, length, channels}, delta, true);
  return {delta.data_ptr<T>(), x.data_ptr<T>(), At.data_ptr<T>(), B.data_ptr<T>(), C.data_ptr<T>(),
          D.data_ptr<T>(), z.numel() > 0 ? z.data_ptr<T>() : nullptr, bias.data_ptr<T>(), softplus,
          batch, length, channels, n, z.numel() > 0 ? z.stride(1) : 0, B.stride(1)};
}

void check_shapes(const at::Tensor& delta, const at::Tensor& A) {
  TORCH_CHECK(delta.dim() == 3 && A.dim() == 2 && A.size(0) == delta.size(2),
              "delta must be (b, T, c) and A (c, n)");
}

}  // namespace

// out (b, T, c) = (scan(x, softplus?(delta + delta_bias), A, B, C) + D x) * silu(z); z empty: no gate.
at::Tensor scan_forward(at::Tensor delta, at::Tensor x, at::Tensor A, at::Tensor B, at::Tensor C, at::Tensor D,
                        at::Tensor z, at::Tensor delta_bias, bool softplus) {
  check_shapes(delta, A);
  const auto At = A.t().contiguous();
  auto y = at::empty_like(delta);
  AT_DISPATCH_FLOATING_TYPES(delta.scalar_type(), "scan_forward", [&] {
    const auto s = inputs<scalar_t>(delta, x, At, B, C, D, z, delta_bias, softplus);
    const int64_t blocks = (s.channels + kBlock - 1) / kBlock;
    at::parallel_for(0, s.batch * blocks, grain(s.length, s.channels, s.n), [&](int64_t begin, int64_t end) {
      scalar_t* h = thread_buffer<scalar_t>((s.n + 3) * kBlock);
      scalar_t* const out = y.data_ptr<scalar_t>();
      for (int64_t item = begin; item < end; ++item) {
        const int64_t c0 = (item % blocks) * kBlock;
        if (c0 + kBlock <= s.channels && forward_block(s, out, h, h + s.n * kBlock, item / blocks, c0))
          continue;
        forward_item<scalar_t>(s, out, h, h + s.n * kBlock, item / blocks, c0,
                               std::min(c0 + kBlock, s.channels));
      }
    });
  });
  return y;
}

// The gradients (delta, x, A, B, C, D, z, delta_bias) for d out (b, T, c); that of z empty when z is.
// d_z_out, d_B_out, d_C_out: where to write those gradients ((b, T, c) and (b, T, n) slices of bigger
// gradients, evenly spaced rows: the z half of in_proj's, columns of x_proj's output's), or empty.
std::vector<at::Tensor> scan_backward(at::Tensor dy, at::Tensor delta, at::Tensor x, at::Tensor A, at::Tensor B,
                                      at::Tensor C, at::Tensor D, at::Tensor z, at::Tensor delta_bias,
                                      bool softplus, at::Tensor d_z_out, at::Tensor d_B_out, at::Tensor d_C_out) {
  check_shapes(delta, A);
  check(dy, "dy", delta.sizes(), delta);
  const auto At = A.t().contiguous();
  auto d_delta = at::empty_like(delta), d_x = at::empty_like(x);
  auto d_z = d_z_out.numel() > 0 || z.numel() == 0 ? d_z_out : at::empty(z.sizes(), z.options());
  if (z.numel() > 0) check(d_z, "d_z_out", z.sizes(), delta, true);
  auto d_B = d_B_out.numel() > 0 ? d_B_out : at::empty(B.sizes(), B.options());
  auto d_C = d_C_out.numel() > 0 ? d_C_out : at::empty(C.sizes(), C.options());
  check(d_B, "d_B_out", B.sizes(), delta, true);
  check(d_C, "d_C_out", C.sizes(), delta, true);
  TORCH_CHECK(d_B.stride(1) == d_C.stride(1), "d_B_out and d_C_out must have the same row stride");
  const int64_t batch = delta.size(0), length = delta.size(1), channels = delta.size(2), n = A.size(1);
  const int64_t blocks = (channels + kBlock - 1) / kBlock;
  // Work items are batch rows (each its channel blocks in order), so a row's B and C gradients, sums over
  // its blocks, are written in place. Sums over batch rows (A, D, bias) go to one partial a thread, added
  // after (no races; with one thread, no sum at all).
  const int64_t threads = at::get_num_threads();
  auto d_At = at::zeros({threads, n, channels}, delta.options());
  auto d_D = at::zeros({threads, channels}, delta.options()), d_bias = at::zeros({threads, channels}, delta.options());
  AT_DISPATCH_FLOATING_TYPES(delta.scalar_type(), "scan_backward", [&] {
    const auto s = inputs<scalar_t>(delta, x, At, B, C, D, z, delta_bias, softplus);
    const Grads<scalar_t> g{d_delta.data_ptr<scalar_t>(), d_x.data_ptr<scalar_t>(),
                            s.z ? d_z.data_ptr<scalar_t>() : nullptr, s.z ? d_z.stride(1) : 0,
                            d_At.data_ptr<scalar_t>(),
                            d_D.data_ptr<scalar_t>(), d_bias.data_ptr<scalar_t>(), d_B.data_ptr<scalar_t>(),
                            d_C.data_ptr<scalar_t>(), d_B.stride(1)};
    const scalar_t* const dy_data = dy.data_ptr<scalar_t>();
    const int64_t row_grain = (grain(length, channels, n) + blocks - 1) / blocks;
    at::parallel_for(0, batch, row_grain, [&](int64_t begin, int64_t end) {
      const int64_t tid = thread_slot(threads);
      const Grads<scalar_t> gt{g.delta, g.x, g.z, g.z_row, g.At + tid * n * channels, g.D + tid * channels,
                               g.bias + tid * channels, g.B, g.C, g.bc_row};
      const int64_t row = n * kBlock;
      scalar_t* H = thread_buffer<scalar_t>((2 * length + 2) * row + (2 * length + 4) * kBlock);
      scalar_t* decay = H + (length + 1) * row;
      scalar_t* dh = decay + length * row;
      scalar_t* kept = dh + row;
      scalar_t* scratch = kept + 2 * length * kBlock;
      for (int64_t b = begin; b < end; ++b) {
        for (int64_t t = 0; t < length; ++t) {
          std::fill(g.B + (b * length + t) * g.bc_row, g.B + (b * length + t) * g.bc_row + n, scalar_t(0));
          std::fill(g.C + (b * length + t) * g.bc_row, g.C + (b * length + t) * g.bc_row + n, scalar_t(0));
        }
        for (int64_t block = 0; block < blocks; ++block) {
          const int64_t c0 = block * kBlock;
          if (c0 + kBlock <= channels && backward_block(s, dy_data, gt, H, decay, dh, kept, b, block, c0)) continue;
          backward_item<scalar_t>(s, dy_data, gt, H, decay, dh, kept, scratch, b, block, c0,
                                  std::min(c0 + kBlock, channels));
        }
      }
    });
  });
  return {d_delta, d_x, slots_sum(d_At).t().contiguous(), d_B, d_C, slots_sum(d_D), d_z, slots_sum(d_bias)};
}

// ---- The causal depthwise convolution and SiLU before the scan: out = silu(bias + sum_k w_k x_{t-K+1+k}).
// x (b, T, c) may be a strided view (the x half of in_proj's output), its channels contiguous.

namespace {

template <typename T>
struct Conv {
  const T *x, *wt, *bias;  // wt: the weight transposed, (K, c)
  int64_t batch, length, channels, width, stride_b, stride_t;

  // The pre-activation for the item's channels [c0, c0 + n) at step t, into pre.
  void pre(int64_t b, int64_t t, int64_t c0, int64_t n, T* __restrict pre) const {
    const T* __restrict bs = bias + c0;
SIMD
    for (int64_t j = 0; j < n; ++j) pre[j] = bs[j];
    for (int64_t k = 0; k < width; ++k) {
      const int64_t s = t - width + 1 + k;
      if (s < 0) continue;
      const T* __restrict xs = x + b * stride_b + s * stride_t + c0;
      const T* __restrict wk = wt + k * channels + c0;
SIMD
      for (int64_t j = 0; j < n; ++j) pre[j] += wk[j] * xs[j];
    }
  }
};

template <typename T>
Conv<T> conv_inputs(const at::Tensor& x, const at::Tensor& wt, const at::Tensor& bias) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && x.stride(2) == 1,
              "x must be (b, T, c) on the CPU, channels contiguous");
  TORCH_CHECK(wt.dim() == 2 && wt.size(1) == x.size(2) && wt.is_contiguous() && bias.is_contiguous() &&
              bias.numel() == x.size(2), "weight must be (c, K) and bias (c,)");
  TORCH_CHECK(wt.scalar_type() == x.scalar_type() && bias.scalar_type() == x.scalar_type(), "one dtype");
  return {x.data_ptr<T>(), wt.data_ptr<T>(), bias.data_ptr<T>(), x.size(0), x.size(1), x.size(2), wt.size(0),
          x.stride(0), x.stride(1)};
}

// conv_backward's item for a full block in float and a width up to 4 (Mamba's), in vector types with
// the weight-gradient sums in registers: g_pre (T + K, kBlock) scratch, dwt (K, c) and dbias (c,) the
// thread's partials. False (nothing done) otherwise.
bool conv_backward_block(const Conv<float>& s, const float* __restrict d_out, float* __restrict dx, int64_t dx_row,
                         float* __restrict dwt, float* __restrict dbias, float* __restrict g_pre, int64_t b,
                         int64_t c0) {
  constexpr int64_t kMaxWidth = 4;
  const int64_t K = s.width, L = s.length, c = s.channels;
  if (K > kMaxWidth) return false;
  vf db[kVecs], w[kMaxWidth][kVecs], dw[kMaxWidth][kVecs];
  VECS {
    db[v] = splat(0.0f);
    _Pragma("GCC unroll 4") for (int64_t k = 0; k < kMaxWidth; ++k) {
      w[k][v] = k < K ? vload(s.wt + k * c + c0 + v * kLanes) : splat(0.0f);
      dw[k][v] = splat(0.0f);
    }
  }
  for (int64_t t = 0; t < L; ++t) {  // the gradient of the pre-activation, through silu
    vf p[kVecs];
    VECS p[v] = vload(s.bias + c0 + v * kLanes);
    _Pragma("GCC unroll 4") for (int64_t k = 0; k < kMaxWidth; ++k) {
      const int64_t src = t - K + 1 + k;
      if (k >= K || src < 0) continue;
      const float* __restrict xs = s.x + b * s.stride_b + src * s.stride_t + c0;
      VECS p[v] += w[k][v] * vload(xs + v * kLanes);
    }
    const float* __restrict dyt = d_out + (b * L + t) * c + c0;
    VECS {
      const vf sg = vsigmoid(p[v]);
      const vf g = vload(dyt + v * kLanes) * sg * (1.0f + p[v] * (1.0f - sg));
      vstore(g_pre + t * kBlock + v * kLanes, g);
      db[v] += g;
    }
  }
  std::fill(g_pre + L * kBlock, g_pre + (L + K) * kBlock, 0.0f);
  for (int64_t t = 0; t < L; ++t) {  // x_t feeds the outputs t + K - 1 - k through w_k
    const float* __restrict xt = s.x + b * s.stride_b + t * s.stride_t + c0;
    float* __restrict dxt = dx + (b * L + t) * dx_row + c0;
    vf acc[kVecs], xv[kVecs];
    VECS { acc[v] = splat(0.0f); xv[v] = vload(xt + v * kLanes); }
    _Pragma("GCC unroll 4") for (int64_t k = 0; k < kMaxWidth; ++k) {
      if (k >= K) continue;
      const float* __restrict g = g_pre + (t + K - 1 - k) * kBlock;
      VECS {
        const vf gv = vload(g + v * kLanes);
        acc[v] += w[k][v] * gv;
        dw[k][v] += gv * xv[v];
      }
    }
    VECS vstore(dxt + v * kLanes, acc[v]);
  }
  VECS {
    vstore(dbias + c0 + v * kLanes, vload(dbias + c0 + v * kLanes) + db[v]);
    _Pragma("GCC unroll 4") for (int64_t k = 0; k < kMaxWidth; ++k) {
      if (k < K) vstore(dwt + k * c + c0 + v * kLanes, vload(dwt + k * c + c0 + v * kLanes) + dw[k][v]);
    }
  }
  return true;
}

bool conv_backward_block(const Conv<double>&, const double*, double*, int64_t, double*, double*, double*, int64_t,
                         int64_t) {
  return false;
}

}  // namespace

// silu(causal depthwise conv(x)) (b, T, c) for x (b, T, c), weight (c, K), bias (c,).
at::Tensor conv_forward(at::Tensor x, at::Tensor weight, at::Tensor bias) {
  const auto wt = weight.t().contiguous();
  auto out = at::empty({x.size(0), x.size(1), x.size(2)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_forward", [&] {
    const auto s = conv_inputs<scalar_t>(x, wt, bias);
    const int64_t blocks = (s.channels + kBlock - 1) / kBlock;
    // (data pointers taken once: data_ptr() is a call into libtorch with checks, too dear per row)
    scalar_t* const out_data = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.batch * blocks, grain(s.length, s.channels, s.width), [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / blocks, c0 = (item % blocks) * kBlock, n = std::min(kBlock, s.channels - c0);
        for (int64_t t = 0; t < s.length; ++t) {
          scalar_t* __restrict o = out_data + (b * s.length + t) * s.channels + c0;
          s.pre(b, t, c0, n, o);
SIMD
          for (int64_t j = 0; j < n; ++j) o[j] = o[j] * sigmoid(o[j]);
        }
      }
    });
  });
  return out;
}

// (d x, d weight, d bias) for d out (b, T, c) of conv_forward. dx_out: where to write x's gradient
// (a (b, T, c) slice of a bigger gradient, channels contiguous), or empty.
std::vector<at::Tensor> conv_backward(at::Tensor d_out, at::Tensor x, at::Tensor weight, at::Tensor bias,
                                      at::Tensor dx_out) {
  const auto wt = weight.t().contiguous();
  TORCH_CHECK(d_out.is_contiguous() && d_out.sizes() == x.sizes(), "d_out must be contiguous, x's shape");
  const int64_t batch = x.size(0), channels = x.size(2), width = wt.size(0);
  auto dx = dx_out.numel() > 0 ? dx_out : at::empty({batch, x.size(1), channels}, x.options());
  check(dx, "dx_out", x.sizes(), x, true);
  const int64_t dx_row = dx.stride(1);
  const int64_t threads = at::get_num_threads();  // one partial of the weight and bias gradients a thread
  auto dwt = at::zeros({threads, width, channels}, x.options()), dbias = at::zeros({threads, channels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_backward", [&] {
    const auto s = conv_inputs<scalar_t>(x, wt, bias);
    const int64_t blocks = (s.channels + kBlock - 1) / kBlock, L = s.length;
    scalar_t* const dbias_data = dbias.data_ptr<scalar_t>();
    scalar_t* const dx_data = dx.data_ptr<scalar_t>();
    scalar_t* const dwt_data = dwt.data_ptr<scalar_t>();
    const scalar_t* const d_out_data = d_out.data_ptr<scalar_t>();
    at::parallel_for(0, s.batch * blocks, grain(L, s.channels, s.width), [&](int64_t begin, int64_t end) {
      scalar_t* g_pre = thread_buffer<scalar_t>((L + s.width) * kBlock);  // rows past T stay zero
      const int64_t tid = thread_slot(threads);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / blocks, c0 = (item % blocks) * kBlock, n = std::min(kBlock, s.channels - c0);
        if (n == kBlock && conv_backward_block(s, d_out_data, dx_data, dx_row, dwt_data + tid * s.width * channels,
                                               dbias_data + tid * channels, g_pre, b, c0))
          continue;
        scalar_t* __restrict db = dbias_data + tid * channels + c0;
        for (int64_t t = 0; t < L; ++t) {  // the gradient of the pre-activation, through silu
          scalar_t* __restrict g = g_pre + t * kBlock;
          const scalar_t* __restrict dyt = d_out_data + (b * L + t) * channels + c0;
          s.pre(b, t, c0, n, g);
SIMD
          for (int64_t j = 0; j < n; ++j) {
            const scalar_t sg = sigmoid(g[j]);
            g[j] = dyt[j] * sg * (scalar_t(1) + g[j] * (scalar_t(1) - sg));
            db[j] += g[j];
          }
        }
        std::fill(g_pre + L * kBlock, g_pre + (L + s.width) * kBlock, scalar_t(0));
        for (int64_t t = 0; t < L; ++t) {  // x_t feeds the outputs t + K - 1 - k through w_k
          const scalar_t* __restrict xt = s.x + b * s.stride_b + t * s.stride_t + c0;
          scalar_t* __restrict dxt = dx_data + (b * L + t) * dx_row + c0;
SIMD
          for (int64_t j = 0; j < n; ++j) dxt[j] = scalar_t(0);
          for (int64_t k = 0; k < s.width; ++k) {
            const scalar_t* __restrict g = g_pre + (t + s.width - 1 - k) * kBlock;
            const scalar_t* __restrict wk = s.wt + k * channels + c0;
            scalar_t* __restrict dwk = dwt_data + (tid * s.width + k) * channels + c0;
SIMD
            for (int64_t j = 0; j < n; ++j) {
              dxt[j] += wk[j] * g[j];
              dwk[j] += g[j] * xt[j];
            }
          }
        }
      }
    });
  });
  return {dx, slots_sum(dwt).t().contiguous(), slots_sum(dbias)};
}
"""

_VECTOR_FLAGS = {  # what torch.backends.cpu.get_cpu_capability() found -> gcc flags; never -march=native,
    # so a build cached under one name never meets a CPU without its instructions
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}


@functools.lru_cache(maxsize=None)
def kernel():
    """The compiled module (``scan_forward``, ``scan_backward``, ``conv_forward``, ``conv_backward``), built
    or loaded once a process; None where it cannot be built (then a warning says why) or when
    ``LEARNLAB_SCAN_KERNEL=0``."""
    if os.environ.get("LEARNLAB_SCAN_KERNEL", "1") == "0":
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", "-ffast-math", "-fopenmp", *_VECTOR_FLAGS.get(capability, [])]
    try:
        from torch.utils.cpp_extension import load_inline

        # the torch version and a hash of the source in the name: a build against one torch's headers
        # never loads into another, nor one process's build of an edited source into another process
        digest = hashlib.sha1(_SOURCE.encode()).hexdigest()[:10]
        name = f"learnlab_selective_scan_{capability}_torch{torch.__version__}_{digest}".lower()
        return load_inline(name=re.sub(r"\W", "_", name), cpp_sources=[_SOURCE], extra_cflags=flags,
                           functions=["scan_forward", "scan_backward", "conv_forward", "conv_backward"],
                           extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # no compiler, no ninja, a failed build: the pure-PyTorch scan instead
        lines = str(error).splitlines()
        detail = next((line for line in lines if "error:" in line), lines[0] if lines else "")
        warnings.warn(f"learnlab: the compiled selective scan is unavailable ({type(error).__name__}: {detail[:300]}); "
                      "using the pure-PyTorch scan", RuntimeWarning, stacklevel=2)
        return None


class _CompiledScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, delta, x, A, B, C, D, z, delta_bias, softplus: bool):
        ctx.softplus = softplus
        ctx.save_for_backward(delta, x, A, B, C, D, z, delta_bias)
        return kernel().scan_forward(delta, x, A, B, C, D, z, delta_bias, softplus)

    @staticmethod
    def backward(ctx, dy):
        empty = dy.new_empty(0)
        grads = kernel().scan_backward(dy.contiguous(), *ctx.saved_tensors, ctx.softplus, empty, empty, empty)
        return (*grads, None)


class _CompiledMambaInner(torch.autograd.Function):
    """Everything of a Mamba block between ``in_proj`` and ``out_proj`` as one autograd node, as
    mamba_ssm's ``mamba_inner_fn``: conv + SiLU and the scan in the kernel, the x_proj and dt_proj
    products in torch, the gradient of in_proj's output written in place (no chunk, split or cat)."""

    @staticmethod
    def forward(ctx, xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_bias, A_log, D, d_state: int):
        k = kernel()
        channels, rank = D.shape[0], dt_proj_weight.shape[1]
        batch, length = xz.shape[:2]
        x, z = xz[..., :channels], xz[..., channels:]  # (b, T, c) views, rows 2c apart
        xc = k.conv_forward(x, conv_weight.view(channels, -1), conv_bias)  # (b, T, c): silu(conv(x))
        x_dbl = xc.view(-1, channels) @ x_proj_weight.t()  # (b T, rank + 2n)
        dt = x_dbl[:, :rank]
        B = x_dbl[:, rank:rank + d_state].view(batch, length, d_state)  # (rows rank + 2n apart: no copies)
        C = x_dbl[:, rank + d_state:].view(batch, length, d_state)
        delta = (dt @ dt_proj_weight.t()).view(batch, length, channels)  # before its bias and softplus
        A = -torch.exp(A_log)  # (c, n)
        ctx.save_for_backward(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_bias, A, D, xc, x_dbl,
                              delta)
        ctx.d_state = d_state
        return k.scan_forward(delta, xc, A, B, C, D, z, dt_bias, True)

    @staticmethod
    def backward(ctx, dy):
        k = kernel()
        xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_bias, A, D, xc, x_dbl, delta = ctx.saved_tensors
        n, channels, rank = ctx.d_state, D.shape[0], dt_proj_weight.shape[1]
        batch, length = xz.shape[:2]
        x, z = xz[..., :channels], xz[..., channels:]
        B = x_dbl[:, rank:rank + n].view(batch, length, n)
        C = x_dbl[:, rank + n:].view(batch, length, n)
        d_xz = torch.empty_like(xz, memory_format=torch.contiguous_format)
        d_x_dbl = torch.empty_like(x_dbl)  # (b T, rank + 2n): the kernel writes d B and d C in place, then d dt
        d_delta, d_xc, d_A, _, _, d_D, _, d_dt_bias = k.scan_backward(
            dy.contiguous(), delta, xc, A, B, C, D, z, dt_bias, True, d_xz[..., channels:],
            d_x_dbl[:, rank:rank + n].view(batch, length, n), d_x_dbl[:, rank + n:].view(batch, length, n))
        d_delta = d_delta.view(-1, channels)
        torch.mm(d_delta, dt_proj_weight, out=d_x_dbl[:, :rank])
        d_dt_proj_weight = d_delta.t() @ x_dbl[:, :rank]
        d_x_proj_weight = d_x_dbl.t() @ xc.view(-1, channels)
        d_xc = d_xc.view(-1, channels).addmm_(d_x_dbl, x_proj_weight).view(batch, length, channels)
        d_conv_weight, d_conv_bias = k.conv_backward(d_xc, x, conv_weight.view(channels, -1), conv_bias,
                                                     d_xz[..., :channels])[1:]
        return (d_xz, d_conv_weight.view_as(conv_weight), d_conv_bias, d_x_proj_weight, d_dt_proj_weight, d_dt_bias,
                d_A * A, d_D, None)


def compiled_mamba_inner(xz: torch.Tensor, conv_weight: torch.Tensor, conv_bias: torch.Tensor | None,
                         x_proj_weight: torch.Tensor, dt_proj_weight: torch.Tensor, dt_bias: torch.Tensor,
                         A_log: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``MambaBlock`` from ``in_proj``'s output xz (b, T, 2c) to ``out_proj``'s input (b, T, c), through the
    compiled kernel (call :func:`kernel` first: this assumes it built); the parameters as the block holds
    them (conv_weight (c, 1, K), x_proj_weight (rank + 2n, c), dt_proj_weight (c, rank), A_log (c, n)).
    In float64 if xz is float64, else float32 (bfloat16 under autocast included); returns xz's dtype."""
    compute = torch.float64 if xz.dtype == torch.float64 else torch.float32
    if conv_bias is None:
        conv_bias = conv_weight.new_zeros(conv_weight.shape[0])
    # (each skipped no-op still costs a dispatch: ~20 of them a layer, a step, without these checks)
    args = [t if t.dtype == compute else t.to(compute) for t in (
        xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_bias, A_log, D)]
    args[1:] = [t if t.is_contiguous() else t.contiguous() for t in args[1:]]
    if args[0].stride(-1) != 1 or args[0].stride(0) != args[0].stride(1) * args[0].shape[1]:
        args[0] = args[0].contiguous()
    d_state = (x_proj_weight.shape[0] - dt_proj_weight.shape[1]) // 2
    if torch.is_autocast_enabled(xz.device.type):
        with torch.autocast(xz.device.type, enabled=False):
            out = _CompiledMambaInner.apply(*args, d_state)
    else:
        out = _CompiledMambaInner.apply(*args, d_state)
    return out if out.dtype == xz.dtype else out.to(xz.dtype)


def compiled_selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                            C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                            delta_bias: torch.Tensor | None = None, delta_softplus: bool = False) -> torch.Tensor:
    """``learnlab.models.mamba.selective_scan`` on the CPU through the compiled kernel (call :func:`kernel`
    first: this assumes it built). Computes in float64 if x is float64, else in float32 (bfloat16 inputs
    under autocast included); returns x's dtype, gradients in each input's."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    channels = x.shape[-1]
    zeros = x.new_zeros(channels, dtype=compute)  # no D, no bias: zeros, which get no gradient
    args = [t.to(compute).contiguous() if t is not None else fill
            for t, fill in ((delta, None), (x, None), (A, None), (B, None), (C, None), (D, zeros),
                            (z, x.new_empty(0, dtype=compute)), (delta_bias, zeros))]
    return _CompiledScan.apply(*args, delta_softplus).to(x.dtype)
