"""The selective scan as a small compiled CPU kernel (C++, built once by ``torch.utils.cpp_extension``).

The recurrence of ``learnlab.models.mamba``, per batch row, channel c and state n:

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t,    y_t = C_t . h_t

In PyTorch each time step is a handful of small kernels over (b, c, n) tensors that go
through memory; here one loop keeps a block of 64 channels' state (64 x n floats) in L1 and
touches each input once. Work items are (batch row, block of channels), split over threads
by ``at::parallel_for`` (PyTorch's own OpenMP pool). The backward recomputes the item's
states into a (T + 1, 64, n) buffer (~270 kB at T = 64, n = 16: in L2), then runs the
reverse scan, as the CUDA kernel of ``mamba_ssm`` does; only the inputs are saved.

Built with ``-O3 -ffast-math`` (so gcc calls glibc's vectorised ``expf``) and the vector
extensions PyTorch itself found on this CPU; ``-ffast-math`` is a compile flag only, never
a link flag, so the process's denormal mode is untouched. The build is cached in the torch
extensions directory (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``):
about a minute once, then a load of ~0.1 s. Where it cannot be built (no compiler, no
ninja), :func:`kernel` returns None once, with a warning, and callers take the pure-PyTorch
scan.
"""

from __future__ import annotations

import functools
import os
import re
import warnings

import torch

__all__ = ["kernel", "compiled_selective_scan"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kBlock = 64;  // channels a work item owns: its state, 64 x n, stays in L1

template <typename T>
inline T sigmoid(T v) {  // exp of a non-positive number only
  if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
  const T e = std::exp(v);
  return e / (T(1) + e);
}

// The inputs, whole tensors (all contiguous, one dtype); z and the outputs' partial sums per item.
template <typename T>
struct Inputs {
  const T *delta, *x, *A, *B, *C, *D, *z, *bias;  // z: nullptr when there is no gate
  bool softplus;
  int64_t batch, length, channels, n;

  T delta_at(int64_t i, int64_t c) const {  // Delta = softplus(delta + bias), torch's threshold 20
    const T v = delta[i] + bias[c];
    return !softplus || v > T(20) ? v : std::log1p(std::exp(v));
  }
};

// Forward of one item: batch row b, channels [c0, c1). N: the state size when known at compile
// time (each inner loop is then a few whole vector instructions, with no remainder loop or
// aliasing checks: ~2x faster at n = 16), 0 for any n. h: (c1 - c0, n) scratch.
template <typename T, int N>
void forward_item(const Inputs<T>& s, T* __restrict y, T* __restrict h, int64_t b, int64_t c0, int64_t c1) {
  const int64_t n = N > 0 ? N : s.n, L = s.length, ch = s.channels;
  std::fill(h, h + (c1 - c0) * n, T(0));
  for (int64_t t = 0; t < L; ++t) {
    const T* __restrict Bt = s.B + (b * L + t) * n;
    const T* __restrict Ct = s.C + (b * L + t) * n;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t i = (b * L + t) * ch + c;
      const T d = s.delta_at(i, c), xv = s.x[i], u = d * xv;
      const T* __restrict Ac = s.A + c * n;
      T* __restrict hc = h + (c - c0) * n;
      T acc = 0;
      for (int64_t k = 0; k < n; ++k) {
        hc[k] = std::exp(d * Ac[k]) * hc[k] + u * Bt[k];
        acc += Ct[k] * hc[k];
      }
      T out = acc + s.D[c] * xv;
      if (s.z) out *= s.z[i] * sigmoid(s.z[i]);
      y[i] = out;
    }
  }
}

template <typename T>
struct Grads {
  T *delta, *x, *z;  // (b, T, c), z nullptr when there is no gate
  T *A, *D, *bias;   // per batch row: (b, c, n), (b, c), (b, c)
  T *B, *C;          // per channel block: (blocks, b, T, n)
};

// Backward of one item. H: (T + 1, c1 - c0, n) scratch, row 0 the zero initial state; dh: (c1 - c0, n);
// kept: (2, T, c1 - c0), Delta and C_t . h_t of the recomputed forward.
// dh_t = C_t dy_t + a_{t+1} dh_{t+1};  g = dh_t a_t h_{t-1} is the gradient of delta_t A.
template <typename T, int N>
void backward_item(const Inputs<T>& s, const T* __restrict dy, const Grads<T>& g, T* __restrict H,
                   T* __restrict dh, T* __restrict kept, int64_t b, int64_t block, int64_t c0, int64_t c1) {
  const int64_t n = N > 0 ? N : s.n, L = s.length, ch = s.channels, width = c1 - c0, row = width * n;
  T* __restrict kept_delta = kept;
  T* __restrict kept_y = kept + L * width;
  std::fill(H, H + row, T(0));
  for (int64_t t = 0; t < L; ++t) {  // the forward again, every state kept this time
    const T* __restrict Bt = s.B + (b * L + t) * n;
    const T* __restrict Ct = s.C + (b * L + t) * n;
    const T* __restrict prev = H + t * row;
    T* __restrict next = H + (t + 1) * row;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t i = (b * L + t) * ch + c, o = (c - c0) * n;
      const T d = s.delta_at(i, c), u = d * s.x[i];
      const T* __restrict Ac = s.A + c * n;
      T acc = 0;
      for (int64_t k = 0; k < n; ++k) {
        next[o + k] = std::exp(d * Ac[k]) * prev[o + k] + u * Bt[k];
        acc += Ct[k] * next[o + k];
      }
      kept_delta[t * width + c - c0] = d;
      kept_y[t * width + c - c0] = acc;
    }
  }
  std::fill(dh, dh + row, T(0));
  T* __restrict dA = g.A + b * ch * n;
  T* __restrict dD = g.D + b * ch;
  T* __restrict dbias = g.bias + b * ch;
  for (int64_t t = L - 1; t >= 0; --t) {
    const T* __restrict Bt = s.B + (b * L + t) * n;
    const T* __restrict Ct = s.C + (b * L + t) * n;
    const T* __restrict ht = H + (t + 1) * row;
    const T* __restrict hp = H + t * row;
    // dB_t and dC_t sum over the channels: in registers when N is known (a sum through memory
    // would wait on its own store at every channel), else straight into the zeroed outputs.
    alignas(64) T sum_B[N > 0 ? N : 1] = {}, sum_C[N > 0 ? N : 1] = {};
    T* __restrict dBt = N > 0 ? sum_B : g.B + ((block * s.batch + b) * L + t) * n;
    T* __restrict dCt = N > 0 ? sum_C : g.C + ((block * s.batch + b) * L + t) * n;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t i = (b * L + t) * ch + c, o = (c - c0) * n;
      const T d = kept_delta[t * width + c - c0], xv = s.x[i], u = d * xv, Dc = s.D[c];
      T g_y = dy[i];  // the gradient of out = (y + D x) silu(z), then of y
      if (s.z) {
        const T zv = s.z[i], sg = sigmoid(zv);
        g.z[i] = g_y * (kept_y[t * width + c - c0] + Dc * xv) * sg * (T(1) + zv * (T(1) - sg));
        g_y *= zv * sg;
      }
      dD[c] += g_y * xv;
      const T* __restrict Ac = s.A + c * n;
      T* __restrict dAc = dA + c * n;
      T d_u = 0, d_d = 0;
      for (int64_t k = 0; k < n; ++k) {
        const T g_h = dh[o + k] + Ct[k] * g_y;  // dh_t
        const T a = std::exp(d * Ac[k]);
        const T g_a = g_h * a * hp[o + k];
        dCt[k] += g_y * ht[o + k];
        dBt[k] += g_h * u;
        d_u += g_h * Bt[k];
        d_d += g_a * Ac[k];
        dAc[k] += g_a * d;
        dh[o + k] = g_h * a;  // a_t dh_t, what reaches h_{t-1}
      }
      g.x[i] = d_u * d + g_y * Dc;
      T g_d = d_d + d_u * xv;
      if (s.softplus) {
        const T v = s.delta[i] + s.bias[c];
        if (!(v > T(20))) g_d *= sigmoid(v);
      }
      g.delta[i] = g_d;
      dbias[c] += g_d;
    }
    if (N > 0) {
      std::copy(sum_B, sum_B + n, g.B + ((block * s.batch + b) * L + t) * n);
      std::copy(sum_C, sum_C + n, g.C + ((block * s.batch + b) * L + t) * n);
    }
  }
}

// fn.template operator()<N>() with N the state size if it is a common one, else 0.
template <typename F>
void with_state_size(int64_t n, F&& fn) {
  switch (n) {
    case 4: fn.template operator()<4>(); break;
    case 8: fn.template operator()<8>(); break;
    case 16: fn.template operator()<16>(); break;
    case 32: fn.template operator()<32>(); break;
    default: fn.template operator()<0>();
  }
}

// Items per thread at least: small problems (the tests' gradchecks) run on the calling thread, as
// waking the pool costs more than their whole scan.
int64_t grain(int64_t length, int64_t channels, int64_t n) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, length * std::min(channels, kBlock) * n));
}

void check(const at::Tensor& t, const char* name, at::IntArrayRef shape, const at::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU (this kernel is CPU-only)");
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have the dtype of delta");
}

template <typename T>
Inputs<T> inputs(const at::Tensor& delta, const at::Tensor& x, const at::Tensor& A, const at::Tensor& B,
                 const at::Tensor& C, const at::Tensor& D, const at::Tensor& z, const at::Tensor& bias,
                 bool softplus) {
  TORCH_CHECK(delta.dim() == 3 && A.dim() == 2, "delta must be (b, T, c) and A (c, n)");
  const int64_t batch = delta.size(0), length = delta.size(1), channels = delta.size(2), n = A.size(1);
  check(delta, "delta", {batch, length, channels}, delta);
  check(x, "x", {batch, length, channels}, delta);
  check(A, "A", {channels, n}, delta);
  check(B, "B", {batch, length, n}, delta);
  check(C, "C", {batch, length, n}, delta);
  check(D, "D", {channels}, delta);
  check(bias, "delta_bias", {channels}, delta);
  if (z.numel() > 0) check(z, "z", {batch, length, channels}, delta);
  return {delta.data_ptr<T>(), x.data_ptr<T>(), A.data_ptr<T>(), B.data_ptr<T>(), C.data_ptr<T>(),
          D.data_ptr<T>(), z.numel() > 0 ? z.data_ptr<T>() : nullptr, bias.data_ptr<T>(), softplus,
          batch, length, channels, n};
}

}  // namespace

// out (b, T, c) = (scan(x, softplus?(delta + delta_bias), A, B, C) + D x) * silu(z); z empty: no gate.
at::Tensor scan_forward(at::Tensor delta, at::Tensor x, at::Tensor A, at::Tensor B, at::Tensor C, at::Tensor D,
                        at::Tensor z, at::Tensor delta_bias, bool softplus) {
  auto y = at::empty_like(delta);
  AT_DISPATCH_FLOATING_TYPES(delta.scalar_type(), "scan_forward", [&] {
    const auto s = inputs<scalar_t>(delta, x, A, B, C, D, z, delta_bias, softplus);
    const int64_t blocks = (s.channels + kBlock - 1) / kBlock;
    with_state_size(s.n, [&]<int N>() {
      at::parallel_for(0, s.batch * blocks, grain(s.length, s.channels, s.n), [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> h(kBlock * s.n);
        for (int64_t item = begin; item < end; ++item) {
          const int64_t c0 = (item % blocks) * kBlock;
          forward_item<scalar_t, N>(s, y.data_ptr<scalar_t>(), h.data(), item / blocks, c0,
                                    std::min(c0 + kBlock, s.channels));
        }
      });
    });
  });
  return y;
}

// The gradients (delta, x, A, B, C, D, z, delta_bias) for d out (b, T, c); that of z empty when z is.
std::vector<at::Tensor> scan_backward(at::Tensor dy, at::Tensor delta, at::Tensor x, at::Tensor A, at::Tensor B,
                                      at::Tensor C, at::Tensor D, at::Tensor z, at::Tensor delta_bias,
                                      bool softplus) {
  check(dy, "dy", delta.sizes(), delta);
  auto d_delta = at::empty_like(delta), d_x = at::empty_like(x), d_z = at::empty_like(z);
  const int64_t batch = delta.size(0), length = delta.size(1), channels = delta.size(2), n = A.size(1);
  const int64_t blocks = (channels + kBlock - 1) / kBlock;
  // Sums over batch rows (A, D, bias) and channel blocks (B, C) are per-item partials added after: no races.
  auto d_A = at::zeros({batch, channels, n}, delta.options());
  auto d_D = at::zeros({batch, channels}, delta.options()), d_bias = at::zeros({batch, channels}, delta.options());
  auto d_B = at::zeros({blocks, batch, length, n}, delta.options());
  auto d_C = at::zeros({blocks, batch, length, n}, delta.options());
  AT_DISPATCH_FLOATING_TYPES(delta.scalar_type(), "scan_backward", [&] {
    const auto s = inputs<scalar_t>(delta, x, A, B, C, D, z, delta_bias, softplus);
    const Grads<scalar_t> g{d_delta.data_ptr<scalar_t>(), d_x.data_ptr<scalar_t>(),
                            s.z ? d_z.data_ptr<scalar_t>() : nullptr, d_A.data_ptr<scalar_t>(),
                            d_D.data_ptr<scalar_t>(), d_bias.data_ptr<scalar_t>(), d_B.data_ptr<scalar_t>(),
                            d_C.data_ptr<scalar_t>()};
    with_state_size(n, [&]<int N>() {
      at::parallel_for(0, batch * blocks, grain(length, channels, n), [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> H((length + 1) * kBlock * n), dh(kBlock * n), kept(2 * length * kBlock);
        for (int64_t item = begin; item < end; ++item) {
          const int64_t b = item / blocks, block = item % blocks, c0 = block * kBlock;
          backward_item<scalar_t, N>(s, dy.data_ptr<scalar_t>(), g, H.data(), dh.data(), kept.data(), b, block,
                                     c0, std::min(c0 + kBlock, channels));
        }
      });
    });
  });
  return {d_delta, d_x, d_A.sum(0), d_B.sum(0), d_C.sum(0), d_D.sum(0), d_z, d_bias.sum(0)};
}
"""

_VECTOR_FLAGS = {  # what torch.backends.cpu.get_cpu_capability() found -> gcc flags; never -march=native,
    # so a build cached under one name never meets a CPU without its instructions
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}


@functools.lru_cache(maxsize=None)
def kernel():
    """The compiled module (``scan_forward``, ``scan_backward``), built or loaded once a process; None
    where it cannot be built (then a warning says why) or when ``LEARNLAB_SCAN_KERNEL=0``."""
    if os.environ.get("LEARNLAB_SCAN_KERNEL", "1") == "0":
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", "-ffast-math", "-fopenmp", *_VECTOR_FLAGS.get(capability, [])]
    try:
        from torch.utils.cpp_extension import load_inline

        # the torch version in the name: a build against one torch's headers never loads into another
        name = f"learnlab_selective_scan_{capability}_torch{torch.__version__}".lower()
        return load_inline(name=re.sub(r"\W", "_", name), cpp_sources=[_SOURCE],
                           functions=["scan_forward", "scan_backward"], extra_cflags=flags,
                           extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # no compiler, no ninja, a failed build: the pure-PyTorch scan instead
        warnings.warn(f"learnlab: the compiled selective scan is unavailable ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); using the pure-PyTorch scan",
                      RuntimeWarning, stacklevel=2)
        return None


class _CompiledScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, delta, x, A, B, C, D, z, delta_bias, softplus: bool):
        ctx.softplus = softplus
        ctx.save_for_backward(delta, x, A, B, C, D, z, delta_bias)
        return kernel().scan_forward(delta, x, A, B, C, D, z, delta_bias, softplus)

    @staticmethod
    def backward(ctx, dy):
        grads = kernel().scan_backward(dy.contiguous(), *ctx.saved_tensors, ctx.softplus)
        return (*grads, None)


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
