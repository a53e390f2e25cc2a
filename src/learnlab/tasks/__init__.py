"""Tasks: pure, seeded, vectorised samplers, one file a task family."""

from learnlab.tasks.markov import (
    sample_chains,
    sample_icl_markov,
    sample_transitions,
    stationary_distribution,
    true_next_distribution,
)
from learnlab.tasks.sparse_parity import parity_labels, sample_sparse_parity, sparse_parity_support

__all__ = [
    "parity_labels", "sample_chains", "sample_icl_markov", "sample_sparse_parity", "sample_transitions",
    "sparse_parity_support", "stationary_distribution", "true_next_distribution",
]
