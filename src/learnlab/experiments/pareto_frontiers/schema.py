"""Metric names of pareto-frontiers: written by ``frontier`` and ``tabular``, read by
``evidence`` and ``plots``. Each frontier width writes under its own scope."""

from __future__ import annotations

TRAIN_ACC = "train_acc"  # training accuracy per run, every evaluation
TEST_ERROR = "test_error"  # monitored held-out error per run, every evaluation
FINAL_TEST_ERROR = "final_test_error"  # on all n_test held-out samples, at the end
SUCCESS = "success"  # 0/1 per run: final test error <= target
SUCCESS_STEP = "success_step"  # first evaluation with monitored error <= target (NaN: never)
TEST_ACC = "test_acc"  # tabular MLPs
REPLICA_SPARSITY = "replica_sparsity"


def width_scope(width: int) -> str:
    return f"w{width}"


def frontier_metric(width: int, name: str) -> str:
    return f"{width_scope(width)}/{name}"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def forest_metric(dataset: str, forest: str) -> str:
    return f"tab_{slug(dataset)}/{forest}_acc"


def mlp_scope(dataset: str, width: int, depth: int) -> str:
    return f"tab_{slug(dataset)}_mlp_w{width}_d{depth}"


def dataset_name(source: str) -> str:
    """The name a data set's metrics use: a bundled name or a file's stem."""
    return slug(source.rsplit("/", 1)[-1].removesuffix(".csv").removesuffix(".arff"))
