"""Interpolating teachers that behave as conditional samplers, and how to label with them.

Kaplun et al. (2022): a model that interpolates noisy labels (1-NN, an interpolating
kernel machine, an overparameterised network at 100% training accuracy) predicts, on a
test point, roughly a *sample* from the noisy conditional p(y~ | x), so it is a bad
classifier; a student trained on its labels of fresh inputs averages the samples and
approaches the Bayes classifier. Every teacher offers ``predict_proba(x) -> (N, C)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Teacher", "NearestNeighbourTeacher", "KernelTeacher", "NetworkTeacher", "flip_rate", "teacher_targets"]


class Teacher(Protocol):
    n_classes: int

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor: ...


class NearestNeighbourTeacher:
    """k-NN (scikit-learn); k = 1 interpolates its training labels."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int, k: int = 1):
        from sklearn.neighbors import KNeighborsClassifier

        self.n_classes = n_classes
        self.model = KNeighborsClassifier(n_neighbors=k).fit(x.cpu().numpy(), y.cpu().numpy())

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        proba = np.zeros((len(x), self.n_classes))
        proba[:, self.model.classes_] = self.model.predict_proba(x.cpu().numpy())
        return torch.tensor(proba, dtype=torch.float32, device=x.device)


class KernelTeacher:
    """RBF kernel regression onto one-hot labels with a vanishing ridge: it interpolates.

    alpha = (K + ridge I)^-1 Y, computed in float64; f(x) = k(x, X) alpha; the class is
    the argmax, and ``predict_proba`` is that one-hot (the machine is used as a classifier).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int, bandwidth: float = 0.1,
                 ridge: float = 1e-8):
        self.n_classes, self.bandwidth = n_classes, bandwidth
        self.x = x.double()
        kernel = self._kernel(self.x, self.x)
        targets = F.one_hot(y, n_classes).double()
        self.alpha = torch.linalg.solve(kernel + ridge * torch.eye(len(x), dtype=torch.float64, device=x.device),
                                        targets)

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).square() / (2 * self.bandwidth**2))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.cat([self._kernel(chunk.double(), self.x) @ self.alpha for chunk in x.split(4096)])
        return F.one_hot(scores.argmax(dim=1), self.n_classes).float()


class NetworkTeacher:
    """A model trained on the noisy labels until it fits all of them (or ``max_steps``)."""

    def __init__(self, model: torch.nn.Module, n_classes: int):
        self.model, self.n_classes = model, n_classes

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return torch.cat([F.softmax(self.model(chunk), dim=-1) for chunk in x.split(4096)])


def flip_rate(predictions: torch.Tensor, clean_labels: torch.Tensor, permutation: torch.Tensor) -> float:
    """How often the teacher predicts pi(y) on clean test points: a sampler of the noisy
    conditional does so at about the noise rate, a good classifier almost never."""
    return float((predictions == permutation[clean_labels]).float().mean())


def teacher_targets(probabilities: Sequence[torch.Tensor] | torch.Tensor,
                    mode: Literal["single", "random_per_example", "ensemble"], *, soft: bool,
                    generator: torch.Generator) -> torch.Tensor:
    """Targets (N, C) for a student from a pool's predicted probabilities (M, N, C).

    ``single``: teacher 0; ``random_per_example``: an independent random teacher for every
    example (the scheme of the theory; the official code draws one per batch); ``ensemble``:
    the mean probability (soft) or the majority vote (hard). Hard targets are one-hot.
    """
    probabilities = torch.stack(list(probabilities)) if not isinstance(probabilities, torch.Tensor) else probabilities
    m, n, c = probabilities.shape
    if mode == "single":
        chosen = probabilities[0]
    elif mode == "random_per_example":
        teacher = torch.randint(0, m, (n,), generator=generator, device=generator.device).to(probabilities.device)
        chosen = probabilities[teacher, torch.arange(n, device=probabilities.device)]
    elif mode == "ensemble":
        if soft:
            return probabilities.mean(dim=0)
        votes = F.one_hot(probabilities.argmax(dim=2), c).sum(dim=0).float()  # (N, C)
        return F.one_hot(votes.argmax(dim=1), c).float()
    else:
        raise ValueError(f"unknown distillation mode {mode!r}")
    return chosen if soft else F.one_hot(chosen.argmax(dim=1), c).float()
