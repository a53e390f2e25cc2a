"""The training side of hidden-progress: ``run(cfg, run)`` and the evaluator it uses."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from learnlab.experiments.hidden_progress import schema as M
from learnlab.experiments.hidden_progress.config import Config, scaling_learners
from learnlab.grid import Cell, cell, for_each_cell
from learnlab.models.mlp import TwoLayerMLP
from learnlab.models.neuron import SingleNeuron
from learnlab.models.parity_transformer import ParityTransformer
from learnlab.models.polynet import PolyNet
from learnlab.probes.fourier import fourier_gap, hypercube
from learnlab.probes.parity_progress import neuron_support_margin, neuron_support_share, unit_init_fourier_gap
from learnlab.probes.weights import support_gap, weight_movement
from learnlab.runtime import generator
from learnlab.seeding import replica_seeds
from learnlab.tasks.sparse_parity import sample_sparse_parity, sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.ensemble import FunctionalEnsemble
from learnlab.train.loop import fit
from learnlab.train.losses import margin_losses, sign_accuracy
from learnlab.train.replicas import ReplicaControl

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["run", "ConvergenceEvaluator"]


class ConvergenceEvaluator:
    """Validation accuracy and loss, t_c per seed, and the weight progress measures."""

    def __init__(self, model: torch.nn.Module, x_val, y_val, supports, loss_fn, extra_after_convergence: float):
        self.x_val, self.y_val, self.supports, self.loss_fn = x_val, y_val, supports, loss_fn
        self.extra = extra_after_convergence
        # The weight probes read first-layer weights over the input coordinates (S, r, n).
        self.initial_weight = model.weight.detach().clone() if hasattr(model, "weight") else None  # W_0
        self.converged_at = torch.full((model.n_replicas,), float("nan"))
        # Per-neuron support margins at every evaluation (step, (S, r)), kept on the CPU so
        # the neurons that end up carrying the parity can be timed once training is over.
        self.margins: list[tuple[int, torch.Tensor]] = []
        self.shares: list[tuple[int, torch.Tensor]] = []  # the same for the support share (S, r)
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
        metrics = {M.VAL_ACC: accuracy, M.VAL_LOSS: self.loss_fn(outputs, self.y_val)}
        if self.initial_weight is not None:
            on_support, off_support_max = support_gap(model.weight, self.supports)
            margin = neuron_support_margin(model.weight.detach(), self.supports)  # (S, r)
            self.margins = [(s, m) for s, m in self.margins if s < step] + [(step, margin.float().cpu())]
            share = neuron_support_share(model.weight.detach(), self.supports)  # (S, r)
            self.shares = [(s, m) for s, m in self.shares if s < step] + [(step, share.float().cpu())]
            metrics.update({M.SUPPORT_WEIGHT: on_support, M.OFF_SUPPORT_WEIGHT_MAX: off_support_max,
                            M.NEURONS_SEPARATED: _fraction_positive(margin, _neuron_mask(model)),
                            M.WEIGHT_MOVEMENT: weight_movement(model.weight, self.initial_weight), **self._fourier(model)})
        return metrics

    def _fourier(self, model) -> dict[str, torch.Tensor]:
        if self.cube is None:
            return {}
        bias = getattr(model, "bias", None)
        gap = fourier_gap(model.weight, bias, self.supports, self.gap_activation, self.cube)  # (S, r)
        return {M.FOURIER_GAP: gap.mean(dim=1), M.FOURIER_GAP_POSITIVE: (gap > 0).double().mean(dim=1)}

    def top_neuron_separation(self, model: torch.nn.Module, fraction: float) -> list[tuple[int, torch.Tensor]]:
        """(step, (S,)) the fraction of each seed's top neurons (largest final |readout|, at
        least one) whose support margin is positive, at every evaluation."""
        readout = getattr(model, "readout", None)
        if readout is None or not self.margins:
            return []
        top = self._top_neurons(model, fraction)
        return [(step, (margin.gather(1, top) > 0).double().mean(dim=1)) for step, margin in self.margins]

    def top_neuron_support_growth(self, model: torch.nn.Module, fraction: float) -> list[tuple[int, torch.Tensor]]:
        """(step, (S,)) the mean over each seed's top neurons of log(share_t / share_0),
        share = mean |w| on the support / mean |w| off it: 0 while nothing singles out S."""
        readout = getattr(model, "readout", None)
        if readout is None or not self.shares:
            return []
        top = self._top_neurons(model, fraction)
        initial = self.shares[0][1].gather(1, top).log()
        return [(step, (share.gather(1, top).log() - initial).double().mean(dim=1)) for step, share in self.shares]

    def _top_neurons(self, model: torch.nn.Module, fraction: float) -> torch.Tensor:
        magnitude = model.readout.detach().abs().cpu() * _neuron_mask(model).cpu()  # (S, r)
        widths = _neuron_mask(model).sum(dim=1).cpu()
        return magnitude.topk(max(1, int(round(fraction * float(widths.min())))), dim=1).indices  # (S, count)

    def done(self, step: int) -> bool:
        if torch.isnan(self.converged_at).any():
            return False
        return step >= math.ceil((1.0 + self.extra) * float(self.converged_at.max()))

    def state_dict(self) -> dict[str, Any]:
        return {"initial_weight": self.initial_weight, "converged_at": self.converged_at, "margins": self.margins,
                "shares": self.shares}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.initial_weight is not None:
            self.initial_weight = state["initial_weight"].to(self.initial_weight.device)
        self.converged_at = state["converged_at"].cpu()
        self.margins = list(state.get("margins", []))
        self.shares = list(state.get("shares", []))


def _neuron_mask(model) -> torch.Tensor:
    mask = getattr(model, "neuron_mask", None)
    return mask if mask is not None else torch.ones(model.weight.shape[:2], device=model.weight.device)


def _fraction_positive(margin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((margin > 0).double() * mask).sum(dim=1) / mask.sum(dim=1)


def run(cfg: Config, run: Run) -> None:
    # The scaling sweep (Figure 1, right): one ensemble per (learner, n, k), each in its own scope.
    sweep = [cell(M.sweep_scope(learner, n, k), learner=learner, lr=lr, n=n, k=k)
             for learner, lr in scaling_learners(cfg) for n in cfg.scaling_n for k in cfg.scaling_k]
    for_each_cell(run, sweep, lambda c, r: _train_cell(_sweep_point(cfg, c), r))
    if cfg.scaling_n:
        return
    converged_at = _train(cfg, run)
    # Section 5's Fourier gap at the all-ones initialisation (exact, any n); after fit,
    # which on a fresh start clears whatever this scope logged before.
    run.log(0, **{M.UNIT_INIT_FOURIER_GAP: unit_init_fourier_gap(cfg.task.n_bits, cfg.task.k)})
    # Luck vs noise: the same number of seeds varying only the init, or only the data.
    luck = [cell(control, vary=vary) for control, vary in ((M.INIT_ONLY, "init"), (M.DATA_ONLY, "data"))
            if control in cfg.controls]
    for_each_cell(run, luck, lambda c, r: _train_cell(replace(cfg, controls=(), vary=c.vary,
                                                              n_seeds=max(2, cfg.n_seeds // 2)), r))
    # The drift control: the same learners on random labels, for as many steps as the
    # median seed needed, to compare rho_t's growth (drift ~ t vs random walk ~ sqrt t).
    if M.RANDOM_LABELS in cfg.controls:
        steps = cfg.train.max_steps if converged_at.isnan().all() else int(converged_at.nanmedian())
        control = replace(cfg, controls=(), task=replace(cfg.task, random_labels=True),
                          train=replace(cfg.train, max_steps=max(steps, 1)))
        for_each_cell(run, [cell(M.RANDOM_LABELS)], lambda c, r: _train_cell(control, r))


def _train_cell(cfg: Config, run: Run) -> None:
    _train(cfg, run)  # a cell's t_c is in its metrics; the grid keeps only JSON-able returns


def _sweep_point(cfg: Config, point: Cell) -> Config:
    """One (learner, n, k) of the scaling sweep as a config of its own (no sweep, no controls)."""
    return replace(cfg, learner=point.learner, train=replace(cfg.train, lr=point.lr), scaling_n=(), scaling_k=(),
                   scaling_learners=(), scaling_lrs=(), controls=(),
                   task=replace(cfg.task, n_bits=point.n, k=point.k))


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
    # Each replica's learning rate, relative to cfg.train.lr (config check: SGD, so exact).
    replicas = ReplicaControl(lr_scale=torch.tensor(lrs, device=device) / cfg.train.lr) if cfg.lrs else None

    # 3. Train with SGD until every seed reaches 100% validation accuracy (or the cap).
    loss_fn = margin_losses[cfg.train.loss]
    evaluator = ConvergenceEvaluator(model, x_val, y_val, supports, loss_fn, cfg.train.extra_after_convergence)
    last_step = fit(model, batches, loss_fn, cfg.train, run, evaluate=evaluator, replicas=replicas)

    run.log(last_step, **{M.CONVERGED_STEP: evaluator.converged_at})
    # After fit, which on a fresh start clears whatever this scope logged before.
    run.log(0, **{M.REPLICA_WIDTH: torch.tensor(widths, dtype=torch.float), M.REPLICA_LR: torch.tensor(lrs)})
    # 4. Time the separation of the neurons that carry the parity at the end (largest |readout|).
    for step, separated in evaluator.top_neuron_separation(model, cfg.top_neurons):
        run.log(step, **{M.TOP_NEURONS_SEPARATED: separated})
    for step, growth in evaluator.top_neuron_support_growth(model, cfg.top_neurons):
        run.log(step, **{M.TOP_NEURONS_SUPPORT_GROWTH: growth})
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
