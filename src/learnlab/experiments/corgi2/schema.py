"""Metric names of the corgi2 experiment: written by ``parts``, read by ``evidence``.

Per part (scope ``<part>``), at step 0: ``N_RECORDS``, ``N_SHARDS``, ``H_SORTED``;
``homogeneity(n)`` (one value per simulated offline pass with groups of n); ``KL_RATIO``
(per pass: Corgi^2's batch label KL over a full shuffle's) and ``KL_RATIO_PREDICTED``;
``PASS_EQUALS_SIMULATION``; the offline pass's I/O; ``arm(arm, key)`` for each arm's I/O epoch
and order quality. Per model (scope ``<part>/<model>``): ``TEST_ACC`` at step = epoch, one
column per replica in the order of :func:`replicas`.
"""

from __future__ import annotations

N_RECORDS = "n_records"
N_SHARDS = "n_shards"
H_SORTED = "homogeneity_sorted"
KL_RATIO = "corgi2_kl_ratio"
KL_RATIO_PREDICTED = "corgi2_kl_ratio_predicted"
PASS_EQUALS_SIMULATION = "pass_equals_simulation"
OFFLINE_REQUESTS = "offline_requests"
TEST_ACC = "test_acc"
TRAIN_LOSS = "train_loss"
REQUESTS = "requests"
MATCHES_PLAN = "matches_plan"
BATCH_KL = "batch_label_kl"


def homogeneity(n_off: int) -> str:
    return f"homogeneity_after_n{n_off}"


def arm(arm: str, key: str) -> str:
    return f"{arm}_{key}"


def sweep_arm(n_off: int) -> str:
    """A Corgi^2 arm of the n_off sweep (offline pass simulated in memory)."""
    return f"corgi2_n{n_off}"


def sweep(part) -> list[int]:
    return sorted(set(part.homogeneity_n))


def replicas(cfg, part) -> list[tuple[str, int]]:
    """(arm, seed index) of every column of a model's stacked metrics."""
    arms = list(cfg.arms) + ([sweep_arm(n) for n in sweep(part)] if "full" in cfg.arms else [])
    return [(a, s) for a in arms for s in range(cfg.n_seeds)]
