"""Batch streams the training loop draws from: stateful, seeded, resumable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from learnlab.runtime import generator

__all__ = ["BatchStream", "ReplicaStream", "SamplerStream"]

Sampler = Callable[[torch.Generator, int], tuple[torch.Tensor, torch.Tensor]]


class BatchStream(Protocol):
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ReplicaStream:
    """One independent data stream per replica, stacked into (S, B, ...) batches.

    Parameters
    ----------
    samplers : one function per replica, ``sampler(generator, n_batches) -> (inputs, targets)``
        with a leading (n_batches, B, ...) shape
    seeds : one seed per replica; replica i's stream depends only on ``seeds[i]`` (and
        ``block``), so an ensemble sees exactly the batches its replicas would see as
        separate runs
    device : where the generators and batches live
    block : batches drawn per sampler call. Drawing many steps at once turns S small
        calls per step into S calls per ``block`` steps, which is what makes a 64-seed
        ensemble of a tiny model fast.
    """

    def __init__(self, samplers: Sequence[Sampler], seeds: Sequence[int], device: torch.device | str,
                 block: int = 64):
        if len(samplers) != len(seeds):
            raise ValueError("one sampler per seed")
        self.samplers, self.block = list(samplers), block
        self.generators = [generator(seed, device) for seed in seeds]
        self._block_start_states: list[torch.Tensor] = []
        self._buffer: tuple[torch.Tensor, torch.Tensor] | None = None
        self._position = block  # empty: the first call fills a block

    def _refill(self) -> None:
        self._block_start_states = [g.get_state() for g in self.generators]
        pairs = [sample(g, self.block) for sample, g in zip(self.samplers, self.generators)]
        self._buffer = (torch.stack([x for x, _ in pairs], dim=1), torch.stack([y for _, y in pairs], dim=1))
        self._position = 0

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._position == self.block:
            self._refill()
        inputs, targets = self._buffer  # (block, S, B, ...)
        self._position += 1
        return inputs[self._position - 1], targets[self._position - 1]

    def state_dict(self) -> dict[str, Any]:
        # The generator states at the start of the current block and the position in it:
        # enough to redraw the block on resume, so checkpoints stay small.
        if self._buffer is None:
            return {"generators": [g.get_state() for g in self.generators], "position": None}
        return {"generators": self._block_start_states, "position": self._position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved.cpu())  # generator states are CPU byte tensors on every device
        if state["position"] is None:
            self._buffer, self._position = None, self.block
        else:
            self._refill()
            self._position = state["position"]


class SamplerStream(ReplicaStream):
    """One model's stream (not an ensemble): ``next_batch`` returns (B, ...) tensors."""

    def __init__(self, sampler: Sampler, seed: int, device: torch.device | str, block: int = 16):
        super().__init__([sampler], [seed], device, block)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = super().next_batch()
        return inputs[0], targets[0]
