"""Hidden-progress measures for sparse parities (Barak et al. 2022, Sections 4.2 and 5).

- :func:`neuron_support_margin`: per neuron, the mean |w| on the support minus the
  largest |w| off it; positive once a neuron has singled out the support.
- :func:`neuron_support_share`: per neuron, the mean |w| on the support over the mean |w|
  off it; its growth from W_0 is the amplification the Fourier gap drives.
- :func:`unit_init_fourier_gap`: the Fourier gap of the population gradient of a ReLU
  neuron at the all-ones initialisation w = 1, b = 0, exactly, for any n.

At w = 1 the neuron's derivative 1[sum(x) > 0] depends on x only through s = sum(x), so
its Fourier coefficient on any set T of size l is a one-dimensional sum (a Krawtchouk
polynomial): E[g(s) chi_T(x)] = sum_j C(n, j) / 2^n g(n - 2j) K_l(j) / C(n, l), with j
the number of -1 coordinates and K_l(j) = sum_i (-1)^i C(j, i) C(n - j, l - i). For
n <= 15 it equals :func:`learnlab.probes.fourier.fourier_gap` by enumeration (tested).
"""

from __future__ import annotations

import math

import torch

__all__ = ["neuron_support_margin", "neuron_support_share", "symmetric_fourier_coefficient", "unit_init_fourier_gap"]


def neuron_support_margin(weight: torch.Tensor, supports: torch.Tensor) -> torch.Tensor:
    """Mean |W_ij| over j in S minus max |W_ij| over j not in S, per neuron.

    weight : (S, r, n) stacked first-layer weights; supports : (S, k). Returns (S, r).
    """
    magnitude = weight.abs()  # (S, r, n)
    index = supports.unsqueeze(1).expand(-1, magnitude.shape[1], -1)  # (S, r, k)
    on_support = magnitude.gather(2, index).mean(dim=2)  # (S, r)
    on_mask = torch.zeros_like(magnitude, dtype=torch.bool).scatter_(2, index, True)
    off_support_max = magnitude.masked_fill(on_mask, float("-inf")).max(dim=2).values  # (S, r)
    return on_support - off_support_max


def neuron_support_share(weight: torch.Tensor, supports: torch.Tensor) -> torch.Tensor:
    """Mean |W_ij| over j in S divided by mean |W_ij| over j not in S, per neuron.

    weight : (S, r, n) stacked first-layer weights; supports : (S, k). Returns (S, r).
    Near 1 for weights that ignore the support (every coordinate alike).
    """
    magnitude = weight.abs()  # (S, r, n)
    index = supports.unsqueeze(1).expand(-1, magnitude.shape[1], -1)  # (S, r, k)
    on_support = magnitude.gather(2, index).mean(dim=2)  # (S, r)
    off_support = (magnitude.sum(dim=2) - magnitude.gather(2, index).sum(dim=2)) / (magnitude.shape[2] - index.shape[2])
    return on_support / off_support.clamp_min(torch.finfo(magnitude.dtype).tiny)


def symmetric_fourier_coefficient(n: int, degree: int, values) -> float:
    """E[g(sum x) chi_T(x)] for |T| = ``degree``, where ``values(s)`` gives g at s = sum(x)."""
    if degree > n:
        return 0.0
    total = 0.0
    for j in range(n + 1):  # j coordinates equal to -1: s = n - 2j
        krawtchouk = sum((-1) ** i * math.comb(j, i) * math.comb(n - j, degree - i) for i in range(degree + 1))
        total += math.comb(n, j) * values(n - 2 * j) * krawtchouk
    return total / (2**n * math.comb(n, degree))


def unit_init_fourier_gap(n: int, k: int) -> float:
    """gamma = |g^(k-1)| - |g^(k+1)| for g(s) = 1[s > 0], the ReLU derivative at w = 1, b = 0.

    The population correlation gradient on a support coordinate is the coefficient of
    order k - 1, off the support that of order k + 1 (``probes.fourier``). gamma is
    positive when n or k is even; for n and k both odd, g is (1 + majority) / 2, whose
    even-order coefficients vanish, and gamma = 0.
    """
    step = lambda s: 1.0 if s > 0 else 0.0  # noqa: E731
    return abs(symmetric_fourier_coefficient(n, k - 1, step)) - abs(symmetric_fourier_coefficient(n, k + 1, step))
