"""Hidden progress: SGD learns sparse parities with an abrupt phase transition.

Paper: Barak, Edelman, Goel, Kakade, Malach, Zhang, "Hidden Progress in Deep Learning:
SGD Learns Parities Near the Computational Limit", NeurIPS 2022 (arXiv 2207.08799).

Setting (Section 4): online (n, k)-sparse parity, a two-layer ReLU MLP of width r,
minibatch SGD with a fresh batch each step, hinge loss. t_c is the first step at which
accuracy on a fixed validation batch of 2^13 samples reaches 100%.

Presets
-------
``paper``  n=50, k=3, width 100, batch 32, lr 0.1, cap 10^5 steps: the (50, 3) training
           curves of Figure 1 and the weight-movement plots of Section 4.2.
``quick``  n=30, k=3, 8 seeds trained as one ensemble (median t_c of roughly 1,000-1,500
           steps): ``learnlab run hidden-progress --preset quick``, well under a minute on
           2 cores.
``smoke``  n=8, k=2, 2 seeds: seconds; used by the tests.

Claims: the loss plateaus then drops abruptly; every seed converges within the cap;
progress is hidden under the flat loss (support weights separate from the rest before
accuracy leaves chance; rho_t = max|W_t - W_0| grows steadily).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from learnlab.claims import Claim
from learnlab.config import Interval, param
from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.probes.curves import first_step, phase_transition, rank_correlation
from learnlab.probes.weights import support_gap, weight_movement
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.sparse_parity import sample_sparse_parity, sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import fit
from learnlab.train.losses import margin_losses, sign_accuracy
from learnlab.train.optim import TrainConfig

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "hidden-progress"
DESCRIPTION = "Barak et al. 2022: SGD on online sparse parity, abrupt t_c and hidden progress in the weights"

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SparseParityTaskConfig:
    n_bits: int = param(50, Interval(1, 1024), help="input dimension n")
    k: int = param(3, Interval(1, "n_bits"), help="parity degree k = |S|")
    n_train: int | None = param(None, Interval(1, None), help="None: online (fresh batch each step); m: fixed set")
    n_val: int = param(8192, Interval(1, None), help="validation batch for t_c (2^13 in the paper)")


@dataclass(frozen=True)
class ParityTrainConfig(TrainConfig):
    loss: Literal["hinge", "square", "logistic"] = param("hinge")
    extra_after_convergence: float = param(0.5, Interval(0.0, None),
                                           help="keep training until (1 + this) x the last t_c, to see the loss fall")


@dataclass(frozen=True)
class HiddenProgressConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(8, Interval(1, 4096), help="independent seeds, trained as one ensemble")
    task: SparseParityTaskConfig = SparseParityTaskConfig()
    model: MLPConfig = MLPConfig()
    train: ParityTrainConfig = ParityTrainConfig(lr=0.1, batch_size=32, max_steps=100_000, eval_every=20)


Config = HiddenProgressConfig  # the name every experiment module exports


def presets() -> dict[str, Config]:
    paper = Config()  # Figure 1, (n, k) = (50, 3)
    quick = Config(task=SparseParityTaskConfig(n_bits=30, k=3),
                   train=replace(paper.train, max_steps=20_000, eval_every=10))
    smoke = Config(n_seeds=2, task=SparseParityTaskConfig(n_bits=8, k=2, n_val=1024), model=MLPConfig(width=32),
                   train=replace(paper.train, max_steps=1_500, eval_every=10, log_every=10))
    return {"smoke": smoke, "quick": quick, "paper": paper}


# ----------------------------------------------------------------------------- run


class ConvergenceEvaluator:
    """Validation accuracy and loss, t_c per seed, and the weight progress measures."""

    def __init__(self, model: TwoLayerMLP, x_val, y_val, supports, loss_fn, extra_after_convergence: float):
        self.x_val, self.y_val, self.supports, self.loss_fn = x_val, y_val, supports, loss_fn
        self.extra = extra_after_convergence
        self.initial_weight = model.weight.detach().clone()  # W_0, for rho_t
        self.converged_at = torch.full((model.n_replicas,), float("nan"))

    def __call__(self, model: TwoLayerMLP, step: int) -> dict[str, Any]:
        outputs = model(self.x_val)  # (S, n_val)
        accuracy = sign_accuracy(outputs, self.y_val)
        newly = torch.isnan(self.converged_at) & (accuracy.cpu() >= 1.0)
        self.converged_at[newly] = float(step)
        on_support, off_support_max = support_gap(model.weight, self.supports)
        return {
            "val_acc": accuracy,
            "val_loss": self.loss_fn(outputs, self.y_val),
            "support_weight": on_support,
            "off_support_weight_max": off_support_max,
            "weight_movement": weight_movement(model.weight, self.initial_weight),
        }

    def done(self, step: int) -> bool:
        if torch.isnan(self.converged_at).any():
            return False
        return step >= math.ceil((1.0 + self.extra) * float(self.converged_at.max()))

    def state_dict(self) -> dict[str, Any]:
        return {"initial_weight": self.initial_weight, "converged_at": self.converged_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial_weight = state["initial_weight"].to(self.initial_weight.device)
        self.converged_at = state["converged_at"].cpu()


def run(cfg: Config, run: Run) -> None:
    device, task = run.device, cfg.task
    # Each seed derives its own streams, so replica s of an ensemble is the run seeded s.
    init_seeds, support_seeds, val_seeds, data_seeds, train_set_seeds = zip(
        *(replica_seeds(s, 5) for s in replica_seeds(cfg.seed, cfg.n_seeds)))

    # 1. The task: a hidden support per seed, a fixed validation batch, a training stream.
    supports = torch.stack([sparse_parity_support(n_bits=task.n_bits, k=task.k, generator=generator(s, device))
                            for s in support_seeds])  # (S, k)
    validation = [sample_sparse_parity(task.n_val, n_bits=task.n_bits, support=support, generator=generator(s, device))
                  for support, s in zip(supports, val_seeds)]
    x_val, y_val = torch.stack([x for x, _ in validation]), torch.stack([y for _, y in validation])
    samplers = [_sampler(cfg, support, seed) for support, seed in zip(supports, train_set_seeds)]
    batches = ReplicaStream(samplers, data_seeds, device)

    # 2. The learner: S two-layer MLPs stacked into one module.
    model = TwoLayerMLP(task.n_bits, cfg.model, init_seeds, device).to(device)

    # 3. Train with SGD until every seed reaches 100% validation accuracy (or the cap).
    loss_fn = margin_losses[cfg.train.loss]
    evaluator = ConvergenceEvaluator(model, x_val, y_val, supports, loss_fn, cfg.train.extra_after_convergence)
    last_step = fit(model, batches, loss_fn, cfg.train, run, evaluate=evaluator)

    run.log(last_step, converged_step=evaluator.converged_at)
    run.artifact("supports", supports.cpu().tolist())


def _sampler(cfg: Config, support: torch.Tensor, seed: int):
    task, batch_size = cfg.task, cfg.train.batch_size
    if task.n_train is None:  # online: a fresh batch every step
        return lambda g: sample_sparse_parity(batch_size, n_bits=task.n_bits, support=support, generator=g)
    # offline: a fixed training set of m samples (drawn from its own stream), batches resampled from it
    x_train, y_train = sample_sparse_parity(task.n_train, n_bits=task.n_bits, support=support,
                                            generator=generator(seed, support.device))

    def draw(g: torch.Generator):
        index = torch.randint(0, task.n_train, (batch_size,), generator=g, device=g.device)
        return x_train[index], y_train[index]

    return draw


# ----------------------------------------------------------------------------- claims

# Chance accuracy is 0.5; with 2^13 validation samples its standard deviation is ~0.006.
_LEFT_CHANCE = 0.55
_SEED_FRACTION = 0.75


def convergence_steps(record: RunRecord) -> np.ndarray:
    """t_c per seed, read from the stored validation accuracy (NaN: never converged)."""
    accuracy = record.series("val_acc")
    return np.array([first_step(accuracy.steps, accuracy.values[:, s] >= 1.0) for s in range(accuracy.values.shape[1])])


def claims(record: RunRecord) -> list[Claim]:
    cfg_train = record.config["train"]
    t_c = convergence_steps(record)
    converged = ~np.isnan(t_c)
    loss, accuracy = record.series("train_loss"), record.series("val_acc")
    support, off_support = record.series("support_weight"), record.series("off_support_weight_max")
    movement = record.series("weight_movement")

    plateau_ratio, drop_ratio, separated_first, steady = [], [], [], []
    for s in np.flatnonzero(converged):
        plateau_end, near_zero = phase_transition(loss.steps, loss.values[:, s])
        plateau_ratio.append(plateau_end / t_c[s])
        drop_ratio.append((near_zero - plateau_end) / t_c[s])
        t_separate = first_step(support.steps, support.values[:, s] > off_support.values[:, s])
        t_leave_chance = first_step(accuracy.steps, accuracy.values[:, s] >= _LEFT_CHANCE)
        separated_first.append(t_separate < t_leave_chance)
        under_flat_loss = movement.steps <= plateau_end
        steady.append(rank_correlation(movement.steps[under_flat_loss], movement.values[under_flat_loss, s]))

    def fraction(flags) -> float:
        return float(np.mean(flags)) if len(flags) else 0.0

    abrupt = [p >= 0.5 and d <= 0.5 for p, d in zip(plateau_ratio, drop_ratio)]
    return [
        Claim(
            "abrupt-transition",
            "The loss stays on a plateau until at least half of t_c, then falls to near zero "
            "within about half of t_c more (a phase transition).",
            f"{fraction(abrupt):.0%} of seeds; median plateau end {_median(plateau_ratio):.2f} t_c, "
            f"median drop {_median(drop_ratio):.2f} t_c",
            f"plateau (loss >= 0.9 L_0) ends >= 0.5 t_c and loss <= 0.1 L_0 within 0.5 t_c after, "
            f"for >= {_SEED_FRACTION:.0%} of seeds",
            fraction(abrupt) >= _SEED_FRACTION,
        ),
        Claim(
            "all-seeds-converge",
            "SGD on the two-layer MLP reaches 100% validation accuracy within the step cap for every seed.",
            f"{int(converged.sum())}/{len(t_c)} seeds; median t_c {np.nanmedian(t_c) if converged.any() else float('nan'):.0f}",
            f"all seeds by step {cfg_train['max_steps']}",
            bool(converged.all()) and len(t_c) > 0,
        ),
        Claim(
            "support-separates-first",
            "Hidden progress: the weights on the k support coordinates outgrow every other coordinate "
            "before the accuracy leaves chance.",
            f"{fraction(separated_first):.0%} of seeds",
            f"mean |W| on S > max |W| off S before val acc >= {_LEFT_CHANCE}, for >= {_SEED_FRACTION:.0%} of seeds",
            fraction(separated_first) >= _SEED_FRACTION,
        ),
        Claim(
            "steady-weight-movement",
            "Hidden progress: rho_t = max|W_t - W_0| grows steadily while the loss is flat.",
            f"median Spearman {_median(steady):.2f}; {fraction([c >= 0.9 for c in steady]):.0%} of seeds >= 0.9",
            f"rank correlation of rho_t with t on the plateau >= 0.9, for >= {_SEED_FRACTION:.0%} of seeds",
            fraction([c >= 0.9 for c in steady]) >= _SEED_FRACTION,
        ),
    ]


def _median(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.median(values)) if values else float("nan")


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    t_c = convergence_steps(record)
    loss, accuracy = record.series("train_loss"), record.series("val_acc")
    colors = plt.cm.viridis(np.linspace(0, 0.9, loss.values.shape[1]))
    n, k = record.config["task"]["n_bits"], record.config["task"]["k"]

    curves, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for s, color in enumerate(colors):
        ax_loss.plot(loss.steps, loss.values[:, s], color=color, lw=1, label=f"seed {s}")
        ax_acc.plot(accuracy.steps, accuracy.values[:, s], color=color, lw=1)
        if not np.isnan(t_c[s]):
            ax_acc.axvline(t_c[s], color=color, ls=":", lw=0.8)
    ax_loss.set(xscale="log", xlabel="step", ylabel=f"training loss ({record.config['train']['loss']})",
                title=f"({n}, {k})-parity: training loss")
    ax_acc.set(xscale="log", xlabel="step", ylabel="validation accuracy", ylim=(0.4, 1.02),
               title="validation accuracy (dotted: $t_c$)")
    ax_loss.legend(fontsize=7, ncol=2)
    curves.tight_layout()

    support, off_support = record.series("support_weight"), record.series("off_support_weight_max")
    weights, ax = plt.subplots(figsize=(5.5, 3.6))
    for s, color in enumerate(colors):
        ax.plot(support.steps, support.values[:, s], color=color, lw=1.2, label="mean on S" if s == 0 else None)
        ax.plot(off_support.steps, off_support.values[:, s], color=color, lw=1, ls="--",
                label="max off S" if s == 0 else None)
    ax.set(xscale="log", xlabel="step", ylabel="mean |W| over neurons", title="support vs non-support weights")
    ax.legend(fontsize=8)
    weights.tight_layout()

    movement = record.series("weight_movement")
    rho, ax = plt.subplots(figsize=(5.5, 3.6))
    for s, color in enumerate(colors):
        ax.plot(movement.steps, movement.values[:, s], color=color, lw=1)
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel=r"$\rho_t = \max|W_t - W_0|$",
           title="weight movement under the flat loss")
    rho.tight_layout()
    return {"loss_and_accuracy": curves, "support_weights": weights, "weight_movement": rho}
