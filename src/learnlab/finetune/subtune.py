"""SubTuning: finetune a chosen set of blocks and a new head; everything else stays frozen.

Kaplun, Gurevich, Swisa, David, Shalev-Shwartz, Malach, "Less is More: Selective Layer
Finetuning with SubTuning" (arXiv 2302.06354). Frozen blocks stay in eval mode, so their
BatchNorm statistics do not move and every frozen parameter and buffer ends bit-identical
to the pretrained one. Without data augmentation the frozen prefix (stem and the blocks
before the earliest tuned one) is a fixed function of the input: ``fit`` computes it once
per example and trains on the cached activations.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.finetune.blocks import BlockwiseModel
from learnlab.train.loop import fit as train_fit
from learnlab.train.optim import make_optimizer

__all__ = ["SubTuned", "subtune", "FitConfig", "fit", "accuracy", "LoRALinear", "add_lora"]


class SubTuned(nn.Module):
    """A copy of ``backbone`` with blocks ``tuned`` trainable and a new linear head
    (sized from ``example``, a batch of inputs).

    ``tuned`` empty is linear probing; all blocks (and ``tune_stem``) is full finetuning.
    ``siamese``: the head reads the concatenation of the tuned features and the frozen
    backbone's features (the frozen copy of the tuned blocks runs beside them).
    """

    def __init__(self, backbone: BlockwiseModel, tuned: Sequence[int], n_classes: int, *, siamese: bool = False,
                 tune_stem: bool = False, example: torch.Tensor):
        super().__init__()
        self.tuned = sorted(set(int(b) for b in tuned))
        if any(not 0 <= b < len(backbone) for b in self.tuned):
            raise ValueError(f"blocks {self.tuned} are not all in [0, {len(backbone)})")
        self.tune_stem, self.siamese = tune_stem, siamese
        self.backbone = copy.deepcopy(backbone)
        self.backbone.head = nn.Identity()
        self.backbone.requires_grad_(False)
        for b in self.tuned:
            self.backbone.blocks[b].requires_grad_(True)
        if tune_stem:
            self.backbone.stem.requires_grad_(True)
        self.first = 0 if tune_stem else (self.tuned[0] if self.tuned else len(backbone))
        # The frozen reference path after the branch (siamese only).
        self.frozen_suffix = (nn.ModuleList(copy.deepcopy(list(backbone.blocks[self.first:])))
                              if siamese else None)
        if self.frozen_suffix is not None:
            self.frozen_suffix.requires_grad_(False)
        with torch.no_grad():
            was = self.backbone.training
            self.backbone.eval()
            dim = self.backbone.features(example[:2]).shape[-1]  # the head's input size
            self.backbone.train(was)
        self.head = nn.Linear(dim * (2 if siamese else 1), n_classes)

    def train(self, mode: bool = True) -> SubTuned:
        super().train(mode)
        # Frozen parts stay in eval mode (BatchNorm statistics fixed, dropout off).
        if not self.tune_stem:
            self.backbone.stem.eval()
        for b, block in enumerate(self.backbone.blocks):
            if b not in self.tuned:
                block.eval()
        self.backbone.neck.eval()
        if self.frozen_suffix is not None:
            self.frozen_suffix.eval()
        return self

    @torch.no_grad()
    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen prefix's activation (before block ``first``): a fixed function of x."""
        if self.tune_stem:
            return x
        return self.backbone.run_blocks(self.backbone.stem(x), 0, self.first)

    def suffix(self, h: torch.Tensor) -> torch.Tensor:
        """From the prefix activation to the logits."""
        start = h if not self.tune_stem else self.backbone.stem(h)
        features = self.backbone.neck(self.backbone.run_blocks(start, self.first))
        if self.frozen_suffix is not None:
            with torch.no_grad():
                frozen = start
                for block in self.frozen_suffix:
                    frozen = block(frozen)
                frozen = self.backbone.neck(frozen)
            features = torch.cat([features, frozen], dim=-1)
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(self.prefix(x))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def subtune(backbone: BlockwiseModel, tuned: Sequence[int], n_classes: int, example: torch.Tensor, **options) -> SubTuned:
    """``SubTuned(backbone, tuned, n_classes, example=example, **options)``."""
    return SubTuned(backbone, tuned, n_classes, example=example, **options)


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    cache: bool = True  # train on cached prefix activations (no augmentation)
    cosine: bool = False  # cosine decay of the learning rate to 0 over the run


def fit(model: SubTuned, x: torch.Tensor, y: torch.Tensor, cfg: FitConfig, *, seed: int = 0,
        augment=None) -> SubTuned:
    """Train the tuned blocks and the head with AdamW on (x, y) through ``learnlab.train.fit``;
    returns ``model``. Each epoch reshuffles with a generator seeded ``seed``.

    With ``cfg.cache`` and no ``augment``, the frozen prefix runs once over x and the loop
    trains ``model.suffix`` on the cached activations.
    """
    from learnlab.finetune.stack import EpochStream, QuietRun, train_config

    torch.manual_seed(seed)  # dropout in tuned blocks
    use_cache = cfg.cache and augment is None
    model.train()
    inputs = model.prefix(x) if use_cache else x
    loop_cfg = train_config(cfg, len(y))
    batches = _Batches(inputs, y, EpochStream(len(y), cfg.batch_size, [seed]), augment)
    optimizer = make_optimizer(model.trainable_parameters(), loop_cfg)
    train_fit(_Suffix(model) if use_cache else model, batches, F.cross_entropy, loop_cfg, QuietRun(),
              optimizer=optimizer)
    model.eval()
    return model


class _Suffix(nn.Module):
    """``model.suffix``: the model from its cached prefix activations to the logits."""

    def __init__(self, model: SubTuned):
        super().__init__()
        self.model = model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.suffix(h)


class _Batches:
    """One model's batches of (inputs, targets) from an ``EpochStream`` (optionally augmented,
    with the stream's generator)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, epochs, augment=None):
        self.inputs, self.targets, self.epochs, self.augment = inputs, targets, epochs, augment

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.epochs.next_batch()[0]
        batch = self.inputs[index]
        if self.augment is not None:
            batch = self.augment(batch, self.epochs.generators[0])
        return batch, self.targets[index]

    def state_dict(self) -> dict:
        return self.epochs.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.epochs.load_state_dict(state)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> float:
    model.eval()
    predictions = torch.cat([model(part).argmax(-1) for part in x.split(chunk)])
    return float((predictions == y).float().mean())


# ----------------------------------------------------------------------------- LoRA (the baseline)


class LoRALinear(nn.Module):
    """y = W x + (alpha / r) B A x with W frozen, A (r, in) small random and B (out, r) zero at the start."""

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 8.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features**0.5)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(F.linear(x, self.lora_a), self.lora_b)


def add_lora(module: nn.Module, rank: int = 4, alpha: float = 8.0) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``module`` by a ``LoRALinear`` (in place); returns it."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, LoRALinear(child, rank, alpha))
        else:
            add_lora(child, rank, alpha)
    return module
