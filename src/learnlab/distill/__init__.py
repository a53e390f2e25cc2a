"""Distillation from interpolating teachers (Kaplun et al. 2022): label noise, sampler teachers, student targets."""

from learnlab.distill.noise import class_permutation, corrupt_labels
from learnlab.distill.teachers import (
    KernelTeacher,
    NearestNeighbourTeacher,
    NetworkTeacher,
    Teacher,
    flip_rate,
    teacher_targets,
)

__all__ = ["KernelTeacher", "NearestNeighbourTeacher", "NetworkTeacher", "Teacher", "class_permutation",
           "corrupt_labels", "flip_rate", "teacher_targets"]
