"""Tasks: pure, seeded, vectorised samplers, one file a task family."""

from learnlab.tasks.sparse_parity import parity_labels, sample_sparse_parity, sparse_parity_support

__all__ = ["parity_labels", "sample_sparse_parity", "sparse_parity_support"]
