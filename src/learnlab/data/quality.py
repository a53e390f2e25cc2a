"""Shuffle quality of an emitted order, and the homogeneity of a sharded dataset.

Every function takes the emitted order as global record ids (``orders.plan_order``)
and per-record labels or source shards indexed by those ids; all are vectorised numpy.
Labels are any integer classes (negative ones too): they are numbered 0..C-1 first.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_runs", "batch_label_kl", "batch_shard_mixing", "mean_displacement", "order_spearman",
           "epoch_correlation", "homogeneity", "expected_homogeneity", "order_quality"]


def _classes(labels: np.ndarray) -> np.ndarray:
    """Integer labels of any values (negative too) as class numbers 0..C-1."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"class labels must be integers; got {labels.dtype}")
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def label_runs(order: np.ndarray, labels: np.ndarray) -> tuple[int, float]:
    """(runs of equal consecutive labels, their expectation for i.i.d. draws with the same
    label frequencies: 1 + (N - 1)(1 - sum p_c^2))."""
    labels = _classes(labels)
    emitted = labels[order]
    runs = int(1 + np.count_nonzero(emitted[1:] != emitted[:-1])) if len(emitted) else 0
    p = np.bincount(labels) / len(labels)
    return runs, float(1 + (len(emitted) - 1) * (1 - np.square(p).sum()))


def batch_label_kl(order: np.ndarray, labels: np.ndarray, batch_size: int,
                   reference: np.ndarray | None = None) -> float:
    """Mean over full batches of KL(batch label histogram || global label histogram) (nats).

    ``reference``: the global histogram (class frequencies) when ``labels`` are only part of
    the data set, e.g. the head of an epoch; by default the histogram of ``labels``.
    """
    labels = _classes(labels)
    n_classes = max(int(labels.max()) + 1 if len(labels) else 0, 0 if reference is None else len(reference))
    emitted = labels[order[:len(order) - len(order) % batch_size]].reshape(-1, batch_size)
    if not len(emitted):
        return float("nan")
    counts = np.zeros((len(emitted), n_classes))
    np.add.at(counts, (np.arange(len(emitted))[:, None], emitted), 1)
    batch = counts / batch_size
    if reference is None:
        reference = np.bincount(labels, minlength=n_classes) / len(labels)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(batch > 0, batch * np.log(batch / reference), 0.0)
    return float(terms.sum(axis=1).mean())


def batch_shard_mixing(order: np.ndarray, shards: np.ndarray, batch_size: int) -> tuple[float, float]:
    """(mean distinct source shards per batch, mean fraction of record pairs in a batch that
    share a source shard)."""
    emitted = shards[order[:len(order) - len(order) % batch_size]].reshape(-1, batch_size)
    if not len(emitted):
        return float("nan"), float("nan")
    ordered = np.sort(emitted, axis=1)
    distinct = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
    # Same-shard pairs: in a sorted row each record pairs with the equal ones before it.
    positions = np.broadcast_to(np.arange(batch_size), ordered.shape)
    starts = np.concatenate([np.ones((len(ordered), 1), bool), np.diff(ordered, axis=1) != 0], axis=1)
    run_start = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
    same = float((positions - run_start).sum())
    pairs = batch_size * (batch_size - 1) / 2
    return float(distinct.mean()), float(same / len(ordered) / pairs) if pairs else float("nan")


def mean_displacement(order: np.ndarray) -> float:
    """Mean |output position - input position| over records, as a fraction of N (1/3 for a uniform permutation)."""
    return float(np.abs(np.arange(len(order)) - np.sort(order).searchsorted(order)).mean() / max(len(order), 1))


def _ranks(order: np.ndarray) -> np.ndarray:
    position = np.empty(len(order), dtype=np.int64)
    position[np.argsort(order)] = np.arange(len(order))
    return position


def order_spearman(order: np.ndarray) -> float:
    """Spearman's rho between storage order and emitted order (1: sequential, ~0: shuffled)."""
    n = len(order)
    d = _ranks(order) - np.arange(n)
    return float(1 - 6 * np.square(d.astype(np.float64)).sum() / (n * (n * n - 1))) if n > 1 else 1.0


def epoch_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rho between the positions of each record in two epochs' orders."""
    a, b = np.empty(len(first), np.int64), np.empty(len(second), np.int64)
    a[first], b[second] = np.arange(len(first)), np.arange(len(second))
    n = len(a)
    return float(1 - 6 * np.square((a - b).astype(np.float64)).sum() / (n * (n * n - 1))) if n > 1 else 1.0


def homogeneity(labels: np.ndarray, shard_sizes) -> float:
    """h = b * mean over blocks of |ybar_B - ybar|^2 / mean over records of |y - ybar|^2, y one-hot.

    ``labels`` in storage order, blocks of ``shard_sizes``; b the mean block size. An
    i.i.d. split into blocks gives h ~ 1, blocks of a single label h ~ b.
    """
    shard_sizes = np.asarray(shard_sizes)
    labels = _classes(labels)
    if not len(labels):
        return float("nan")
    n_classes = int(labels.max()) + 1
    onehot = np.eye(n_classes)[labels]
    mean = onehot.mean(axis=0)
    block_of = np.repeat(np.arange(len(shard_sizes)), shard_sizes)
    sums = np.zeros((len(shard_sizes), n_classes))
    np.add.at(sums, block_of, onehot)
    block_means = sums / shard_sizes[:, None]
    between = np.square(block_means - mean).sum(axis=1).mean()
    within = np.square(onehot - mean).sum(axis=1).mean()
    return float(shard_sizes.mean() * between / within)


def expected_homogeneity(h: float, n_blocks: int, passes: int = 1) -> float:
    """The paper's h~ = 1 + (h - 1) / n after one offline pass with groups of n (applied per pass)."""
    for _ in range(passes):
        h = 1 + (h - 1) / n_blocks
    return h


def order_quality(order: np.ndarray, labels: np.ndarray, shards: np.ndarray, batch_size: int) -> dict[str, float]:
    """Every order metric at once (labels and source shards indexed by global record id)."""
    runs, expected = label_runs(order, labels)
    distinct, same = batch_shard_mixing(order, shards, batch_size)
    return {"label_runs": runs, "label_runs_iid": expected, "batch_label_kl": batch_label_kl(order, labels, batch_size),
            "distinct_shards_per_batch": distinct, "same_shard_pairs": same,
            "mean_displacement": mean_displacement(order), "spearman": order_spearman(order)}
