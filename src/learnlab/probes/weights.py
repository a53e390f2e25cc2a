"""Progress measures on first-layer weights (Barak et al. 2022, Section 4.2).

For sparse parities the loss is flat for most of training, yet the weights move
steadily toward the support: these measures make that hidden progress visible.
All take stacked weights W of shape (S, r, n) (S replicas, r neurons, n inputs).
"""

from __future__ import annotations

import torch

__all__ = ["coordinate_magnitude", "support_gap", "weight_movement"]


def coordinate_magnitude(weight: torch.Tensor) -> torch.Tensor:
    """Mean over neurons of |W_ij| for each input coordinate j: (S, r, n) -> (S, n)."""
    return weight.abs().mean(dim=1)


def support_gap(weight: torch.Tensor, supports: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean magnitude on the support and largest magnitude off it.

    Parameters
    ----------
    weight : (S, r, n) first-layer weights
    supports : (S, k) support coordinates of each replica's parity

    Returns
    -------
    on_support : (S,) mean over j in S of the coordinate magnitude
    off_support_max : (S,) max over j not in S of the coordinate magnitude
    """
    magnitude = coordinate_magnitude(weight)  # (S, n)
    on_mask = torch.zeros_like(magnitude, dtype=torch.bool).scatter_(1, supports, True)
    on_support = magnitude.gather(1, supports).mean(dim=1)
    off_support_max = magnitude.masked_fill(on_mask, float("-inf")).max(dim=1).values
    return on_support, off_support_max


def weight_movement(weight: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """rho_t = max_ij |W_t - W_0|, per replica: (S, r, n) -> (S,)."""
    return (weight - initial).abs().flatten(1).max(dim=1).values
