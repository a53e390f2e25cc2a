"""The frontier part: (init, m, trial) runs of one width trained as one stacked ensemble."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from learnlab.experiments.pareto_frontiers import schema as M
from learnlab.experiments.pareto_frontiers.config import Config, OfflineParityConfig, frontier_grid
from learnlab.models.mlp import TwoLayerMLP
from learnlab.runtime import generator
from learnlab.seeding import replica_seeds
from learnlab.tasks.sparse_parity import sample_sparse_parity, sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import fit
from learnlab.train.replicas import ReplicaControl
from learnlab.train.losses import margin_losses, sign_accuracy

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["SuccessEvaluator", "train_frontier"]


class SuccessEvaluator:
    """Training accuracy and monitored test error per run; stops a run at its first success.

    Steps to success: the first evaluation at which the monitored test error is at most
    the target. A run whose monitored error falls to ``stop_error`` is frozen (the loop
    leaves its weights as they are: ``replicas``, given to ``fit``); whether a run succeeded is decided at its end (frozen
    or at T) on all ``n_test`` held-out samples.
    """

    def __init__(self, model: TwoLayerMLP, x_train, y_train, train_mask, x_test, y_test, cfg: OfflineParityConfig):
        self.x_train, self.y_train, self.train_mask = x_train, y_train, train_mask  # (S, m_max, n), (S, m_max) x2
        self.x_monitor, self.y_monitor = x_test[:, : cfg.n_monitor], y_test[:, : cfg.n_monitor]
        self.target_error, self.stop_error = cfg.target_error, cfg.stop_error
        self.success_step = torch.full((model.n_replicas,), float("nan"))
        self.replicas = ReplicaControl.stoppable(model.n_replicas, x_test.device)

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        train_correct = (_outputs(model, self.x_train) * self.y_train > 0).float()
        train_acc = (train_correct * self.train_mask).sum(1) / self.train_mask.sum(1)
        test_error = 1.0 - sign_accuracy(_outputs(model, self.x_monitor), self.y_monitor)
        hit = (test_error <= self.target_error).cpu() & torch.isnan(self.success_step)
        self.success_step[hit] = float(step)
        self.replicas.freeze(test_error <= self.stop_error)
        return {M.TRAIN_ACC: train_acc, M.TEST_ERROR: test_error}

    def done(self, step: int) -> bool:
        return self.replicas.all_frozen()

    def state_dict(self) -> dict[str, Any]:
        return {"success_step": self.success_step}  # fit checkpoints the frozen mask (self.replicas)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.success_step = state["success_step"].cpu()


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) in chunks of samples, so the (S, chunk, r) hidden layer stays small."""
    width = model.weight.shape[1]
    chunk = max(1, 2**22 // (model.n_replicas * width))
    return torch.cat([model(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)], dim=1)

def train_frontier(cfg: Config, width: int, run: Run) -> None:
    device, task = run.device, cfg.task
    grid = frontier_grid(cfg)
    # Paired design: trial j has one support, one test set and one pool of samples at every
    # (init, m, width); its training sets are nested (the first m of the pool).
    trial_seeds = replica_seeds(cfg.seed, cfg.n_trials)
    support_seeds, test_seeds, pool_seeds, init_seeds, data_seeds = zip(*(replica_seeds(s, 5) for s in trial_seeds))
    m_max = max(cfg.sample_sizes)

    supports = torch.stack([sparse_parity_support(n_bits=task.n_bits, k=task.k, generator=generator(s, device))
                            for s in support_seeds])  # (R, k)
    pools = [sample_sparse_parity(m_max, n_bits=task.n_bits, support=supports[j], generator=generator(s, device))
             for j, s in enumerate(pool_seeds)]
    tests = [sample_sparse_parity(task.n_test, n_bits=task.n_bits, support=supports[j], generator=generator(s, device))
             for j, s in enumerate(test_seeds)]
    x_train = torch.stack([pools[trial][0] for _, _, trial in grid])  # (S, m_max, n)
    y_train = torch.stack([pools[trial][1] for _, _, trial in grid])  # (S, m_max)
    sizes = torch.tensor([m for _, m, _ in grid], device=device)
    train_mask = (torch.arange(m_max, device=device)[None, :] < sizes[:, None]).float()  # (S, m_max)
    x_test = torch.stack([tests[trial][0] for _, _, trial in grid])  # (S, n_test, n)
    y_test = torch.stack([tests[trial][1] for _, _, trial in grid])

    def sampler(trial: int, m: int):
        x_set, y_set = pools[trial][0][:m], pools[trial][1][:m]

        def draw(g: torch.Generator, n_batches: int):  # minibatches resampled from the fixed set
            index = torch.randint(0, m, (n_batches * cfg.train.batch_size,), generator=g, device=g.device)
            return x_set[index].view(n_batches, cfg.train.batch_size, -1), y_set[index].view(n_batches, -1)
        return draw

    # Dense and sparse replicas of a trial share their init seed: the sparse one keeps s of
    # the dense one's coordinates (rescaled), so the comparison is paired.
    seeds = [init_seeds[trial] for _, _, trial in grid]
    dense = TwoLayerMLP(task.n_bits, replace(cfg.model, width=width, init_sparsity=None), seeds, device)
    if "sparse" in cfg.inits:
        sparse = TwoLayerMLP(task.n_bits, replace(cfg.model, width=width, init_sparsity=cfg.sparsity), seeds, device)
        if cfg.sparse_scale == "fan_in":
            # "A random s-hot weight vector": each neuron starts as a fresh unit over its s
            # inputs, initialised as PyTorch initialises fan-in s: its s weights and its bias
            # U(+-1/sqrt(s)) (uniform rescaled stays uniform; the bias too, as nn.Linear(s, .)
            # draws it). The readout keeps PyTorch's default for the layer (fan-in r).
            with torch.no_grad():
                sparse.weight.mul_(math.sqrt(task.n_bits / cfg.sparsity))
                if sparse.bias is not None:
                    sparse.bias.mul_(math.sqrt(task.n_bits / cfg.sparsity))
        is_sparse = torch.tensor([init == "sparse" for init, _, _ in grid], device=device)
        with torch.no_grad():
            for p_dense, p_sparse in zip(dense.parameters(), sparse.parameters()):
                p_dense.copy_(torch.where(is_sparse.view(-1, *([1] * (p_dense.dim() - 1))), p_sparse, p_dense))
    model = dense
    batches = ReplicaStream([sampler(trial, m) for _, m, trial in grid], [data_seeds[t] for *_, t in grid], device)

    loss_fn = margin_losses[cfg.train.loss]
    watched = min(m_max, task.n_train_monitor)
    evaluator = SuccessEvaluator(model, x_train[:, :watched], y_train[:, :watched], train_mask[:, :watched],
                                 x_test, y_test, task)
    last_step = fit(model, batches, loss_fn, cfg.train, run, evaluate=evaluator, replicas=evaluator.replicas)

    with torch.no_grad():
        final_error = 1.0 - sign_accuracy(_outputs(model, x_test), y_test)
    run.log(last_step, **{M.FINAL_TEST_ERROR: final_error, M.SUCCESS_STEP: evaluator.success_step,
                          M.SUCCESS: (final_error <= task.target_error).float()})
    run.artifact("supports", supports.cpu().tolist())


