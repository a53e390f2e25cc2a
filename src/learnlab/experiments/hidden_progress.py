"""Hidden progress: SGD learns sparse parities with an abrupt phase transition.

Paper: Barak, Edelman, Goel, Kakade, Malach, Zhang, "Hidden Progress in Deep Learning:
SGD Learns Parities Near the Computational Limit", NeurIPS 2022 (arXiv 2207.08799).

Setting (Section 4): online (n, k)-sparse parity, a two-layer ReLU MLP of width r,
minibatch SGD with a fresh batch each step, hinge loss. t_c is the first step at which
accuracy on a fixed validation batch of 2^13 samples reaches 100%.

Learners (Section 3.1, ``learner=...``): ``mlp`` (ReLU, tanh, GELU or z^k activations;
PyTorch-default, Xavier-uniform, Kaiming-Gaussian or Bernoulli +-c first-layer init;
width k is the minimal-width net), ``neuron`` (one neuron with a sinusoidal, k-zigzag,
infinite-zigzag or degree-k polynomial activation, with or without a readout weight) and
``polynet`` (a product of k affine units, or the disjoint PolyNet of the theory). Weight
decay as PyTorch's or as the paper's multiplicative shrink (``train.weight_decay_style``).
Progress measures: support vs non-support weight magnitude, rho_t = max|W_t - W_0| with
a random-label control (``controls=random_labels``: drift ~ t vs a random walk ~ sqrt t),
and, for n <= 12, the exact Fourier gap of the population gradient.

Presets
-------
``paper``  n=50, k=3, width 100, batch 32, lr 0.1, cap 10^5 steps: the (50, 3) training
           curves of Figure 1 and the weight-movement plots of Section 4.2.
``quick``  n=30, k=3, 8 seeds trained as one ensemble (median t_c of roughly 1,000-1,500
           steps), plus the random-label control for as many steps as the median seed
           needed: ``learnlab run hidden-progress --preset quick``, about 15 s on 2 cores.
``scaling``  median t_c over 16 seeds, n in {10, 20, 30, 40}, k in {3, 4} (Figure 1, right; ~20 s).
``learners`` MLP, sine neuron and PolyNet at n in {20, 40}, k = 3 (~20 s).
``scaling_all`` every learner, n in {10, ..., 50}, k in {2, 3, 4}, cap 5 x 10^4 steps (long on a CPU).
``luck``   64 seeds, plus 32 varying only the init and 32 only the data (~40 s).
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
from learnlab.models.neuron import NeuronConfig, SingleNeuron
from learnlab.models.parity_transformer import ParityTransformer, ParityTransformerConfig
from learnlab.models.polynet import PolyNet, PolyNetConfig
from learnlab.probes.curves import first_step, loglog_slope, phase_transition, rank_correlation
from learnlab.probes.fourier import fourier_gap, hypercube
from learnlab.probes.weights import support_gap, weight_movement
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.sparse_parity import sample_sparse_parity, sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.ensemble import FunctionalEnsemble
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
    random_labels: bool = param(False, help="train on independent random +-1 labels (the drift control)")


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
    learner: Literal["mlp", "neuron", "polynet", "transformer"] = param("mlp", help="Section 3.1's learners")
    model: MLPConfig = MLPConfig()
    neuron: NeuronConfig = NeuronConfig()
    polynet: PolyNetConfig = PolyNetConfig()
    transformer: ParityTransformerConfig = ParityTransformerConfig()
    train: ParityTrainConfig = ParityTrainConfig(lr=0.1, batch_size=32, max_steps=100_000, eval_every=20)
    controls: tuple[str, ...] = param((), help="random_labels: the same learners on random labels, for rho_t; "
                                      "init_only / data_only: vary only the init or only the data across seeds")
    vary: Literal["both", "init", "data"] = param("both", help="what differs between seeds: init and data, or one")
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
    quick = Config(task=SparseParityTaskConfig(n_bits=30, k=3), controls=("random_labels",),
                   train=replace(paper.train, max_steps=20_000, eval_every=10))
    # Figure 1 (right): median t_c over 16 seeds against n, for k = 3 and 4.
    scaling = replace(quick, n_seeds=16, controls=(), scaling_n=(10, 20, 30, 40), scaling_k=(3, 4),
                      task=replace(quick.task, n_val=2048), train=replace(quick.train, extra_after_convergence=0.0))
    # Learners of Section 3.1 at their reference learning rates, n = 20 and 40.
    learners = replace(scaling, scaling_n=(20, 40), scaling_k=(3,), scaling_learners=("mlp", "neuron", "polynet"),
                       scaling_lrs=(0.1, 0.1, 0.05))
    # The whole scaling table of the issue: every learner, n = 10..50, k = 2..4 (long on a CPU).
    scaling_all = replace(learners, scaling_n=(10, 20, 30, 40, 50), scaling_k=(2, 3, 4),
                          train=replace(learners.train, max_steps=50_000))
    # Luck vs noise: 64 seeds; and 32 varying only the init, 32 only the data.
    luck = replace(quick, n_seeds=64, controls=("init_only", "data_only"),
                   train=replace(quick.train, extra_after_convergence=0.0))
    smoke = Config(n_seeds=2, task=SparseParityTaskConfig(n_bits=8, k=2, n_val=1024), model=MLPConfig(width=32),
                   train=replace(paper.train, max_steps=1_500, eval_every=10, log_every=10))
    return {"smoke": smoke, "quick": quick, "paper": paper, "scaling": scaling, "learners": learners,
            "scaling_all": scaling_all, "luck": luck}


# ----------------------------------------------------------------------------- run


class ConvergenceEvaluator:
    """Validation accuracy and loss, t_c per seed, and the weight progress measures."""

    def __init__(self, model: torch.nn.Module, x_val, y_val, supports, loss_fn, extra_after_convergence: float):
        self.x_val, self.y_val, self.supports, self.loss_fn = x_val, y_val, supports, loss_fn
        self.extra = extra_after_convergence
        # The weight probes read first-layer weights over the input coordinates (S, r, n).
        self.initial_weight = model.weight.detach().clone() if hasattr(model, "weight") else None  # W_0
        self.converged_at = torch.full((model.n_replicas,), float("nan"))
        # The exact Fourier gap needs all 2^n inputs: only for small n and a known sigma'.
        activation = getattr(getattr(model, "cfg", None), "activation", None)
        self.gap_activation = activation if activation in ("relu", "tanh", "sin") else None
        small = x_val.shape[-1] <= 12
        self.cube = hypercube(x_val.shape[-1], x_val.device) if small and self.gap_activation else None

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        # In chunks of validation samples: a (S, chunk, r) hidden layer small enough for the
        # allocator to reuse its memory instead of mapping fresh pages every evaluation.
        width = getattr(getattr(model, "cfg", None), "width", 1)
        chunk = max(1, 2**21 // (model.n_replicas * width))
        outputs = torch.cat([model(self.x_val[:, i : i + chunk]) for i in range(0, self.x_val.shape[1], chunk)], dim=1)
        accuracy = sign_accuracy(outputs, self.y_val)
        newly = torch.isnan(self.converged_at) & (accuracy.cpu() >= 1.0)
        self.converged_at[newly] = float(step)
        metrics = {"val_acc": accuracy, "val_loss": self.loss_fn(outputs, self.y_val)}
        if self.initial_weight is not None:
            on_support, off_support_max = support_gap(model.weight, self.supports)
            metrics.update(support_weight=on_support, off_support_weight_max=off_support_max,
                           weight_movement=weight_movement(model.weight, self.initial_weight), **self._fourier(model))
        return metrics

    def _fourier(self, model) -> dict[str, torch.Tensor]:
        if self.cube is None:
            return {}
        bias = getattr(model, "bias", None)
        gap = fourier_gap(model.weight, bias, self.supports, self.gap_activation, self.cube)  # (S, r)
        return {"fourier_gap": gap.mean(dim=1), "fourier_gap_positive": (gap > 0).double().mean(dim=1)}

    def done(self, step: int) -> bool:
        if torch.isnan(self.converged_at).any():
            return False
        return step >= math.ceil((1.0 + self.extra) * float(self.converged_at.max()))

    def state_dict(self) -> dict[str, Any]:
        return {"initial_weight": self.initial_weight, "converged_at": self.converged_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.initial_weight is not None:
            self.initial_weight = state["initial_weight"].to(self.initial_weight.device)
        self.converged_at = state["converged_at"].cpu()


def run(cfg: Config, run: Run) -> None:
    # The scaling sweep (Figure 1, right): one ensemble per (learner, n, k), each in its own scope.
    for learner, lr in _scaling_learners(cfg):
        for n in cfg.scaling_n:
            for k in cfg.scaling_k:
                point = replace(cfg, learner=learner, train=replace(cfg.train, lr=lr), scaling_n=(), scaling_k=(),
                                scaling_learners=(), scaling_lrs=(), controls=(), task=replace(cfg.task, n_bits=n, k=k))
                _train(point, run.scoped(f"{learner}_n{n}_k{k}"))
    if cfg.scaling_n:
        return
    converged_at = _train(cfg, run)
    # Luck vs noise: the same number of seeds varying only the init, or only the data.
    for control, vary in (("init_only", "init"), ("data_only", "data")):
        if control in cfg.controls:
            _train(replace(cfg, controls=(), vary=vary, n_seeds=max(2, cfg.n_seeds // 2)), run.scoped(control))
    # The drift control: the same learners on random labels, for as many steps as the
    # median seed needed, to compare rho_t's growth (drift ~ t vs random walk ~ sqrt t).
    if "random_labels" in cfg.controls:
        steps = cfg.train.max_steps if converged_at.isnan().all() else int(converged_at.nanmedian())
        control = replace(cfg, controls=(), task=replace(cfg.task, random_labels=True),
                          train=replace(cfg.train, max_steps=max(steps, 1)))
        _train(control, run.scoped("random_labels"))


def _train(cfg: Config, run: Run) -> torch.Tensor:
    """Train ``cfg.n_seeds`` learners as one ensemble; return t_c per seed (NaN: not reached)."""
    device, task = run.device, cfg.task
    # Replicas: n_seeds seeds at every (width, learning rate) of the grid. Seed j is the
    # same at every grid point (a paired design), and each seed derives its own streams,
    # so replica s of an ensemble is the run seeded s.
    grid = [(width, lr) for width in (cfg.widths or (cfg.model.width,)) for lr in (cfg.lrs or (cfg.train.lr,))]
    seeds = [seed for _ in grid for seed in replica_seeds(cfg.seed, cfg.n_seeds)]
    widths = [width for width, _ in grid for _ in range(cfg.n_seeds)]
    lrs = [lr for _, lr in grid for _ in range(cfg.n_seeds)]
    init_seeds, support_seeds, val_seeds, data_seeds, train_set_seeds = zip(*(replica_seeds(s, 5) for s in seeds))
    if cfg.vary == "init":  # every seed sees seed 0's task and data; only the init differs
        support_seeds, val_seeds, data_seeds, train_set_seeds = (
            (group[0],) * len(seeds) for group in (support_seeds, val_seeds, data_seeds, train_set_seeds))
    elif cfg.vary == "data":  # one init (and task) for all; only the data stream differs
        init_seeds, support_seeds, val_seeds = ((group[0],) * len(seeds) for group in (init_seeds, support_seeds, val_seeds))

    # 1. The task: a hidden support per seed, a fixed validation batch, a training stream.
    supports = torch.stack([sparse_parity_support(n_bits=task.n_bits, k=task.k, generator=generator(s, device))
                            for s in support_seeds])  # (S, k)
    validation = [sample_sparse_parity(task.n_val, n_bits=task.n_bits, support=support, generator=generator(s, device))
                  for support, s in zip(supports, val_seeds)]
    x_val, y_val = torch.stack([x for x, _ in validation]), torch.stack([y for _, y in validation])
    samplers = [_sampler(cfg, support, seed) for support, seed in zip(supports, train_set_seeds)]
    batches = ReplicaStream(samplers, data_seeds, device)

    # 2. The learner, S replicas stacked into one module.
    model = _learner(cfg, init_seeds, device, widths)
    if cfg.lrs:
        model.register_buffer("replica_lr_scale", torch.tensor(lrs, device=device) / cfg.train.lr)

    # 3. Train with SGD until every seed reaches 100% validation accuracy (or the cap).
    loss_fn = margin_losses[cfg.train.loss]
    evaluator = ConvergenceEvaluator(model, x_val, y_val, supports, loss_fn, cfg.train.extra_after_convergence)
    last_step = fit(model, batches, loss_fn, cfg.train, run, evaluate=evaluator)

    run.log(last_step, converged_step=evaluator.converged_at)
    # After fit, which on a fresh start clears whatever this scope logged before.
    run.log(0, replica_width=torch.tensor(widths, dtype=torch.float), replica_lr=torch.tensor(lrs))
    run.artifact("supports", supports.cpu().tolist())
    return evaluator.converged_at


def _learner(cfg: Config, seeds, device, widths) -> torch.nn.Module:
    n, k = cfg.task.n_bits, cfg.task.k
    if cfg.learner == "neuron":
        return SingleNeuron(n, k, cfg.neuron, seeds, device)
    if cfg.learner == "polynet":
        return PolyNet(n, k, cfg.polynet, seeds, device)
    if cfg.learner == "transformer":  # replicas through torch.func (stack_module_state + vmap)
        return FunctionalEnsemble(lambda: ParityTransformer(n, cfg.transformer), seeds, device)
    return TwoLayerMLP(n, cfg.model, seeds, device, widths=widths)


def _sampler(cfg: Config, support: torch.Tensor, seed: int):
    """``draw(generator, n_batches) -> (x (n_batches, B, n), y (n_batches, B))`` for one seed."""
    task, batch_size = cfg.task, cfg.train.batch_size
    if task.n_train is not None:  # offline: a fixed training set of m samples, drawn from its own stream
        x_train, y_train = sample_sparse_parity(task.n_train, n_bits=task.n_bits, support=support,
                                                generator=generator(seed, support.device))

    def draw(g: torch.Generator, n_batches: int):
        count = n_batches * batch_size
        if task.n_train is not None:  # batches resampled from the fixed set
            index = torch.randint(0, task.n_train, (count,), generator=g, device=g.device)
            x, y = x_train[index], y_train[index]
        else:  # online: fresh samples every step
            x, y = sample_sparse_parity(count, n_bits=task.n_bits, support=support, generator=g)
        if task.random_labels:  # the control: labels independent of the inputs
            y = torch.randint(0, 2, (count,), generator=g, device=g.device).to(x.dtype) * 2 - 1
        return x.view(n_batches, batch_size, -1), y.view(n_batches, batch_size)

    return draw


# ----------------------------------------------------------------------------- claims

# Chance accuracy is 0.5; with 2^13 validation samples its standard deviation is ~0.006.
_LEFT_CHANCE = 0.55
_SEED_FRACTION = 0.75


def convergence_steps(record: RunRecord, scope: str = "") -> np.ndarray:
    """t_c per seed, read from the stored validation accuracy (NaN: never converged)."""
    accuracy = record.series(f"{scope}/val_acc" if scope else "val_acc")
    return np.array([first_step(accuracy.steps, accuracy.values[:, s] >= 1.0) for s in range(accuracy.values.shape[1])])


def claims(record: RunRecord) -> list[Claim]:
    if record.config["scaling_n"]:
        return _scaling_claims(record)
    luck = _luck_claims(record) if "init_only/val_acc" in record.metric_names() else []
    return _main_claims(record) + luck


def _median_t_c(t_c: np.ndarray) -> float:
    """The median, counting a seed that never converged as later than any that did (NaN
    only when half or more never converged)."""
    median = float(np.median(np.where(np.isnan(t_c), np.inf, t_c)))
    return median if np.isfinite(median) else float("nan")


def _scaling_learners(cfg) -> list[tuple[str, float]]:
    """(learner, learning rate) pairs of a scaling sweep; ``cfg`` is a config or its dict."""
    get = (lambda name: cfg[name]) if isinstance(cfg, dict) else (lambda name: getattr(cfg, name))
    learners = tuple(get("scaling_learners")) or (get("learner"),)
    lr = get("train")["lr"] if isinstance(cfg, dict) else cfg.train.lr
    return list(zip(learners, tuple(get("scaling_lrs")) or (lr,) * len(learners)))


def scaling_table(record: RunRecord) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """(learner, k) -> (n values, median t_c over seeds) of a scaling run (NaN where a seed never converged)."""
    table = {}
    for learner, _ in _scaling_learners(record.config):
        for k in record.config["scaling_k"]:
            ns = np.array(record.config["scaling_n"], dtype=float)
            medians = np.array([_median_t_c(convergence_steps(record, f"{learner}_n{int(n)}_k{k}")) for n in ns])
            table[learner, k] = (ns, medians)
    return table


# Median t_c from the reference runs quoted in the sparse-parity issue (batch 32, hinge, no
# decay): the width-100 ReLU MLP at lr 0.1, PolyNet at lr 0.05, a single sine neuron at
# lr 0.1; (learner, lr, n, k) -> steps.
REFERENCE_T_C = {
    ("mlp", 0.1, 20, 3): 710, ("mlp", 0.1, 30, 3): 1240, ("mlp", 0.1, 40, 3): 1750, ("mlp", 0.1, 50, 3): 2710,
    ("mlp", 0.1, 20, 4): 910, ("polynet", 0.05, 20, 3): 210, ("polynet", 0.05, 40, 3): 280,
    ("neuron", 0.1, 20, 3): 140, ("neuron", 0.1, 40, 3): 250,
}


def _matches_reference(cfg: dict, learner: str) -> bool:
    common = cfg["train"]["batch_size"] == 32 and cfg["train"]["loss"] == "hinge" and cfg["train"]["weight_decay"] == 0
    specific = {"mlp": cfg["model"]["width"] == 100 and cfg["model"]["activation"] == "relu",
                "neuron": cfg["neuron"]["activation"] == "sin", "polynet": not cfg["polynet"]["disjoint"]}
    return common and specific.get(learner, False)


def _scaling_claims(record: RunRecord) -> list[Claim]:
    table = scaling_table(record)
    slopes = {key: loglog_slope(ns, medians) if np.isfinite(medians).all() else float("nan")
              for key, (ns, medians) in table.items()}
    text = "; ".join(f"{learner} k={k}: " + ", ".join(f"n={int(n)}: {m:.0f}" for n, m in zip(*table[learner, k]))
                     + f" (slope {slopes[learner, k]:.2f})" for learner, k in table)
    out = []
    # The exponent claims are the MLP's (Figure 1); other learners have their own slopes.
    if ("mlp", 3) in slopes:
        out.append(Claim("scaling-k3", "t_c grows polynomially in n (t_c ~ n^(alpha k)): for k = 3 the log-log "
                         "slope of the MLP's median t_c against n lies between 1 and 2.", text,
                         "1 <= slope(mlp, k=3) <= 2", bool(1.0 <= slopes["mlp", 3] <= 2.0)))
    lrs = dict(_scaling_learners(record.config))
    compared = [(learner, n, k, m, REFERENCE_T_C[learner, lrs[learner], int(n), k])
                for (learner, k), (ns, medians) in table.items() for n, m in zip(ns, medians)
                if (learner, lrs[learner], int(n), k) in REFERENCE_T_C and _matches_reference(record.config, learner)]
    if compared:
        within = [0.5 <= m / ref <= 2.0 for *_, m, ref in compared]
        out.append(Claim("reference-medians", "Median t_c agrees with the reference runs of the same learner within 2x.",
                         ", ".join(f"{learner} ({int(n)},{k}): {m:.0f} vs {ref}" for learner, n, k, m, ref in compared),
                         "every ratio in [0.5, 2]", all(within)))
    if ("mlp", 3) in slopes and ("mlp", 4) in slopes:
        out.append(Claim("scaling-k4-steeper", "The exponent grows with k: the MLP's k = 4 slope exceeds its k = 3 slope.",
                         f"slopes: k=3 {slopes['mlp', 3]:.2f}, k=4 {slopes['mlp', 4]:.2f}", "slope(k=4) > slope(k=3)",
                         bool(slopes["mlp", 4] > slopes["mlp", 3])))
    return out


def _luck_claims(record: RunRecord) -> list[Claim]:
    t_c = convergence_steps(record)
    init_only, data_only = convergence_steps(record, "init_only"), convergence_steps(record, "data_only")

    def spread(values: np.ndarray) -> float:  # interquartile range relative to the median
        values = values[np.isfinite(values)]
        return float(np.subtract(*np.percentile(values, [75, 25])) / np.median(values)) if len(values) else np.nan

    ratio = float(np.nanmin(t_c) / np.nanmedian(t_c)) if np.isfinite(t_c).any() else float("nan")
    return [
        Claim("no-lucky-runs", "SGD does not stumble on the answer by luck: the fastest of many seeds needs a large "
              "fraction of the median time (unlike random search, whose minimum over seeds is far below its median).",
              f"min t_c {np.nanmin(t_c):.0f} vs median {np.nanmedian(t_c):.0f} over {len(t_c)} seeds: {ratio:.2f}",
              "min >= 0.3 x median", bool(ratio >= 0.3)),
        Claim("init-vs-data", "The spread of t_c comes from the initialisation more than from the data (SGD noise).",
              f"relative IQR of t_c: inits varied {spread(init_only):.2f} ({len(init_only)} seeds), data varied "
              f"{spread(data_only):.2f} ({len(data_only)} seeds)", "init spread > data spread",
              bool(spread(init_only) > spread(data_only))),
    ]


def _main_claims(record: RunRecord) -> list[Claim]:
    cfg_train = record.config["train"]
    t_c = convergence_steps(record)
    converged = ~np.isnan(t_c)
    loss, accuracy = record.series("train_loss"), record.series("val_acc")
    has_weights = "support_weight" in record.metric_names()  # not for the transformer learner
    support, off_support = record.series("support_weight"), record.series("off_support_weight_max")
    movement = record.series("weight_movement")

    plateau_ratio, drop_ratio, separated_first, steady = [], [], [], []
    for s in np.flatnonzero(converged):
        plateau_end, near_zero = phase_transition(loss.steps, loss.values[:, s])
        plateau_ratio.append(plateau_end / t_c[s])
        drop_ratio.append((near_zero - plateau_end) / t_c[s])
        if not has_weights:
            continue
        t_separate = first_step(support.steps, support.values[:, s] > off_support.values[:, s])
        t_leave_chance = first_step(accuracy.steps, accuracy.values[:, s] >= _LEFT_CHANCE)
        separated_first.append(t_separate < t_leave_chance)
        under_flat_loss = movement.steps <= plateau_end
        steady.append(rank_correlation(movement.steps[under_flat_loss], movement.values[under_flat_loss, s]))

    def fraction(flags) -> float:
        return float(np.mean(flags)) if len(flags) else 0.0

    abrupt = [p >= 0.5 and d <= 0.5 for p, d in zip(plateau_ratio, drop_ratio)]
    flat_until = _median([p * t for p, t in zip(plateau_ratio, t_c[converged])])
    extra = (_drift_claims(record, flat_until, movement) if "random_labels/weight_movement" in record.metric_names()
             else [])
    weight_claims = ("support-separates-first", "steady-weight-movement")
    claims = [
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
    return [c for c in claims if has_weights or c.name not in weight_claims] + extra


def _drift_claims(record: RunRecord, flat_until: float, movement) -> list[Claim]:
    """rho_t on true labels drifts (~ t); on random labels it only diffuses (~ sqrt t).
    Both are fitted over the flat-loss window (up to the median end of the plateau)."""
    control = record.series("random_labels/weight_movement")
    horizon = flat_until if np.isfinite(flat_until) else float(control.steps.max())
    window = (movement.steps > 0) & (movement.steps <= horizon)
    control_window = (control.steps > 0) & (control.steps <= horizon)
    true_slopes = [loglog_slope(movement.steps[window], movement.values[window, s])
                   for s in range(movement.values.shape[1])]
    random_slopes = [loglog_slope(control.steps[control_window], control.values[control_window, s])
                     for s in range(control.values.shape[1])]
    true_slope, random_slope = _median(true_slopes), _median(random_slopes)
    return [Claim(
        "drift-vs-random-walk",
        "Hidden progress is drift, not a random walk: rho_t grows linearly in t on true labels and like "
        "sqrt(t) on random labels.",
        f"log-log slope of rho_t over the flat loss (to step {horizon:.0f}): true labels {true_slope:.2f}, random labels {random_slope:.2f}"
        " (median over seeds)",
        "true >= 0.8 and random <= 0.65 (1 and 0.5 expected)",
        bool(true_slope >= 0.8 and random_slope <= 0.65),
    )]


def _median(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.median(values)) if values else float("nan")


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    if record.config["scaling_n"]:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for (learner, k), (ns, medians) in scaling_table(record).items():
            ax.plot(ns, medians, "o-", label=f"{learner}, k={k} (slope {loglog_slope(ns, medians):.2f})")
        ax.set(xscale="log", yscale="log", xlabel="n", ylabel="median $t_c$", title="convergence time vs n")
        ax.legend(fontsize=8)
        fig.tight_layout()
        # Loss curves per learner at the largest n and smallest k (median over seeds).
        curves, ax = plt.subplots(figsize=(5.5, 3.6))
        n, k = max(record.config["scaling_n"]), min(record.config["scaling_k"])
        for learner, _ in _scaling_learners(record.config):
            loss = record.series(f"{learner}_n{n}_k{k}/train_loss")
            ax.plot(loss.steps, np.median(loss.values, axis=1), label=learner)
        ax.set(xscale="log", xlabel="step", ylabel="training loss (median over seeds)",
               title=f"({n}, {k})-parity: loss curves per learner")
        ax.legend(fontsize=8)
        curves.tight_layout()
        return {"scaling": fig, "loss_per_learner": curves}

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
    control = record.series("random_labels/weight_movement")
    rho, ax = plt.subplots(figsize=(5.5, 3.6))
    for s, color in enumerate(colors):
        ax.plot(movement.steps, movement.values[:, s], color=color, lw=1, label="true labels" if s == 0 else None)
        if len(control):
            ax.plot(control.steps, control.values[:, s], color=color, lw=1, ls="--",
                    label="random labels" if s == 0 else None)
    if len(control):
        ax.legend(fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel=r"$\rho_t = \max|W_t - W_0|$",
           title="weight movement under the flat loss")
    rho.tight_layout()
    out = {"loss_and_accuracy": curves, "support_weights": weights, "weight_movement": rho}

    if record.config["widths"] or record.config["lrs"]:
        widths, lrs = record.series("replica_width").values[0], record.series("replica_lr").values[0]
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for lr in sorted(set(lrs)):
            points = sorted(set(widths[lrs == lr]))
            medians = [np.nanmedian(np.where(np.isfinite(t_c), t_c, np.nan)[(widths == w) & (lrs == lr)])
                       for w in points]
            ax.plot(points, medians, "o-", label=f"lr {lr:g}")
        ax.set(xscale="log", yscale="log", xlabel="width r", ylabel="median $t_c$", title="convergence time vs width")
        ax.set_xticks(sorted(set(widths)), [f"{w:g}" for w in sorted(set(widths))])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend(fontsize=8)
        fig.tight_layout()
        out["width_grid"] = fig

    if "init_only/val_acc" in record.metric_names():
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for scope, label in (("init_only", "inits varied (data fixed)"), ("data_only", "data varied (init fixed)")):
            values = convergence_steps(record, scope)
            ax.hist(values[np.isfinite(values)], bins=15, alpha=0.5, label=label)
        ax.set(xlabel="$t_c$", ylabel="seeds", title="luck vs noise")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out["luck_vs_noise"] = fig

    gap = record.series("fourier_gap")
    if len(gap):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for s, color in enumerate(colors):
            ax.plot(gap.steps, gap.values[:, s], color=color, lw=1)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set(xscale="symlog", xlabel="step", ylabel="Fourier gap (mean over neurons)",
               title="exact Fourier gap of the population gradient")
        fig.tight_layout()
        out["fourier_gap"] = fig
    return out
