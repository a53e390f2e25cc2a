"""icl-markov ``run``: sample chains, train the stacked transformer (and the controls), log."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from learnlab.experiments.icl_markov import metrics as M
from learnlab.experiments.icl_markov.config import ICLMarkovConfig, control_config
from learnlab.experiments.icl_markov.evaluator import MarkovEvaluator
from learnlab.models.icl_transformer import ICLTransformer
from learnlab.models.minimal_induction import MinimalInductionModel
from learnlab.probes.markov import count_only_floor
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.markov import sample_icl_markov
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import fit
from learnlab.train.optim import make_optimizer

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["markov_stream", "next_token_loss", "train_one", "run"]


def markov_stream(cfg: ICLMarkovConfig, seeds: list[int], device: torch.device) -> ReplicaStream:
    """Fresh chains every batch, one stream per seed: (S, B, T) inputs and next-token targets."""
    task, batch_size = cfg.task, cfg.train.batch_size

    def draw(g: torch.Generator, n_batches: int):
        tokens = sample_icl_markov(n_batches * batch_size, k=task.k, length=task.length + 1, n=task.n,
                                   alpha=task.alpha, prior=task.prior, unigram_fraction=task.unigram_fraction,
                                   generator=g)[0].view(n_batches, batch_size, -1)  # (n_batches, B, T+1)
        return tokens[..., :-1], tokens[..., 1:]

    # One batch a draw: the chains' matrices are drawn per sequence anyway, so blocks gain little.
    return ReplicaStream([draw] * len(seeds), seeds, device, block=1)


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over all positions, one value per seed: (S, B, T, k), (S, B, T) -> (S,)."""
    S = logits.shape[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none").view(S, -1).mean(1)


def train_one(cfg: ICLMarkovConfig, run: Run) -> MarkovEvaluator:
    """Sample the task, build the model, train it; return the evaluator (with its snapshots)."""
    device = run.device
    init_seeds, data_seeds = zip(*(replica_seeds(s, 2) for s in replica_seeds(cfg.seed, cfg.n_seeds)))
    if cfg.model == "transformer":
        model = ICLTransformer(cfg.task.k, cfg.transformer, init_seeds, device)
        decay = {id(p) for p in model.decay_parameters()}
        groups = [{"params": [p for p in model.parameters() if id(p) in decay]},
                  {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0}]
        optimizer = make_optimizer(groups, cfg.train)
    else:  # the minimal model: plain SGD with a learning rate per parameter
        model = MinimalInductionModel(cfg.task.k, cfg.minimal, init_seeds, device)
        optimizer = make_optimizer(model.param_groups(), replace(cfg.train, optimizer="sgd", weight_decay=0.0))
        for group, lr in zip(optimizer.param_groups, (cfg.minimal.lr_v, cfg.minimal.lr_w)):
            group["lr_scale"] = lr / cfg.train.lr
    evaluator = MarkovEvaluator(cfg, device, cfg.n_seeds)
    fit(model, markov_stream(cfg, list(data_seeds), device), next_token_loss, cfg.train, run, evaluate=evaluator,
        optimizer=optimizer)
    run.log(0, **{M.level(name): value for name, value in evaluator.strategy_levels().items()})
    if evaluator.snapshots:
        run.artifact(M.ATTENTION_SNAPSHOTS, {
            "steps": [s["step"] for s in evaluator.snapshots],
            "layer1": torch.stack([s["layer1"] for s in evaluator.snapshots]).tolist(),
            "layer2": torch.stack([s["layer2"] for s in evaluator.snapshots]).tolist()})
    return evaluator


def run(cfg: ICLMarkovConfig, run: Run) -> None:
    # 1. The main model on the configured prior.
    train_one(cfg, run)
    # 2. Controls, each in its own scope: the one-layer transformer, the minimal model,
    #    and the prior variations.
    for control in cfg.controls:
        train_one(control_config(cfg, control), run.scoped(control))
    if "one_layer" in cfg.controls and cfg.task.n == 2:
        floor = count_only_floor(k=cfg.task.k, length=cfg.task.length, alpha=cfg.task.alpha,
                                 n_samples=200_000 if cfg.task.k == 2 else 400_000,
                                 generator=generator(cfg.seed + 12345))
        run.log(0, **{M.COUNT_ONLY_FLOOR: floor})
