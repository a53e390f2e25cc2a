"""The training loop, optimisers and schedules, losses, and batch streams."""

from learnlab.train.data import BatchStream, ReplicaStream, SamplerStream
from learnlab.train.ensemble import FunctionalEnsemble, ModuleStack
from learnlab.train.loop import Evaluator, Measure, fit
from learnlab.train.losses import hinge_loss, logistic_loss, margin_losses, sign_accuracy, square_loss
from learnlab.train.optim import (TrainConfig, clip_grad_norm_per_replica_, lr_schedule, make_optimizer,
                                  set_learning_rate)
from learnlab.train.replicas import ReplicaControl

__all__ = [
    "BatchStream", "Evaluator", "FunctionalEnsemble", "Measure", "ModuleStack", "ReplicaControl", "ReplicaStream",
    "SamplerStream", "TrainConfig", "clip_grad_norm_per_replica_", "fit", "hinge_loss", "logistic_loss",
    "lr_schedule", "make_optimizer", "margin_losses", "set_learning_rate", "sign_accuracy", "square_loss",
]
