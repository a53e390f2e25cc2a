"""Batch streams the training loop draws from: stateful, seeded, resumable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from learnlab.runtime import generator

__all__ = ["BatchStream", "ReplicaStream"]


class BatchStream(Protocol):
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ReplicaStream:
    """One independent data stream per replica, stacked into (S, B, ...) batches.

    Parameters
    ----------
    samplers : one function per replica, ``sampler(generator) -> (inputs, targets)``
    seeds : one seed per replica; replica i's stream depends only on ``seeds[i]``, so an
        ensemble sees exactly the batches its replicas would see as separate runs
    device : where the generators and batches live
    """

    def __init__(self, samplers: Sequence[Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]],
                 seeds: Sequence[int], device: torch.device | str):
        if len(samplers) != len(seeds):
            raise ValueError("one sampler per seed")
        self.samplers = list(samplers)
        self.generators = [generator(seed, device) for seed in seeds]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        # One call per replica (not per example): S small vectorised draws.
        pairs = [sample(g) for sample, g in zip(self.samplers, self.generators)]
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    def state_dict(self) -> dict[str, Any]:
        return {"generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved.cpu())  # generator states are CPU byte tensors on every device
