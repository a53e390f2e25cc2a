"""Metric names of gd-vs-ntk: written by ``parts``, read by ``evidence`` (one schema)."""

ACCURACY = "accuracy"        # test accuracy per replica, logged by the training loop's Measure
SAMPLES = "samples"          # each offline replica's N (step 0)
RIDGE_ACC = "ridge_acc"      # NTK ridge test accuracy per seed (kernel scopes: step = N; checks: step = index)
RIDGE = "ridge"              # the chosen ridge per seed
SVM_ACC = "svm_acc"
N_BITS, K, ALPHA = "n_bits", "k", "alpha"
EDGE = "edge"                # first-step tangent-kernel edge per seed (cell scopes, step 0)
EDGE_FLOOR = "edge_floor"    # its noise floor (label permutations)
KERNEL_ACC = "kernel_acc"    # NTK ridge accuracy at the cell's N

KERNEL_CHECKS = "kernel_checks"


def network_scope(n: int, k: int) -> str:
    return f"net_n{n}_k{k}"


def kernel_scope(n: int, k: int) -> str:
    return f"kernel_n{n}_k{k}"


def cell_scope(index: int) -> str:
    return f"cell{index}"


def lazy_scope(index: int) -> str:
    return f"lazy{index}"
