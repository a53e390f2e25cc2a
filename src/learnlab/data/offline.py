"""The Corgi^2 offline pass: shuffle a sharded dataset once, block group by block group.

Livne, Kaplun, Malach, Shalev-Shwartz, "Corgi^2: A Hybrid Offline-Online Approach To
Storage-Aware Data Shuffling For SGD" (arXiv 2309.01640), Algorithm 1. A random
permutation of the source blocks is cut into groups of n; each group is read (n
sequential requests), its records shuffled together and written back as n new blocks of
the same sizes (n writes). Grouping must be random: grouping neighbouring blocks of
sorted data mixes nothing. After one pass a block's homogeneity h falls to about
1 + (h - 1) / n (``quality.homogeneity``); CorgiPile's online buffer then sees blocks
that are already mixed.

Each group is an independent task (a process pool now, a cluster engine later). A task
writes its blocks, then a marker with their index entries; the pass commits by writing
``index.json`` last. A pass killed midway leaves the source intact and no index in the
destination (it does not look like a dataset); rerunning it skips the finished groups
and completes it. What a pass computes is tied to its arguments: the destination's
``_tasks/pass.json`` and every group's marker name the source index's digest, the seed,
n, the pass and the row-group size, so a rerun with other arguments is refused with
one line (never a mix of two passes), and a finished group is reused only by the same
task. The destination must be new (or such an unfinished pass) and must not lie inside
the source, nor the source inside it. Every record keeps its lineage (source shard,
row) in ``_lineage_shard`` / ``_lineage_row``, so tests can prove the output is a permutation.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from learnlab._lifecycle import die_with_parent
from learnlab.data.shards import (INDEX, LINEAGE_ROW, LINEAGE_SHARD, ShardedDataset, ShardWriter, make_index,
                                  refuse_existing)
from learnlab.data.storage import DataError, IOStats, Storage
from learnlab.seeding import stream

__all__ = ["offline_shuffle", "shuffle_group", "pass_groups"]


def pass_groups(n_shards: int, n_blocks: int, *, seed: int, pass_index: int = 0) -> list[np.ndarray]:
    """The random grouping of one pass: a (seed, pass) permutation of the blocks, cut into groups of n."""
    order = np.random.default_rng([stream(seed, "pass-groups"), pass_index]).permutation(n_shards)
    return [order[i:i + n_blocks] for i in range(0, n_shards, n_blocks)]


_MANIFEST = "_tasks/pass.json"


def _marker(group: int) -> str:
    return f"_tasks/group-{group:05d}.json"


def _task_key(source: ShardedDataset, group: int, blocks: list[int], seed: int, pass_index: int,
              row_group_size: int | None) -> str:
    """What one group's output depends on: its marker is reused only by the same task."""
    task = {"source": source.digest, "group": group, "blocks": [int(b) for b in blocks], "seed": seed,
            "pass": pass_index, "row_group_size": row_group_size}
    return hashlib.sha256(json.dumps(task, sort_keys=True).encode()).hexdigest()


def shuffle_group(src: str, dst: str, group: int, blocks: list[int], *, seed: int, pass_index: int,
                  row_group_size: int | None = None) -> tuple[list[dict], dict]:
    """One task: read ``blocks`` of ``src``, shuffle their records together, write as many
    blocks of the same sizes to ``dst``. Returns (index entries, I/O counts). Idempotent:
    a finished group (its marker exists) is not redone."""
    out = Storage(dst)
    source = ShardedDataset(src)
    key = _task_key(source, group, blocks, seed, pass_index, row_group_size)
    if out.exists(_marker(group)):
        marker = out.read_json(_marker(group))
        if isinstance(marker, dict) and marker.get("key") == key:
            return marker["entries"], {}
    parts = []
    for b in blocks:
        records = source.read_shard(int(b))
        if LINEAGE_SHARD not in records:
            n = len(next(iter(records.values())))
            records[LINEAGE_SHARD] = np.full(n, b, dtype=np.int32)
            records[LINEAGE_ROW] = np.arange(n, dtype=np.int32)
        parts.append(records)
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    permutation = np.random.default_rng([seed, pass_index, group]).permutation(len(merged[LINEAGE_SHARD]))
    shuffled = {k: v[permutation] for k, v in merged.items()}
    writer = ShardWriter(out, 1, row_group_size=row_group_size)
    start = 0
    for j, b in enumerate(blocks):
        size = int(source.shard_sizes[int(b)])
        writer.write_shard(f"part-{group:05d}-{j:03d}.parquet", {k: v[start:start + size] for k, v in shuffled.items()})
        start += size
    counts = source.storage.stats.as_dict()  # data I/O only: the marker below is bookkeeping
    counts.update(bytes_written=out.stats.bytes_written, write_requests=out.stats.write_requests)
    out.write_json(_marker(group), {"key": key, "entries": writer.entries})  # the task's commit
    return writer.entries, counts


def offline_shuffle(src: str, dst: str, n_blocks: int, seed: int, passes: int = 1, *, workers: int = 1,
                    row_group_size: int | None = None, executor: str = "local",
                    progress: Callable[[int, int], None] | None = None) -> tuple[dict, IOStats]:
    """Run ``passes`` offline passes from ``src`` to a new dataset at ``dst``.

    Returns (the destination's index, the I/O of all passes). ``workers > 1`` runs the
    groups in a process pool (needs a file system every process sees: not ``memory://``);
    ``executor="ray"`` runs each group as a Ray task on the cluster this process is connected
    to (or a local one it starts; shards at a URL every node reaches). The result is the same
    dataset, byte for byte, whichever runs the groups: each group's permutation depends only
    on (seed, pass, group), and the index is committed last by this process.
    Intermediate passes go to ``dst + '.pass<i>'`` and are removed at the end.
    """
    if executor not in ("local", "ray"):
        raise DataError(f"executor must be local or ray; got {executor!r}")
    if n_blocks < 1 or passes < 1:
        raise DataError(f"n_blocks and passes must be >= 1; got {n_blocks}, {passes}")
    destination, origin = Storage(dst), Storage(src)
    if destination.exists(INDEX):
        raise DataError(f"{dst} already holds a dataset; choose a new destination")
    if _nested(origin, destination):
        raise DataError(f"the offline pass writes a new dataset beside its source: {dst} must not be {src}, "
                        f"nor lie inside it, nor contain it")
    ShardedDataset(src)  # the source must be a readable dataset before anything is written
    total = IOStats()
    current = src
    for p in range(passes):
        target = dst if p == passes - 1 else f"{dst.rstrip('/')}.pass{p + 1}"
        index, stats = _one_pass(current, target, n_blocks, seed, p, workers, row_group_size, progress, executor)
        for key in ("requests", "noncontiguous_requests", "bytes_read", "bytes_written", "write_requests"):
            setattr(total, key, getattr(total, key) + stats.get(key, 0))
        if current != src:
            _remove_dataset(current)
        current = target
    return index, total


def _one_pass(src: str, dst: str, n_blocks: int, seed: int, pass_index: int, workers: int,
              row_group_size: int | None, progress, executor: str = "local") -> tuple[dict, dict[str, Any]]:
    source = ShardedDataset(src)
    out = Storage(dst)
    manifest = {"source_index_sha256": source.digest, "seed": seed, "n_blocks": n_blocks,
                "pass": pass_index + 1, "row_group_size": row_group_size}
    if out.exists(INDEX):  # an intermediate pass finished before an interruption: reused only if it is this pass
        index = out.read_json(INDEX)
        if index.get("offline", {}).get("task") != manifest:
            raise DataError(f"{dst} holds the result of an offline pass with other arguments; remove it or "
                            f"choose another destination")
        return index, {}
    if out.exists(_MANIFEST):  # an interrupted pass: continued only with the same arguments
        previous = out.read_json(_MANIFEST)
        if previous != manifest:
            differ = ", ".join(f"{k} {previous.get(k)!r} (now {v!r})" for k, v in manifest.items()
                               if previous.get(k) != v)
            raise DataError(f"{dst} holds an unfinished offline pass with other arguments: {differ}; rerun it with "
                            f"those arguments, or remove {dst}")
    else:
        refuse_existing(out)
        out.write_json(_MANIFEST, manifest)  # before any group: a rerun knows what this pass is
    groups = pass_groups(len(source.shard_sizes), n_blocks, seed=seed, pass_index=pass_index)
    arguments = [(src, dst, g, [int(b) for b in blocks]) for g, blocks in enumerate(groups)]
    options = {"seed": seed, "pass_index": pass_index, "row_group_size": row_group_size}
    results = []
    if executor == "ray":
        results = _ray_groups(arguments, options, progress)
    elif workers > 1:
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(shuffle_group, *a, **options) for a in arguments]
            for done, future in enumerate(futures, 1):
                results.append(future.result())
                if progress:
                    progress(done, len(futures))
    else:
        for done, a in enumerate(arguments, 1):
            results.append(shuffle_group(*a, **options))
            if progress:
                progress(done, len(arguments))
    entries = [entry for group_entries, _ in results for entry in group_entries]
    schema = source.schema.copy()
    for column in (LINEAGE_SHARD, LINEAGE_ROW):
        schema.setdefault(column, {"kind": "number", "dtype": "<i4", "shape": []})
    index = make_index(entries, schema, {"offline": {"source": src, "n_blocks": n_blocks, "seed": seed,
                                                     "pass": pass_index + 1, "task": manifest}})
    out.write_json(INDEX, index)  # the commit: written last
    for g in range(len(groups)):
        out.remove(_marker(g))
    out.remove(_MANIFEST)
    if out.fs.exists(out.path("_tasks")):
        out.fs.rm(out.path("_tasks"), recursive=True)
    stats: dict[str, Any] = {}
    for _, counts in results:
        for key, value in counts.items():
            if isinstance(value, int):
                stats[key] = stats.get(key, 0) + value
    return index, stats


def _ray_groups(arguments: list[tuple], options: dict, progress) -> list[tuple[list[dict], dict]]:
    """Each group a Ray task; results in group order (the index lists shards in that order)."""
    try:
        import ray
    except ImportError as error:
        raise DataError("the offline pass on Ray needs Ray: pip install learnlab[ray]") from error
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    task = ray.remote(shuffle_group).options(max_retries=2)  # idempotent: a retried group redoes or skips
    refs = [task.remote(*a, **options) for a in arguments]
    remaining, done = list(refs), 0
    while remaining:
        finished, remaining = ray.wait(remaining, num_returns=1)
        done += len(finished)
        if progress:
            progress(done, len(refs))
    return ray.get(refs)


def _nested(a: Storage, b: Storage) -> bool:
    """Whether two locations are the same or one lies inside the other (same file system)."""
    if type(a.fs) is not type(b.fs):
        return False
    first, second = a.root.rstrip("/") or "/", b.root.rstrip("/") or "/"
    if getattr(a.fs, "protocol", None) in ("file", ("file", "local")) or type(a.fs).__name__ == "LocalFileSystem":
        first, second = os.path.realpath(first), os.path.realpath(second)
    common = posixpath.commonpath([first, second]) if first.startswith("/") == second.startswith("/") else None
    return common in (first, second)


def _remove_dataset(url: str) -> None:
    storage = Storage(url)
    if storage.fs.exists(storage.root):
        storage.fs.rm(storage.root, recursive=True)
