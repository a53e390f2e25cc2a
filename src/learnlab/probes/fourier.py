"""The Fourier gap of the population gradient, exactly, by enumerating {+-1}^n (n <= 16).

Barak et al. (2022), Section 4: for a neuron sigma(w . x + b) and the correlation loss
L(w) = -E[chi_S(x) sigma(w . x + b)], coordinate i of the gradient is
-E[sigma'(w . x + b) chi_{S delta {i}}(x)]: the Fourier coefficient of sigma'(w . x + b) on
S minus {i} (order k-1) for i in S and on S plus {i} (order k+1) otherwise. The gap (the
smallest |coefficient| of order k-1 minus the largest of order k+1) is what lets SGD
amplify the support coordinates before the loss moves.
"""

from __future__ import annotations

import itertools

import torch

__all__ = ["hypercube", "correlation_gradient", "fourier_gap"]

_DERIVATIVES = {
    "relu": lambda z: (z > 0).to(z.dtype),
    "tanh": lambda z: 1 - torch.tanh(z) ** 2,
    "sin": torch.cos,
}


def hypercube(n: int, device="cpu", dtype=torch.float64) -> torch.Tensor:
    """All 2^n points of {+-1}^n: (2^n, n)."""
    if n > 16:
        raise ValueError(f"exact enumeration is limited to n <= 16 (2^n points); got n={n}")
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), device=device, dtype=dtype)


def correlation_gradient(weight: torch.Tensor, bias: torch.Tensor | None, support: torch.Tensor,
                         activation: str = "relu", cube: torch.Tensor | None = None) -> torch.Tensor:
    """E[sigma'(w . x + b) chi_S(x) x_i] for every neuron and coordinate: (..., r, n) -> (..., r, n).

    This is minus the correlation-loss gradient, i.e. the Fourier coefficient of
    sigma'(w . x + b) on S delta {i}. ``support`` is (k,), or (S, k) for stacked weights
    (S, r, n) with one support per replica.
    """
    n = weight.shape[-1]
    cube = hypercube(n, weight.device) if cube is None else cube
    z = weight.double() @ cube.T  # (..., r, 2^n)
    if bias is not None:
        z = z + bias.double().unsqueeze(-1)
    chi = cube[:, support].prod(dim=-1)  # (2^n,) or (2^n, S): chi_S(x)
    if chi.dim() == 2:
        chi = chi.T.unsqueeze(1)  # (S, 1, 2^n)
    signed = _DERIVATIVES[activation](z) * chi  # sigma'(z) chi_S(x)
    return signed @ cube / cube.shape[0]  # (..., r, n)


def fourier_gap(weight: torch.Tensor, bias: torch.Tensor | None, support: torch.Tensor,
                activation: str = "relu", cube: torch.Tensor | None = None) -> torch.Tensor:
    """min over i in S minus max over i not in S of |gradient coordinate i|: (..., r, n) -> (..., r)."""
    magnitude = correlation_gradient(weight, bias, support, activation, cube).abs()  # (..., r, n)
    on = torch.zeros(*support.shape[:-1], weight.shape[-1], dtype=torch.bool, device=weight.device)
    on.scatter_(-1, support, True)  # (n,) or (S, n)
    on = on.unsqueeze(-2).expand_as(magnitude)
    smallest_on = magnitude.masked_fill(~on, float("inf")).min(dim=-1).values
    largest_off = magnitude.masked_fill(on, float("-inf")).max(dim=-1).values
    return smallest_on - largest_off
