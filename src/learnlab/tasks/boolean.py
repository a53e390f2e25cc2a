"""Boolean targets of k hidden bits on the hypercube, under product input distributions.

The tasks of Abbe et al. (2021) and Malach et al. (2021): a k-sparse parity under the
biased distribution D_alpha (i.i.d. coordinates with E[x_i] = alpha; alpha = 0 is uniform),
where the parity correlates with each of its bits (E[y x_i] = alpha^(k-1) for i in S) and
gradient descent can find its support; the parity mixture (with probability 1/2 the
relevant bits are all equal), another way to give the parity low-order correlations; and
the majority of k bits, which is SQ-easy (every relevant bit correlates with it).
"""

from __future__ import annotations

from typing import Literal

import torch

from learnlab.tasks.sparse_parity import parity_labels

__all__ = ["BooleanTarget", "sample_hypercube", "boolean_labels", "sample_boolean_task", "label_bias"]

BooleanTarget = Literal["parity", "majority", "parity_mixture"]


def sample_hypercube(n_samples: int, *, n_bits: int, alpha: float = 0.0, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_samples, n_bits) of ±1 with i.i.d. coordinates, P[x_i = 1] = (1 + alpha) / 2."""
    if not -1.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [-1, 1]; got {alpha}")
    uniform = torch.rand((n_samples, n_bits), generator=generator, device=generator.device)
    return torch.where(uniform < (1 + alpha) / 2, 1.0, -1.0).to(dtype)


def boolean_labels(x: torch.Tensor, support: torch.Tensor, target: BooleanTarget) -> torch.Tensor:
    """The ±1 label of each row of x (..., n): the parity or the majority of the bits in ``support``."""
    if target == "majority":
        if len(support) % 2 == 0:
            raise ValueError(f"the majority needs an odd number of bits; got k = {len(support)}")
        return torch.sign(x.index_select(-1, support).sum(-1))
    return parity_labels(x, support)


def sample_boolean_task(n_samples: int, *, n_bits: int, support: torch.Tensor, target: BooleanTarget = "parity",
                        alpha: float = 0.0, generator: torch.Generator,
                        dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled examples: x (n_samples, n_bits) ±1 from D_alpha, y (n_samples,) ±1.

    ``parity_mixture``: each example, with probability 1/2, has its relevant bits set to
    one common uniformly random sign (the rest from D_alpha), so that the parity has a
    nonzero correlation with every relevant bit even at alpha = 0.
    """
    x = sample_hypercube(n_samples, n_bits=n_bits, alpha=alpha, generator=generator, dtype=dtype)
    if target == "parity_mixture":
        equal = torch.rand(n_samples, generator=generator, device=generator.device) < 0.5
        common = torch.where(torch.rand(n_samples, generator=generator, device=generator.device) < 0.5, 1.0, -1.0)
        relevant = x[:, support]
        x[:, support] = torch.where(equal.unsqueeze(1), common.to(dtype).unsqueeze(1), relevant)
        return x, parity_labels(x, support)
    return x, boolean_labels(x, support, target)


def label_bias(*, k: int, alpha: float, target: BooleanTarget = "parity") -> float:
    """E[y] under D_alpha: alpha^k for the parity (the best constant predictor's edge)."""
    if target != "parity":
        raise ValueError("label_bias is exact for the parity only")
    return alpha**k
