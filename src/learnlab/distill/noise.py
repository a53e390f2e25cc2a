"""Class-dependent label noise: a fixed class permutation applied to an exact fraction of each class.

Kaplun et al. (2022), Section 5: with probability eta the label y is replaced by pi(y) for a
fixed permutation pi of the classes. Here the rate is exact per class: round(eta n_c) of the
n_c examples of class c are flipped (chosen at random), so a test of "the teacher predicts
pi(y) at rate eta" is not blurred by binomial noise in the training set.
"""

from __future__ import annotations

import torch

__all__ = ["class_permutation", "corrupt_labels"]


def class_permutation(n_classes: int, *, generator: torch.Generator) -> torch.Tensor:
    """A random permutation pi of the classes without fixed points (every flip changes the label)."""
    if n_classes < 2:
        raise ValueError("label noise needs at least 2 classes")
    # A random cyclic shift of a random ordering: a derangement, drawn in one step.
    order = torch.randperm(n_classes, generator=generator, device=generator.device)
    shift = int(torch.randint(1, n_classes, (1,), generator=generator, device=generator.device))
    pi = torch.empty_like(order)
    pi[order] = order.roll(-shift)
    return pi


def corrupt_labels(labels: torch.Tensor, *, rate: float, permutation: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy labels and the (n,) bool mask of flipped examples: exactly round(rate n_c) of each class c."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"the noise rate must be in [0, 1]; got {rate}")
    noisy, flipped = labels.clone(), torch.zeros_like(labels, dtype=torch.bool)
    for c in labels.unique().tolist():  # one vectorised draw per class
        members = (labels == c).nonzero().squeeze(1)
        n_flip = round(rate * len(members))
        chosen = members[torch.randperm(len(members), generator=generator, device=generator.device)[:n_flip]]
        flipped[chosen] = True
        noisy[chosen] = permutation[c]
    return noisy, flipped
