"""Metric names of sq-vs-pac: written by ``parts``, read by ``evidence`` (one schema)."""

ACCURACY = "accuracy"          # test accuracy per replica, logged by the training loop's Measure
RHO = "rho"                    # each replica's precision (step 0)
SEED_INDEX = "seed_index"      # each replica's seed index (step 0)

DISAGREEMENT_SCOPE = "disagreement"
DISAGREEMENT = "disagreement"  # fraction of coordinates where two batches' rounded gradients differ (step = b)
NONZERO = "nonzero_fraction"   # fraction of nonzero rounded coordinates (step = b)

CHANNEL_SCOPE = "channel"


def phase_scope(target: str, mode: str, b: int) -> str:
    """Online SGD at batch b with one rounding (``exact``: no rounding), every rho x seed."""
    return f"{target}_{mode}_b{b}"


def gd_scope(mode: str) -> str:
    """Full-batch GD of the MLP through the oracle (``exact`` or ``nearest``)."""
    return f"gd_{mode}"


def channel_prefix(kind: str, mode: str = "nearest") -> str:
    """``sgd_<mode>`` (fresh batches, step = b) or ``gd`` (m fixed samples, step = index of rho)."""
    return f"sgd_{mode}" if kind == "sgd" else "gd"


def channel_name(prefix: str, what: str) -> str:
    """what: recovered (fraction of examples read back), accuracy, rank, steps, rho."""
    return f"{prefix}_{what}"


def channel_metric(prefix: str, what: str) -> str:
    return f"{CHANNEL_SCOPE}/{channel_name(prefix, what)}"
