"""Training settings for sparse-parity learners (Barak et al. 2022; Edelman et al. 2023).

Shared by the ``hidden-progress`` and ``pareto-frontiers`` experiments: the loop's
:class:`~learnlab.train.optim.TrainConfig` plus the margin loss and how long to keep
training once every replica has converged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from learnlab.config import Interval, param
from learnlab.train.optim import TrainConfig

__all__ = ["ParityTrainConfig"]


@dataclass(frozen=True)
class ParityTrainConfig(TrainConfig):
    loss: Literal["hinge", "square", "logistic"] = param("hinge")
    extra_after_convergence: float = param(0.5, Interval(0.0, None),
                                           help="keep training until (1 + this) x the last t_c, to see the loss fall")
