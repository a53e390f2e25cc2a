"""The targets of the mnist1d proxy and paired per-class draws."""

from __future__ import annotations

import torch

from learnlab.tasks.mnist1d import STRONGER_SHIFT, new_templates, sample_mnist1d

TARGETS = ("shift", "new_classes")
NEW_CLASS_TEMPLATES_SEED = 1234


def target(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``shift``: the source's classes under a stronger input shift (the CIFAR-10-C analogue);
    ``new_classes``: ten classes from new random templates (the new-task analogue)."""
    if name == "shift":
        return sample_mnist1d(n, seed=seed, **STRONGER_SHIFT)
    return sample_mnist1d(n, seed=seed, templates=new_templates(NEW_CLASS_TEMPLATES_SEED))


def per_class_index(y: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Indices of ``size`` examples of every class, drawn by ``seed`` (paired across methods)."""
    g = torch.Generator().manual_seed(seed)
    picks = [torch.nonzero(y == c).flatten() for c in range(int(y.max()) + 1)]
    return torch.cat([p[torch.randperm(len(p), generator=g)[:size]] for p in picks])


def per_class(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` examples of every class, drawn by ``seed`` (paired across methods)."""
    index = per_class_index(y, size, seed)
    return x[index], y[index]
