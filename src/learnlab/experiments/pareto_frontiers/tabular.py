"""The tabular part (Section 5): MLPs with dense or sparse first layers against forests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from learnlab.experiments.pareto_frontiers import schema as M
from learnlab.experiments.pareto_frontiers.config import Config
from learnlab.grid import Cell, cell, cells, for_each_cell
from learnlab.models.deep_mlp import DeepMLP, DeepMLPConfig
from learnlab.seeding import replica_seeds, stream
from learnlab.tasks.tabular import load_dataset, standardize, trial_split
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import replica_accuracy

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["train_tabular"]


def train_tabular(cfg: Config, source: str, run: Run) -> None:
    """Forests and MLPs on one set, every (fraction, trial) split; accuracies logged per split."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    tab, device = cfg.tabular, run.device
    dataset = load_dataset(source, target=tab.target)
    splits = [(fraction, trial) for fraction in tab.fractions for trial in range(tab.n_trials)]
    trial_seeds = replica_seeds(cfg.seed, tab.n_trials)
    prepared = []
    for fraction, trial in splits:
        train, test = trial_split(dataset, fraction=fraction, test_fraction=tab.test_fraction, seed=trial_seeds[trial] % 2**31)
        x_train, x_test = standardize(dataset.x[train], dataset.x[test])
        prepared.append((x_train, dataset.y[train], x_test, dataset.y[test]))

    # Boosting's default min_samples_leaf = 20 cannot split a set of 10 examples at all (it
    # predicts the majority class); scale it to the training size so the baseline is fair.
    forests = {"random_forest": lambda seed, n: RandomForestClassifier(tab.forest_trees, random_state=seed, n_jobs=1),
               "gradient_boosting": lambda seed, n: HistGradientBoostingClassifier(
                   random_state=seed, min_samples_leaf=max(1, min(20, n // 10)))}

    def fit_forests(_: Cell, forest_run: Run) -> None:
        forest_run.clear_metrics()  # it measures (no checkpoint): a run entering it again starts clean
        for name in tab.baselines:
            accuracies = [float((forests[name](trial_seeds[t] % 2**31, len(ya)).fit(xa, ya).predict(xb) == yb).mean())
                          for (_, t), (xa, ya, xb, yb) in zip(splits, prepared)]
            forest_run.log(0, **{f"{name}_acc": torch.tensor(accuracies)})

    for_each_cell(run, [cell(f"tab_{M.slug(dataset.name)}", dataset=dataset.name)], fit_forests)

    n_features = dataset.x.shape[1]
    x_test = torch.tensor(np.stack([p[2] for p in prepared]), dtype=torch.float32, device=device)  # (F*R, N_test, d)
    y_test = torch.tensor(np.stack([p[3] for p in prepared]), device=device)
    replicas = [(s, i) for s in tab.sparsities for i in range(len(splits))]
    sparsities = [min(s, n_features) if s else None for s, _ in replicas]
    # A (sparsity, trial)'s init and batches, the same at every fraction of that trial.
    trials = [trial_seeds[splits[i][1]] for _, i in replicas]
    tests = x_test.repeat(len(tab.sparsities), 1, 1), y_test.repeat(len(tab.sparsities), 1)
    samplers = [_table_sampler(prepared[i][0], prepared[i][1], tab.train.batch_size, device) for _, i in replicas]

    def train_mlp(c: Cell, mlp_run: Run) -> None:
        inits = [stream(t, f"mlp-init-sparsity-{s}") for t, (s, _) in zip(trials, replicas)]
        model = DeepMLP(n_features, dataset.n_classes, DeepMLPConfig(width=c.width, depth=c.depth), inits,
                        device, sparsities=sparsities)
        batches = ReplicaStream(samplers, [stream(t, f"mlp-batches-sparsity-{s}")
                                           for t, (s, _) in zip(trials, replicas)], device)
        evaluator = Measure(lambda model: {M.TEST_ACC: replica_accuracy(model, *tests)})
        fit(model, batches, _cross_entropy, tab.train, mlp_run, evaluate=evaluator)
        mlp_run.log(0, **{M.REPLICA_SPARSITY: torch.tensor([float(s) for s, _ in replicas])})

    # MLPs: every (sparsity, split) of one (width, depth) as one ensemble, a cell per (width, depth).
    for_each_cell(run, cells(lambda width, depth: M.mlp_scope(dataset.name, width, depth),
                             width=tab.widths, depth=tab.depths), train_mlp)


def _table_sampler(x: np.ndarray, y: np.ndarray, batch_size: int, device):
    x_set = torch.tensor(x, dtype=torch.float32, device=device)
    y_set = torch.tensor(y, device=device)

    def draw(g: torch.Generator, n_batches: int):  # minibatches with replacement from the training split
        index = torch.randint(0, len(y_set), (n_batches * batch_size,), generator=g, device=g.device)
        return x_set[index].view(n_batches, batch_size, -1), y_set[index].view(n_batches, batch_size)
    return draw


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per replica: logits (S, B, C), labels (S, B) -> (S,)."""
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)
