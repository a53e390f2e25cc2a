"""Record orders over a sharded dataset: what each loader reads, and in which order it emits.

An order is a seeded, per-epoch *plan*: a list of steps, each reading some blocks (whole
shards, sequentially) and then emitting some records as (shard, row) pairs. The plan is
re-seeded from (seed, epoch), so any epoch can be regenerated, skipped into or split
across workers without running the ones before it.

- ``full``: a uniform permutation of every record, each fetched by random access (the
  baseline of shuffle quality, the worst case of I/O).
- ``sequential``: blocks in storage order, records in order.
- ``shard``: blocks in a random order, records shuffled within each block (LitData,
  MosaicML ``py1s``).
- ``sliding_buffer``: blocks in a random order streamed into a reservoir of M records;
  each incoming record evicts a uniformly chosen one (WebDataset, tf.data, HF datasets).
- ``corgipile`` (Xu et al. 2022): a random permutation of blocks, read n at a time into
  a buffer that is filled, shuffled and drained.
- ``corgi2`` (Livne et al.): the same online step on a dataset that went through the
  offline pass (``learnlab.data.offline``); as an order it is ``corgipile``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learnlab.seeding import stream

__all__ = ["ORDERS", "Step", "epoch_plan", "plan_order", "worker_blocks"]

ORDERS = ("full", "sequential", "shard", "sliding_buffer", "corgipile", "corgi2")


@dataclass(frozen=True)
class Step:
    """Read ``reads`` (block ids, whole; ``None``: emit by random access), then emit
    ``emit`` ((k, 2) of shard, row) in that order. ``buffer_records`` is the number of
    records the loader holds at this step (for memory accounting)."""

    reads: tuple[int, ...] | None
    emit: np.ndarray
    buffer_records: int


def worker_blocks(n_blocks: int, *, seed: int, epoch: int, worker: int, n_workers: int) -> np.ndarray:
    """The blocks worker ``worker`` of ``n_workers`` (ranks x DataLoader workers) owns this
    epoch: a (seed, epoch) permutation of all blocks dealt round-robin, so every block
    (hence every record) belongs to exactly one worker, before any buffering."""
    if not 0 <= worker < n_workers:
        raise ValueError(f"worker {worker} is not in [0, {n_workers})")
    order = np.random.default_rng([stream(seed, "worker-blocks"), epoch]).permutation(n_blocks)
    return order[worker::n_workers]


def _records_of(blocks: np.ndarray, shard_sizes: np.ndarray) -> np.ndarray:
    """(sum of sizes, 2) of (shard, row) for ``blocks`` in the given order, rows in order."""
    if len(blocks) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    sizes = shard_sizes[blocks]
    shards = np.repeat(blocks, sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.stack([shards, np.arange(len(shards)) - starts], axis=1)


def epoch_plan(kind: str, shard_sizes, *, seed: int, epoch: int, n_blocks: int = 1,
               buffer_records: int | None = None, blocks=None) -> list[Step]:
    """The plan of one epoch over ``blocks`` (default: all, in storage order).

    ``n_blocks`` is CorgiPile's buffer in blocks; ``buffer_records`` the sliding buffer's M
    (default: ``n_blocks`` times the mean block size, i.e. the same memory).
    """
    if kind not in ORDERS:
        raise ValueError(f"unknown order {kind!r}; known: {', '.join(ORDERS)}")
    shard_sizes = np.asarray(shard_sizes, dtype=np.int64)
    blocks = np.arange(len(shard_sizes)) if blocks is None else np.asarray(blocks, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    if kind == "sequential":
        return [Step((int(b),), _records_of(np.array([b]), shard_sizes), int(shard_sizes[b])) for b in blocks]
    if kind == "full":
        records = _records_of(blocks, shard_sizes)
        return [Step(None, records[rng.permutation(len(records))], 1)]
    permuted = blocks[rng.permutation(len(blocks))]
    if kind == "shard":
        steps = []
        for b in permuted:
            records = _records_of(np.array([b]), shard_sizes)
            steps.append(Step((int(b),), records[rng.permutation(len(records))], int(shard_sizes[b])))
        return steps
    if kind in ("corgipile", "corgi2"):
        steps = []
        for start in range(0, len(permuted), n_blocks):
            group = permuted[start:start + n_blocks]
            records = _records_of(group, shard_sizes)
            steps.append(Step(tuple(int(b) for b in group), records[rng.permutation(len(records))], len(records)))
        return steps
    # sliding_buffer: a reservoir of M records fed block by block. One Python step per
    # record is inherent to a reservoir; it runs on int arrays only (no data), ~1 us each.
    size = buffer_records or (max(1, int(round(n_blocks * shard_sizes.mean()))) if len(shard_sizes) else 1)
    stream = _records_of(permuted, shard_sizes)
    choices = rng.integers(0, size, size=len(stream)).tolist()
    reservoir: list[int] = []
    emitted: list[int] = []
    boundaries = np.cumsum(shard_sizes[permuted]).tolist()
    steps, position = [], 0
    for b, end in zip(permuted, boundaries):
        start_emit = len(emitted)
        for i in range(position, end):
            if len(reservoir) < size:
                reservoir.append(i)
            else:
                j = choices[i]
                emitted.append(reservoir[j])
                reservoir[j] = i
        position = end
        steps.append(Step((int(b),), stream[emitted[start_emit:]] if len(emitted) > start_emit else
                          np.zeros((0, 2), dtype=np.int64), min(size, position)))
    rest = [reservoir[i] for i in rng.permutation(len(reservoir))]
    steps.append(Step((), stream[rest] if rest else np.zeros((0, 2), dtype=np.int64), len(rest)))
    return steps


def plan_order(plan: list[Step], shard_sizes) -> np.ndarray:
    """The emitted order as global record ids (shard offset + row)."""
    offsets = np.concatenate([[0], np.cumsum(np.asarray(shard_sizes, dtype=np.int64))])
    emitted = [step.emit for step in plan if len(step.emit)]
    if not emitted:
        return np.zeros(0, dtype=np.int64)
    records = np.concatenate(emitted)
    return offsets[records[:, 0]] + records[:, 1]
