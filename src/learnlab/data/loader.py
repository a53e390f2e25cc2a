"""A PyTorch ``IterableDataset`` over a sharded dataset, in any order of ``learnlab.data.orders``.

Blocks are split across distributed ranks and DataLoader workers *before* buffering
(``orders.worker_blocks``), so every record is emitted exactly once per epoch across all
of them. ``set_epoch`` re-seeds the order; ``state_dict`` / ``load_state_dict`` hold
(epoch, records emitted) so a run resumed mid-epoch continues the same order (skipping
costs no reads of blocks that are already fully emitted). The resume state is per
process: use it with ``num_workers=0``, or have each worker's consumer track its own.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from learnlab.data.orders import ORDERS, Step, epoch_plan, worker_blocks
from learnlab.data.shards import ShardSource
from learnlab.data.storage import DataError, IOStats
from learnlab.seeding import stream

__all__ = ["ShardedLoader"]


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


class ShardedLoader(torch.utils.data.IterableDataset):
    """Batches (dicts of tensors) from ``source`` in order ``order``.

    Parameters
    ----------
    source : a ``ShardSource`` (``ShardedDataset``, ``NpySource``, ``WebDatasetSource``)
    order : one of ``orders.ORDERS``
    batch_size : records per emitted batch (``None``: one record at a time, as tensors of
        its own shape)
    n_blocks : CorgiPile's buffer in blocks; ``buffer_records`` the sliding buffer's M
    rank, world_size : this process's place among distributed ranks (default: from
        ``torch.distributed`` when initialised, else 0 of 1)
    transform : applied to each batch (a dict of tensors) before it is yielded
    max_buffer_bytes : refuse a buffer larger than this (default: half the machine's memory)
    """

    def __init__(self, source: ShardSource, order: str = "corgipile", *, batch_size: int | None = 64,
                 n_blocks: int = 10, buffer_records: int | None = None, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, transform: Callable[[dict], Any] | None = None,
                 drop_last: bool = False, max_buffer_bytes: int | None = None):
        super().__init__()
        if order not in ORDERS:
            raise DataError(f"unknown order '{order}'; known: {', '.join(ORDERS)}")
        if n_blocks < 1 or (buffer_records is not None and buffer_records < 1):
            raise DataError("n_blocks and buffer_records must be >= 1")
        self.source, self.order, self.batch_size = source, order, batch_size
        self.n_blocks, self.buffer_records, self.seed = n_blocks, buffer_records, seed
        self.rank, self.world_size, self.transform, self.drop_last = rank, world_size, transform, drop_last
        self.epoch, self._resume_at = 0, 0
        self.emitted = 0
        self.last_epoch_stats: IOStats | None = None
        sizes = np.asarray(source.shard_sizes)
        self.record_bytes = self._record_bytes()
        limit = max_buffer_bytes if max_buffer_bytes is not None else _memory_bytes() // 2
        held = self._buffer_capacity(sizes) * self.record_bytes
        if held > limit:
            raise DataError(f"a {order} buffer of {self._buffer_capacity(sizes):,} records ({held / 2**20:.1f} MiB) "
                            f"exceeds the memory allowed ({limit / 2**20:.1f} MiB); use fewer blocks")

    def _buffer_capacity(self, sizes: np.ndarray) -> int:
        if self.order in ("corgipile", "corgi2"):
            return int(np.sort(sizes)[::-1][:self.n_blocks].sum())
        if self.order == "sliding_buffer":
            return int((self.buffer_records or self.n_blocks * sizes.mean()) + sizes.max())
        return int(sizes.max()) if self.order != "full" else 1

    def _record_bytes(self) -> int:
        schema = getattr(self.source, "schema", None)
        if schema:
            total = 0
            for spec in schema.values():
                if spec.get("kind") == "bytes":
                    total += 1024  # unknown: a guess for the memory check
                else:
                    total += int(np.prod(spec.get("shape") or [1])) * np.dtype(spec["dtype"]).itemsize
            return max(total, 1)
        return 1024

    # -- epochs and resumption -------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._resume_at, self.emitted = int(epoch), 0, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "emitted": self.emitted}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._resume_at = int(state["epoch"]), int(state["emitted"])
        self.emitted = self._resume_at

    def _place(self) -> tuple[int, int]:
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world = 0, 1
        info = torch.utils.data.get_worker_info()
        workers, worker_id = (info.num_workers, info.id) if info is not None else (1, 0)
        return rank * workers + worker_id, world * workers

    def plan(self, worker: int = 0, n_workers: int = 1) -> list[Step]:
        """This worker's plan for the current epoch."""
        sizes = np.asarray(self.source.shard_sizes)
        blocks = worker_blocks(len(sizes), seed=self.seed, epoch=self.epoch, worker=worker, n_workers=n_workers)
        return epoch_plan(self.order, sizes, seed=stream(self.seed, f"worker-{worker}"), epoch=self.epoch,
                          n_blocks=self.n_blocks, buffer_records=self.buffer_records, blocks=np.sort(blocks)
                          if self.order == "sequential" else blocks)

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker, n_workers = self._place()
        storage = self.source.storage
        storage.reset_stats()
        skip, self.emitted = self._resume_at, self._resume_at
        self._resume_at = 0
        steps = self.plan(worker, n_workers)
        remaining = Counter()
        live: dict[int, dict[str, np.ndarray]] = {}
        # Skip whole steps that were emitted before a resume: no reads for them.
        start = 0
        while start < len(steps) and skip >= len(steps[start].emit) and steps[start].reads is not None:
            skip -= len(steps[start].emit)
            start += 1
        emits = [step.emit for step in steps[start:]]
        if emits and skip:
            emits[0] = emits[0][skip:]
        for emit in emits:
            for shard, count in zip(*np.unique(emit[:, 0], return_counts=True)):
                remaining[int(shard)] += int(count)
        pending: list[dict[str, np.ndarray]] = []
        pending_rows = 0
        for step, emit in zip(steps[start:], emits):
            if step.reads is None:
                chunk = 256  # random access: one request per record, collated in chunks
                for begin in range(0, len(emit), chunk):
                    records = [self.source.read_record(int(s), int(r)) for s, r in emit[begin:begin + chunk]]
                    pending.append({k: np.concatenate([rec[k] for rec in records]) for k in records[0]})
                    pending_rows += len(records)
                    storage.note_buffer(self.record_bytes)
                    yield from self._drain(pending, pending_rows, final=False)
                    pending_rows = sum(len(next(iter(p.values()))) for p in pending)
                continue
            for block in step.reads:
                if remaining[block] > 0 and block not in live:
                    live[block] = self.source.read_shard(block)
            storage.note_buffer(step.buffer_records * self.record_bytes)
            if len(emit):
                needed = np.unique(emit[:, 0])
                for block in needed:  # after a resume a still-live block may need reading again
                    if int(block) not in live:
                        live[int(block)] = self.source.read_shard(int(block))
                sizes = np.array([len(next(iter(live[int(b)].values()))) for b in needed])
                offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
                index = offsets[np.searchsorted(needed, emit[:, 0])] + emit[:, 1]
                columns = live[int(needed[0])].keys()
                pending.append({k: np.concatenate([live[int(b)][k] for b in needed])[index] for k in columns})
                pending_rows += len(emit)
                for block, count in zip(*np.unique(emit[:, 0], return_counts=True)):
                    remaining[int(block)] -= int(count)
                    if remaining[int(block)] == 0:
                        live.pop(int(block), None)
            yield from self._drain(pending, pending_rows, final=False)
            pending_rows = sum(len(next(iter(p.values()))) for p in pending)
        yield from self._drain(pending, pending_rows, final=True)
        self.last_epoch_stats = copy.deepcopy(storage.stats)  # a snapshot: later reads keep counting

    def _drain(self, pending: list, rows: int, *, final: bool) -> Iterator[dict[str, torch.Tensor]]:
        size = self.batch_size or 1
        if rows < size and not (final and rows and not self.drop_last):
            return
        merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]} if pending else {}
        pending.clear()
        count = len(next(iter(merged.values()))) if merged else 0
        cut = count if final and not self.drop_last else count - count % size
        for begin in range(0, cut, size):
            batch = {k: _tensor(v[begin:begin + size]) for k, v in merged.items()}
            if self.batch_size is None:
                batch = {k: v[0] for k, v in batch.items()}
            self.emitted += len(next(iter(batch.values()))) if self.batch_size else 1
            yield self.transform(batch) if self.transform is not None else batch
        if cut < count and not final:
            pending.append({k: v[cut:] for k, v in merged.items()})


def _tensor(values: np.ndarray):
    if values.dtype == object:
        return list(values)
    return torch.from_numpy(np.ascontiguousarray(values))
