"""icl-markov ``run``: sample chains, train the stacked transformer (and the controls), log."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from learnlab.experiments.icl_markov import metrics as M
from learnlab.experiments.icl_markov.config import ICLMarkovConfig, control_config
from learnlab.experiments.icl_markov.evaluator import MarkovEvaluator
from learnlab.grid import cells, for_each_cell
from learnlab.models import _icl_kernel as kernel
from learnlab.models.icl_transformer import ICLTransformer
from learnlab.models.minimal_induction import MinimalInductionModel
from learnlab.probes.markov import count_only_floor
from learnlab.runtime import generator, one_cpu_thread
from learnlab.seeding import replica_seeds, stream
from learnlab.tasks.markov import sample_icl_markov
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import fit
from learnlab.train.optim import TrainConfig, make_flat_optimizer

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["markov_stream", "next_token_loss", "model_and_optimizer", "train_one", "run"]


def markov_stream(cfg: ICLMarkovConfig, seeds: list[int], device: torch.device) -> ReplicaStream:
    """Fresh chains every batch, one stream per seed: (S, B, T) inputs and next-token targets."""
    task, batch_size = cfg.task, cfg.train.batch_size

    def draw(g: torch.Generator, n_batches: int):
        tokens = sample_icl_markov(n_batches * batch_size, k=task.k, length=task.length + 1, n=task.n,
                                   alpha=task.alpha, prior=task.prior, unigram_fraction=task.unigram_fraction,
                                   generator=g)[0].view(n_batches, batch_size, -1)  # (n_batches, B, T+1)
        return tokens[..., :-1], tokens[..., 1:]

    # 16 batches a draw: a call of the sampler costs ~0.6 ms of fixed overhead on a CPU (a third of a
    # 64-sequence draw), and the fused training step is ~10 ms.
    return ReplicaStream([draw] * len(seeds), seeds, device, block=16)


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over all positions, one value per seed: (S, B, T, k), (S, B, T) -> (S,)."""
    if kernel.available(logits):  # one fused pass (PyTorch's CPU log-softmax is slow on rows of k = 2)
        return kernel.CrossEntropy.apply(logits, targets)
    S = logits.shape[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none").view(S, -1).mean(1)


def model_and_optimizer(cfg: ICLMarkovConfig, init_seeds, device) -> tuple[torch.nn.Module, TrainConfig, list[dict]]:
    """The model, the training config it trains under and its parameter groups. The learning
    rate is set in one place, the loop (``train.lr``'s schedule times each group's ``lr_scale``):
    the transformer at ``cfg.train.lr`` (weight decay on matrices only), the minimal model by
    SGD at ``minimal.lr_v``, W's group at ``lr_w / lr_v`` times it."""
    if cfg.model == "transformer":
        model = ICLTransformer(cfg.task.k, cfg.transformer, init_seeds, device)
        decay = {id(p) for p in model.decay_parameters()}
        params = list(model.parameters())
        return model, cfg.train, [{"params": [p for p in params if id(p) in decay]},
                                  {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}]
    model = MinimalInductionModel(cfg.task.k, cfg.minimal, init_seeds, device)
    return model, replace(cfg.train, optimizer="sgd", weight_decay=0.0, lr=cfg.minimal.lr_v), model.param_groups()


def _train_control(cfg: ICLMarkovConfig, control: str, run: Run) -> None:
    train_one(control_config(cfg, control), run)  # its evaluator's snapshots are in its scope's artifacts


def train_one(cfg: ICLMarkovConfig, run: Run) -> MarkovEvaluator:
    """Sample the task, build the model, train it; return the evaluator (with its snapshots)."""
    device = run.device
    init_seeds, data_seeds = zip(*(replica_seeds(s, 2) for s in replica_seeds(cfg.seed, cfg.n_seeds)))
    model, train, groups = model_and_optimizer(cfg, init_seeds, device)
    evaluator = MarkovEvaluator(cfg, device, cfg.n_seeds)
    fit(model, markov_stream(cfg, list(data_seeds), device), next_token_loss, train, run, evaluate=evaluator,
        optimizer=make_flat_optimizer(groups, train))  # FlatAdamW for the transformer
    run.log(0, **{M.level(name): value for name, value in evaluator.strategy_levels().items()})
    if evaluator.snapshots:
        run.artifact(M.ATTENTION_SNAPSHOTS, {
            "steps": [s["step"] for s in evaluator.snapshots],
            "layer1": torch.stack([s["layer1"] for s in evaluator.snapshots]).tolist(),
            "layer2": torch.stack([s["layer2"] for s in evaluator.snapshots]).tolist()})
    return evaluator


def run(cfg: ICLMarkovConfig, run: Run) -> None:
    # One CPU thread: a 5k-parameter model whose step is 10-20 ms; a second thread halves the kernel's
    # work on an idle machine, but on a shared one waits for its partner at every parallel region
    # (benchmarks/icl_markov.py at load ~4 on 2 cores: 21 ms a step with one thread, 320 ms with two).
    with one_cpu_thread(run.device):
        # 1. The main model on the configured prior.
        train_one(cfg, run)
        # 2. Controls, each in its own scope: the one-layer transformer, the minimal model,
        #    and the prior variations.
        for_each_cell(run, cells(str, control=cfg.controls), lambda c, r: _train_control(cfg, c.control, r))
    if "one_layer" in cfg.controls and cfg.task.n == 2:
        floor = count_only_floor(k=cfg.task.k, length=cfg.task.length, alpha=cfg.task.alpha,
                                 n_samples=200_000 if cfg.task.k == 2 else 400_000,
                                 generator=generator(stream(cfg.seed, "count-only-floor")))
        run.log(0, **{M.COUNT_ONLY_FLOOR: floor})
