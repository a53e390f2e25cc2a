"""A Gaussian mixture classification task with an exactly known Bayes classifier.

Kaplun, Malach, Nakkiran, Shalev-Shwartz, "Knowledge Distillation: Bad Models Can Be Good
Role Models" (NeurIPS 2022), Section 5: four unit-variance Gaussians in the plane at
(+-2, 0) and (0, +-2), equal priors, one class each. With equal priors and covariances the
Bayes classifier is the nearest centre, and its accuracy is
P[x_1 > |x_2|] for x ~ N((2, 0), I) = int phi(t) Phi(2 - |t|) dt = 0.850.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CENTERS", "sample_gaussian_mixture", "bayes_predict", "bayes_accuracy"]

CENTERS = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])


def sample_gaussian_mixture(n_samples: int, *, generator: torch.Generator,
                            centers: torch.Tensor = CENTERS) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, 2) float32 and y (n,) int64, equal class priors, unit covariance."""
    y = torch.randint(0, len(centers), (n_samples,), generator=generator, device=generator.device)
    noise = torch.randn(n_samples, centers.shape[1], generator=generator, device=generator.device)
    return centers.to(generator.device)[y] + noise, y


def bayes_predict(x: torch.Tensor, centers: torch.Tensor = CENTERS) -> torch.Tensor:
    """The Bayes classifier: the nearest centre (equal priors and covariances)."""
    return torch.cdist(x, centers.to(x.device)).argmin(dim=1)


def bayes_accuracy(separation: float = 2.0) -> float:
    """Exact Bayes accuracy of the four-Gaussian task with centres at distance ``separation``
    from the origin on the axes: int phi(t) Phi(separation - |t|) dt (scipy quadrature)."""
    from scipy import integrate
    from scipy.stats import norm

    value, _ = integrate.quad(lambda t: norm.pdf(t) * norm.cdf(separation - abs(t)), -math.inf, math.inf)
    return float(value)
