"""Losses for ±1 labels, one value per replica; and the masked next-token loss of language models.

Outputs and labels are (S, B) for an ensemble of S replicas (or (B,) for one model);
each loss returns the mean over the batch, shape (S,) (or a scalar). Summing these over
replicas before ``backward`` gives each replica exactly its own gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["hinge_loss", "square_loss", "logistic_loss", "margin_losses", "sign_accuracy", "replica_accuracy", "replica_sign_accuracy",
           "replica_cross_entropy", "token_loss_sum"]


def hinge_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean max(0, 1 - y f(x)), the loss of Barak et al. (2022)."""
    return torch.clamp_min(1.0 - labels * outputs, 0.0).mean(dim=-1)


def square_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean (f(x) - y)^2."""
    return (outputs - labels).square().mean(dim=-1)


def logistic_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean log(1 + exp(-y f(x))), computed stably."""
    return F.softplus(-labels * outputs).mean(dim=-1)


margin_losses: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "hinge": hinge_loss,
    "square": square_loss,
    "logistic": logistic_loss,
}


def sign_accuracy(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of examples with sign(f(x)) = y (a zero output counts as wrong)."""
    return (outputs * labels > 0).float().mean(dim=-1)


def replica_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each replica's mean cross-entropy on its own examples: logits (S, B, C), labels (S, B)
    of class ids; returns (S,)."""
    n_replicas = logits.shape[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           reduction="none").view(n_replicas, -1).mean(1)


@torch.no_grad()
def replica_accuracy(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Classification accuracy of each replica of a stacked model on its own examples:
    x (S, N, ...), labels (S, N) of class ids; returns (S,). Evaluated in chunks of N."""
    predictions = torch.cat([model(part).argmax(-1) for part in x.split(chunk, dim=1)], dim=1)
    return (predictions == labels).float().mean(dim=1)


@torch.no_grad()
def replica_sign_accuracy(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, chunk: int = 1024
                          ) -> torch.Tensor:
    """:func:`sign_accuracy` of each replica of a stacked model on its own examples, x (S, N, ...),
    labels (S, N) of +-1; returns (S,). In chunks of N: an (S, N, width) hidden layer at once
    costs more in fresh memory pages than in arithmetic."""
    outputs = torch.cat([model(part) for part in x.split(chunk, dim=1)], dim=1)
    return sign_accuracy(outputs, labels)


def token_loss_sum(outputs, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy of ``(logits, ...)`` outputs against targets with -100 where a
    position is not scored: (the sum over scored tokens, their count). ``fit`` divides by the
    count over all data-parallel ranks, so sharded batches give exactly the global mean."""
    logits = outputs[0]
    flat = targets.reshape(-1)
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat, ignore_index=-100, reduction="sum")
    return total, (flat != -100).sum()
