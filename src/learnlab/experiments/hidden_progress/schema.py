"""Metric names of the hidden-progress experiment: written by ``training``, read by
``evidence`` and ``plots``. A control or sweep point writes the same names under a
scope (``random_labels/val_acc``); :func:`scoped` builds those names."""

from __future__ import annotations

from learnlab.store import scoped_name

TRAIN_LOSS = "train_loss"  # logged by train.loop.fit
VAL_ACC = "val_acc"  # accuracy on the fixed validation batch, (S,)
VAL_LOSS = "val_loss"
SUPPORT_WEIGHT = "support_weight"  # mean over neurons and support coordinates of |W|, (S,)
OFF_SUPPORT_WEIGHT_MAX = "off_support_weight_max"  # max over other coordinates of the neuron-mean |W|
NEURONS_SEPARATED = "neurons_separated"  # fraction of neurons whose support mean |w| beats their off-support max
TOP_NEURONS_SEPARATED = "top_neurons_separated"  # the same over the neurons with the largest final |readout|
# log(share_t / share_0) averaged over those neurons, share = mean |w| on S / mean |w| off S
TOP_NEURONS_SUPPORT_GROWTH = "top_neurons_support_growth"
WEIGHT_MOVEMENT = "weight_movement"  # rho_t = max |W_t - W_0|
FOURIER_GAP = "fourier_gap"  # exact population Fourier gap, mean over neurons (n <= 12)
FOURIER_GAP_POSITIVE = "fourier_gap_positive"  # fraction of neurons with a positive gap
UNIT_INIT_FOURIER_GAP = "unit_init_fourier_gap"  # gamma at w = 1, b = 0 (scalar, step 0)
CONVERGED_STEP = "converged_step"  # t_c per seed (NaN: not within the cap)
REPLICA_WIDTH = "replica_width"
REPLICA_LR = "replica_lr"

RANDOM_LABELS = "random_labels"  # scope of the drift control
INIT_ONLY = "init_only"  # scope: seeds differ only in the initialisation
DATA_ONLY = "data_only"  # scope: seeds differ only in the data stream


scoped = scoped_name  # "scope/name"


def sweep_scope(learner: str, n: int, k: int) -> str:
    """The scope of one (learner, n, k) point of the scaling sweep."""
    return f"{learner}_n{n}_k{k}"
