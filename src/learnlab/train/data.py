"""Batch streams the training loop draws from: stateful, seeded, resumable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    prefetch : draw the next block in a worker thread while the current one is consumed
        (a one-thread CPU run samples on the idle core). The same batches either way: the
        generators are only ever advanced one block after the other.
    """

    def __init__(self, samplers: Sequence[Sampler], seeds: Sequence[int], device: torch.device | str,
                 block: int = 64, prefetch: bool = False):
        if len(samplers) != len(seeds):
            raise ValueError("one sampler per seed")
        self.samplers, self.block = list(samplers), block
        self.generators = [generator(seed, device) for seed in seeds]
        self._block_start_states: list[torch.Tensor] = []
        self._buffer: tuple[torch.Tensor, torch.Tensor] | None = None
        self._position = block  # empty: the first call fills a block
        self._prefetch = prefetch
        self._next: Future | None = None  # the next block, being drawn

    def _draw(self) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """The generators' states before the block, and the block (block, S, B, ...)."""
        states = [g.get_state() for g in self.generators]
        pairs = [sample(g, self.block) for sample, g in zip(self.samplers, self.generators)]
        return states, (torch.stack([x for x, _ in pairs], dim=1), torch.stack([y for _, y in pairs], dim=1))

    def _refill(self) -> None:
        if self._next is not None:
            drawn, self._next = self._next.result(), None
        else:
            drawn = self._draw()
        self._block_start_states, self._buffer = drawn
        self._position = 0
        if self._prefetch:
            self._next = _prefetcher().submit(self._draw)

    def _settle(self) -> None:
        """Wait for a block in flight (it advances the generators) and forget it."""
        if self._next is not None:
            self._next.result()
            self._next = None

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
        self._settle()
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved.cpu())  # generator states are CPU byte tensors on every device
        if state["position"] is None:
            self._buffer, self._position = None, self.block
        else:
            self._refill()
            self._position = state["position"]


_PREFETCHER: ThreadPoolExecutor | None = None


def _prefetcher() -> ThreadPoolExecutor:
    """One worker thread for every prefetching stream of the process (a stream has one block in flight)."""
    global _PREFETCHER
    if _PREFETCHER is None:
        _PREFETCHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="learnlab-prefetch")
    return _PREFETCHER


class SamplerStream(ReplicaStream):
    """One model's stream (not an ensemble): ``next_batch`` returns (B, ...) tensors."""

    def __init__(self, sampler: Sampler, seed: int, device: torch.device | str, block: int = 16):
        super().__init__([sampler], [seed], device, block)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = super().next_batch()
        return inputs[0], targets[0]
