"""Configuration and presets of the hidden-progress experiment."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from learnlab.config import Interval, param
from learnlab.models.mlp import MLPConfig
from learnlab.models.neuron import NeuronConfig
from learnlab.models.parity_transformer import ParityTransformerConfig
from learnlab.models.polynet import PolyNetConfig
from learnlab.train.parity_train import ParityTrainConfig

__all__ = ["SparseParityTaskConfig", "ParityTrainConfig", "HiddenProgressConfig", "Config", "presets",
           "scaling_learners"]


@dataclass(frozen=True)
class SparseParityTaskConfig:
    n_bits: int = param(50, Interval(1, 1024), help="input dimension n")
    k: int = param(3, Interval(1, "n_bits"), help="parity degree k = |S|")
    n_train: int | None = param(None, Interval(1, None), help="None: online (fresh batch each step); m: fixed set")
    n_val: int = param(8192, Interval(1, None), help="validation batch for t_c (2^13 in the paper)")
    random_labels: bool = param(False, help="train on independent random +-1 labels (the drift control)")


@dataclass(frozen=True)
class HiddenProgressConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(8, Interval(1, 4096), help="independent seeds, trained as one ensemble")
    task: SparseParityTaskConfig = SparseParityTaskConfig()
    learner: Literal["mlp", "neuron", "polynet", "transformer"] = param("mlp", help="Section 3.1's learners")
    model: MLPConfig = MLPConfig()
    neuron: NeuronConfig = NeuronConfig()
    polynet: PolyNetConfig = PolyNetConfig()
    transformer: ParityTransformerConfig = ParityTransformerConfig()
    train: ParityTrainConfig = ParityTrainConfig(lr=0.1, batch_size=32, max_steps=100_000, eval_every=20)
    controls: tuple[str, ...] = param((), help="random_labels: the same learners on random labels, for rho_t; "
                                      "init_only / data_only: vary only the init or only the data across seeds")
    vary: Literal["both", "init", "data"] = param("both", help="what differs between seeds: init and data, or one")
    top_neurons: float = param(0.1, Interval(0.0, 1.0, closed="right"),
                               help="fraction of neurons (largest final |readout|) whose support separation is timed")
    widths: tuple[int, ...] = param((), Interval(1, None), help="MLP widths trained together (x n_seeds each)")
    lrs: tuple[float, ...] = param((), Interval(0.0, None, closed="neither"),
                                   help="SGD learning rates trained together (x widths x n_seeds)")
    scaling_n: tuple[int, ...] = param((), Interval(1, 1024), help="train each n here (with each k of scaling_k)")
    scaling_k: tuple[int, ...] = param((), Interval(1, 64), help="the k values of the scaling sweep")
    scaling_learners: tuple[str, ...] = param((), help="learners of the scaling sweep (empty: the configured one)")
    scaling_lrs: tuple[float, ...] = param((), Interval(0.0, None, closed="neither"),
                                           help="one learning rate per scaling learner (empty: train.lr)")

    def check(self) -> str | None:
        unknown = set(self.controls) - {"random_labels", "init_only", "data_only"}
        if unknown:
            return f"'controls' entries must be among random_labels, init_only, data_only; got {sorted(unknown)[0]!r}"
        if bool(self.scaling_n) != bool(self.scaling_k):
            return "'scaling_n' and 'scaling_k' go together"
        if any(k > n for n in self.scaling_n for k in self.scaling_k):
            return "every k of 'scaling_k' must be <= every n of 'scaling_n'"
        if set(self.scaling_learners) - {"mlp", "neuron", "polynet", "transformer"}:
            return "'scaling_learners' entries must be among mlp, neuron, polynet, transformer"
        if self.scaling_lrs and len(self.scaling_lrs) != len(self.scaling_learners):
            return "'scaling_lrs' needs one rate per entry of 'scaling_learners'"
        if self.widths and self.learner != "mlp":
            return "'widths' applies to learner=mlp only"
        if self.lrs and (self.train.optimizer != "sgd" or
                         (self.train.weight_decay > 0 and self.train.weight_decay_style == "pytorch")):
            return "'lrs' needs train.optimizer=sgd and no PyTorch-style weight decay (per-seed rates scale gradients)"
        return None


Config = HiddenProgressConfig  # the name every experiment module exports


def presets() -> dict[str, Config]:
    paper = Config()  # Figure 1, (n, k) = (50, 3)
    # 32 seeds as one ensemble: enough for the rate claims' Wilson intervals to decide.
    # Validation on 2,048 samples every 20 steps: t_c ~ 10^3 steps is resolved to 2%, and
    # evaluation no longer dominates the step (32 seeds x 8,192 samples every 10 steps did).
    quick = Config(n_seeds=32, task=SparseParityTaskConfig(n_bits=30, k=3, n_val=2048), controls=("random_labels",),
                   train=replace(paper.train, max_steps=20_000, eval_every=20))
    # Figure 1 (right): median t_c over 16 seeds against n, for k = 3 and 4.
    scaling = replace(quick, n_seeds=16, controls=(), scaling_n=(10, 20, 30, 40), scaling_k=(3, 4),
                      task=replace(quick.task, n_val=2048), train=replace(quick.train, extra_after_convergence=0.0))
    # Learners of Section 3.1 at their reference learning rates, n = 20 and 40.
    learners = replace(scaling, scaling_n=(20, 40), scaling_k=(3,), scaling_learners=("mlp", "neuron", "polynet"),
                       scaling_lrs=(0.1, 0.1, 0.05))
    # Every learner, n = 10..50, k = 2..4 (long on a CPU).
    scaling_all = replace(learners, scaling_n=(10, 20, 30, 40, 50), scaling_k=(2, 3, 4),
                          train=replace(learners.train, max_steps=50_000))
    # Luck vs noise at batch 128 and lr 0.01, where SGD noise is small (Sec. 4.3): 64 seeds,
    # then 32 varying only the init and 32 only the data. n = 20 keeps it to minutes.
    luck = replace(quick, n_seeds=64, controls=("init_only", "data_only"), task=replace(quick.task, n_bits=20),
                   train=replace(quick.train, batch_size=128, lr=0.01, max_steps=100_000, eval_every=50,
                                 log_every=50, extra_after_convergence=0.0))
    smoke = Config(n_seeds=2, task=SparseParityTaskConfig(n_bits=8, k=2, n_val=1024), model=MLPConfig(width=32),
                   train=replace(paper.train, max_steps=1_500, eval_every=10, log_every=10))
    return {"smoke": smoke, "quick": quick, "paper": paper, "scaling": scaling, "learners": learners,
            "scaling_all": scaling_all, "luck": luck}


def scaling_learners(cfg: Config) -> list[tuple[str, float]]:
    """(learner, learning rate) pairs of a scaling sweep."""
    learners = tuple(cfg.scaling_learners) or (cfg.learner,)
    return list(zip(learners, tuple(cfg.scaling_lrs) or (cfg.train.lr,) * len(learners)))
