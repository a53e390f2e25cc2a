"""(n, k)-sparse parity: inputs uniform on {±1}^n, the label is the product of k hidden bits.

Barak et al., "Hidden Progress in Deep Learning: SGD Learns Parities Near the
Computational Limit" (NeurIPS 2022), Section 2. Online learners draw a fresh batch
every step; offline learners see a fixed training set of m samples.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sparse_parity_support", "sample_sparse_parity", "parity_labels", "sq_success_bound", "sq_frontier_samples"]


def sparse_parity_support(*, n_bits: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """The hidden support S: ``k`` distinct coordinates of ``range(n_bits)``, sorted.

    Returns a (k,) int64 tensor on the generator's device.
    """
    if not 1 <= k <= n_bits:
        raise ValueError(f"k must be in [1, n_bits={n_bits}]; got {k}")
    return torch.randperm(n_bits, generator=generator, device=generator.device)[:k].sort().values


def parity_labels(x: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """y = prod_{i in S} x_i for ±1 inputs ``x`` of shape (..., n); returns (...)."""
    return x.index_select(-1, support).prod(dim=-1)


def sample_sparse_parity(
    n_samples: int,
    *,
    n_bits: int,
    support: torch.Tensor,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n_samples`` labelled examples on the generator's device.

    Returns
    -------
    x : (n_samples, n_bits) tensor of ±1
    y : (n_samples,) tensor of ±1, the parity of ``x`` on ``support``
    """
    bits = torch.randint(0, 2, (n_samples, n_bits), generator=generator, device=generator.device)
    x = (2 * bits - 1).to(dtype)
    return x, parity_labels(x, support)


def sq_success_bound(*, n_bits: int, k: int, n_samples: int, steps: int, n_params: int) -> float:
    """An upper bound on the probability that a gradient method finds the hidden support.

    The statistical-query argument behind the lower-bound frontier of Edelman et al. (2023),
    Section 3, with every constant set to 1 (we state the argument, not the paper's exact
    constants): each step reads ``n_params``
    gradient coordinates, each an average over the data, so a query of tolerance
    tau ~ 1/sqrt(m) on m samples. By Parseval a query correlates above tau with at most
    1/tau^2 of the C(n, k) parities, so T steps rule in at most T P m of them:

        P[success] <= min(1, T * P * m / C(n, k)).

    Success needs a model rich (P), patient (T) or knowledgeable (m) enough, or luck.
    """
    return min(1.0, steps * n_params * n_samples / math.comb(n_bits, k))


def sq_frontier_samples(*, n_bits: int, k: int, steps: int, n_params: int, success: float = 0.5) -> float:
    """The fewest samples m at which ``sq_success_bound`` allows success probability ``success``."""
    return success * math.comb(n_bits, k) / (steps * n_params)
