"""Metric names of sampler-distillation: written by the parts, read by ``evidence``.

Gaussian metrics live under one scope per (eta, n_train) (:func:`gaussian_scope`), step 0,
values (S,) over seeds; the students of a scope are one stacked ensemble whose replica
r is described by ``replica_teacher`` (index into the ``teacher_kinds`` artifact),
``replica_mode`` (index into ``MODES``) and ``replica_unlabelled`` (how many inputs)."""

from __future__ import annotations

MODES = ("single", "random_per_example", "ensemble")
DIRECT = "direct"  # the control: the student's model trained on the noisy training labels themselves


def gaussian_scope(eta: float, n_train: int) -> str:
    return f"eta{eta:g}_n{n_train}"


def teacher_metric(kind: str, name: str) -> str:
    """``{kind}_{name}`` for name in TEACHER_ACC, FLIP_RATE, TRAIN_ACC, VOTE_ACC."""
    return f"{kind}_{name}"


TEACHER_ACC = "teacher_acc"  # the pool's first teacher on the clean test set
FLIP_RATE = "flip_rate"  # how often it predicts pi(y)
TRAIN_ACC = "train_acc"  # its fit of its own noisy training labels
VOTE_ACC = "vote_acc"  # the pool's majority vote on the clean test set
CONTROL_TRAIN_ACC = "control_train_acc"  # (S,): the control's fit of its own noisy training labels
STUDENT_ACC = "student_acc"  # (R,) over the scope's stacked students
REPLICA_TEACHER, REPLICA_MODE, REPLICA_UNLABELLED = "replica_teacher", "replica_mode", "replica_unlabelled"
TEACHER_KINDS = "teacher_kinds"  # artifact: the teacher kinds, in replica_teacher's order
CONFUSION, STUDENT_REGIONS = "confusion", "student_regions"  # artifacts of the first seed

# mnist1d: teachers M x S (seed-major), then S clean-label CNNs, then S controls; students S x modes (seed-major)
MNIST1D_TEACHERS, MNIST1D_STUDENTS = "mnist1d_teachers", "mnist1d_students"  # scopes of the two fits
MNIST1D_TEACHER_ACC = "mnist1d_teacher_acc"  # (M S,)
MNIST1D_CLEAN_ACC = "mnist1d_clean_acc"  # (S,)
MNIST1D_CONTROL_ACC = "mnist1d_control_acc"  # (S,): the L2-regularised CNN on the noisy labels
MNIST1D_VOTE_ACC = "mnist1d_vote_acc"  # (S,): each seed's pool vote
MNIST1D_FLIP_RATE = "mnist1d_flip_rate"
MNIST1D_STUDENT_MODE = "mnist1d_student_mode"  # (S modes,) index into MODES
