"""What differs between the replicas of a stacked ensemble while it trains, given to ``fit``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ReplicaControl"]


@dataclass
class ReplicaControl:
    """Per-replica learning rates and early stopping of an ensemble of S replicas.

    lr_scale : (S,) each replica's learning rate over the scheduled one. ``fit`` applies it
        to the gradient, which is exact when the step is linear in the gradient (SGD, with
        or without momentum and multiplicative weight decay; not Adam, nor PyTorch-style
        weight decay, which adds to the gradient first).
    frozen : (S,) bool, replicas stopped early. An evaluator sets entries (``freeze``);
        ``fit`` reads the mask after every evaluation and from then on leaves those
        replicas' parameters exactly as they were, whatever the optimiser, momentum or
        weight decay. ``fit`` checkpoints it.
    """

    lr_scale: torch.Tensor | None = None
    frozen: torch.Tensor | None = None

    @classmethod
    def stoppable(cls, n_replicas: int, device: torch.device | str, *,
                  lr_scale: torch.Tensor | None = None) -> ReplicaControl:
        """A control whose replicas an evaluator may stop (none stopped yet)."""
        return cls(lr_scale=lr_scale, frozen=torch.zeros(n_replicas, dtype=torch.bool, device=device))

    def freeze(self, replicas: torch.Tensor) -> None:
        """Stop the replicas where ``replicas`` (an (S,) bool mask) is true, for good."""
        self.frozen |= replicas.to(self.frozen.device)

    def all_frozen(self) -> bool:
        return self.frozen is not None and bool(self.frozen.all())

    def frozen_mask(self) -> torch.Tensor | None:
        """The (S,) bool mask of replicas stopped so far, or None while none is."""
        return self.frozen if self.frozen is not None and bool(self.frozen.any()) else None

    def state_dict(self) -> dict[str, Any]:
        return {"frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.frozen is not None:
            self.frozen.copy_(state["frozen"].to(self.frozen.device))
