"""Many SubTuned models of one backbone, trained at once as stacked replicas.

Greedy SubTuning (Kaplun et al. 2023, arXiv 2302.06354, Algorithm 1) scores every
candidate block set by k-fold cross-validation: one round is (folds x candidates x seeds)
small finetuning runs of the same backbone. ``SubTunedStack`` trains them together:

- the frozen prefix of every replica (stem and the blocks before its earliest tuned block)
  is a fixed function of the example, so ``Prefixes`` computes it once per example and
  level and a replica *enters* the stacked forward pass at its own first tuned block with
  cached activations (no replica ever runs a frozen prefix);
- at each block, the replicas that tune it run their own copy of it through
  ``learnlab.train.FunctionalEnsemble`` (``torch.func`` stacked parameters + ``vmap``,
  BatchNorm in train mode with per-replica running statistics); the replicas for which it
  is frozen run the one pretrained block, in eval mode, as one flat batch;
- each replica has its own new linear head, built after seeding with its own seed.

Replica s trains exactly as ``fit(SubTuned(...), ...)`` would on its own (its gradient
is its own: the loss is summed over replicas; AdamW acts per coordinate), with its own
epoch orders; ``fit_many`` trains a list of such specifications through the one loop
``learnlab.train.fit``, grouped by training-set size and chunked to bound memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.finetune.blocks import BlockwiseModel
from learnlab.train.ensemble import FunctionalEnsemble
from learnlab.train.loop import fit as train_fit
from learnlab.train.optim import TrainConfig, make_optimizer

__all__ = ["Prefixes", "SubTunedStack", "Replica", "fit_many", "EpochStream", "QuietRun", "train_config"]


class Prefixes:
    """Frozen-prefix activations of one set of examples, per level, computed once (memoised).

    Level -1 is the raw input (the stem is tuned), level j in [0, L) the input of block j,
    level L the output of the last block (linear probing).
    """

    def __init__(self, backbone: BlockwiseModel, x: torch.Tensor, chunk: int = 4096):
        self.backbone, self.x, self.chunk = backbone, x, chunk
        self._cache: dict[int, torch.Tensor] = {-1: x}

    @torch.no_grad()
    def __getitem__(self, level: int) -> torch.Tensor:
        if level not in self._cache:
            below = max(k for k in self._cache if k < level)
            was = self.backbone.training
            self.backbone.eval()
            parts = []
            for h in self._cache[below].split(self.chunk):
                if below == -1:
                    h = self.backbone.stem(h)
                parts.append(self.backbone.run_blocks(h, max(below, 0), level))
            self.backbone.train(was)
            self._cache[level] = torch.cat(parts)
        return self._cache[level]

    def __len__(self) -> int:
        return len(self.x)


class SubTunedStack(nn.Module):
    """S SubTuned models of ``backbone``: replica s tunes blocks ``tuned[s]`` (and the stem
    where ``tune_stem[s]``) and its own new linear head (built after seeding ``seeds[s]``).

    ``forward((prefixes, index))``: ``index`` (S, B) example indices into ``prefixes`` (one
    row per replica) -> logits (S, B, n_classes). Frozen parts stay in eval mode.
    """

    def __init__(self, backbone: BlockwiseModel, tuned: Sequence[Sequence[int]], n_classes: int, *,
                 seeds: Sequence[int], example: torch.Tensor, tune_stem: Sequence[bool] | None = None):
        super().__init__()
        n_blocks = len(backbone)
        stems = [False] * len(tuned) if tune_stem is None else [bool(s) for s in tune_stem]
        if not (len(tuned) == len(seeds) == len(stems)) or not tuned:
            raise ValueError("one block set, seed and tune_stem flag per replica (at least one replica)")
        sets = [sorted({int(b) for b in t}) for t in tuned]
        for blocks in sets:
            if any(not 0 <= b < n_blocks for b in blocks):
                raise ValueError(f"blocks {blocks} are not all in [0, {n_blocks})")
        firsts = [-1 if stem else (blocks[0] if blocks else n_blocks) for blocks, stem in zip(sets, stems)]
        # Internally replicas are sorted by the level where they enter (their first tuned block).
        order = sorted(range(len(sets)), key=lambda r: firsts[r])
        self.n_replicas, self.n_blocks = len(sets), n_blocks
        self.tuned = [sets[r] for r in order]
        self.tune_stem = [stems[r] for r in order]
        self.seeds = [int(seeds[r]) for r in order]
        self.firsts = [firsts[r] for r in order]
        self.register_buffer("_order", torch.tensor(order), persistent=False)
        self.register_buffer("_position", torch.argsort(torch.tensor(order)), persistent=False)
        self.backbone = copy.deepcopy(backbone).requires_grad_(False).eval()
        self.backbone.head = nn.Identity()
        # Per level, the (sorted) replicas that tune it and their stacked copies of it.
        self.trainable: dict[int, list[int]] = {}
        copies = {}
        for level in range(-1, n_blocks):
            who = [p for p in range(self.n_replicas)
                   if (self.tune_stem[p] if level == -1 else level in self.tuned[p])]
            if who:
                module = self._module(level)
                self.trainable[level] = who
                copies[str(level)] = FunctionalEnsemble(lambda module=module: copy.deepcopy(module),
                                                        [self.seeds[p] for p in who])
        self.copies = nn.ModuleDict(copies)
        with torch.no_grad():
            dim = self.backbone.features(example[:2]).shape[-1]  # the head's input size
        self.head = FunctionalEnsemble(lambda: nn.Linear(dim, n_classes), self.seeds)

    def _module(self, level: int) -> nn.Module:
        return self.backbone.stem if level == -1 else self.backbone.blocks[level]

    def train(self, mode: bool = True) -> SubTunedStack:
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics fixed, dropout off
        return self

    def levels(self) -> set[int]:
        """The levels at which replicas enter: the prefix activations ``forward`` reads."""
        return set(self.firsts)

    def forward(self, batch: tuple[Prefixes, torch.Tensor]) -> torch.Tensor:
        prefixes, index = batch
        index = index[self._order]  # (S, B), sorted replicas
        n_replicas, size = index.shape
        h, active = None, 0
        for level in range(min(self.firsts), self.n_blocks + 1):
            entering = sum(1 for f in self.firsts if f == level)
            if entering:  # these replicas start here, from cached frozen-prefix activations
                new = prefixes[level][index[active:active + entering]]  # (e, B, ...)
                h = new if h is None else torch.cat([h, new])
                active += entering
            if level < self.n_blocks:
                h = self._run_level(level, h)
        features = self.backbone.neck(h.flatten(0, 1)).unflatten(0, (n_replicas, size))  # (S, B, D)
        return self.head(features)[self._position]  # (S, B, n_classes), the caller's order

    def _run_level(self, level: int, h: torch.Tensor) -> torch.Tensor:
        """Block ``level`` on the active replicas' activations h (A, B, ...)."""
        active, size = h.shape[:2]
        tuned = self.trainable.get(level, [])
        if not tuned:
            return self._module(level)(h.flatten(0, 1)).unflatten(0, (active, size))
        if len(tuned) == active:
            return self.copies[str(level)](h)
        frozen = [p for p in range(active) if p not in set(tuned)]
        out_tuned = self.copies[str(level)](h[tuned])
        out_frozen = self._module(level)(h[frozen].flatten(0, 1)).unflatten(0, (len(frozen), size))
        inverse = torch.argsort(torch.tensor(tuned + frozen, device=h.device))
        return torch.cat([out_tuned, out_frozen])[inverse]

    @torch.no_grad()
    def predict(self, prefixes: Prefixes, index: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Predicted classes (S, N) for ``index`` (S, N) examples of ``prefixes``."""
        was = self.training
        self.eval()
        out = torch.cat([self((prefixes, part)).argmax(-1) for part in index.split(chunk, dim=1)], dim=1)
        self.train(was)
        return out

    def replica(self, r: int, n_classes: int, example: torch.Tensor):
        """Replica ``r`` (the caller's numbering) as a standalone ``SubTuned`` model."""
        from learnlab.finetune.subtune import SubTuned

        p = int(self._position[r])
        model = SubTuned(self.backbone, self.tuned[p], n_classes, example=example, tune_stem=self.tune_stem[p])
        for level, who in self.trainable.items():
            if p in who:
                module = model.backbone.stem if level == -1 else model.backbone.blocks[level]
                module.load_state_dict(_replica_state(self.copies[str(level)], who.index(p)))
        model.head.load_state_dict(_replica_state(self.head, p))
        return model.eval()


def _replica_state(ensemble: FunctionalEnsemble, k: int) -> dict[str, torch.Tensor]:
    state = ensemble.replica_state(k)
    for name in ensemble._buffer_names:
        state[name] = getattr(ensemble, "replica_buffer_" + name.replace(".", "_"))[k].clone()
    return state


# ----------------------------------------------------------------------------- training through learnlab.train.fit


class EpochStream:
    """Epochs over each replica's own training set: replica s reshuffles with its own
    generator (seeded ``seeds[s]``) every epoch, as ``torch.randperm(n, generator=g)``; a batch
    is (S, B) positions into the replicas' sets (the last of an epoch may be smaller).
    All replicas share n. Resumable: the generators' states at the epoch start and the position."""

    def __init__(self, n: int, batch_size: int, seeds: Sequence[int]):
        self.n, self.batch_size = n, batch_size
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self._epoch_states: list[torch.Tensor] = []
        self._orders: torch.Tensor | None = None
        self._start = n  # empty: the first call draws an epoch

    def _new_epoch(self) -> None:
        self._epoch_states = [g.get_state() for g in self.generators]
        self._orders = torch.stack([torch.randperm(self.n, generator=g) for g in self.generators])  # (S, n)
        self._start = 0

    def next_batch(self) -> torch.Tensor:
        if self._start >= self.n:
            self._new_epoch()
        batch = self._orders[:, self._start:self._start + self.batch_size]
        self._start += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self._orders is None:
            return {"generators": [g.get_state() for g in self.generators], "start": None}
        return {"generators": self._epoch_states, "start": self._start}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved)
        if state["start"] is None:
            self._orders, self._start = None, self.n
        else:
            self._new_epoch()
            self._start = state["start"]


class _IndexBatches:
    """(prefixes, example indices (S, B)) and their targets, from an ``EpochStream`` over
    each replica's training indices ``train`` (S, n)."""

    def __init__(self, prefixes: Prefixes, targets: torch.Tensor, train: torch.Tensor, epochs: EpochStream):
        self.prefixes, self.targets, self.train, self.epochs = prefixes, targets, train, epochs

    def next_batch(self):
        index = torch.gather(self.train, 1, self.epochs.next_batch())  # (S, B)
        return (self.prefixes, index), self.targets[index]

    def state_dict(self) -> dict[str, Any]:
        return self.epochs.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs.load_state_dict(state)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs) -> None: ...
    def close(self) -> None: ...


class QuietRun:
    """A ``RunLog`` that keeps nothing: the inner finetuning runs of a selection are not logged."""

    def log(self, step: int, **metrics: Any) -> None: ...
    def progress(self, total: int, *, initial: int = 0, desc: str | None = None) -> _NoBar:
        return _NoBar()
    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None: ...
    def load_checkpoint(self) -> None:
        return None


def train_config(cfg, n: int) -> TrainConfig:
    """The loop's settings for a ``FitConfig`` on n examples: AdamW, ``epochs`` passes of
    ceil(n / batch) steps, constant or cosine learning rate, no logging inside."""
    steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    return TrainConfig(optimizer="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
                       schedule="cosine" if cfg.cosine else "constant", max_steps=steps, log_every=steps,
                       eval_every=steps)


def _replica_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(S,) mean cross-entropy per replica."""
    n_replicas, size = targets.shape
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(n_replicas, size).mean(1)


@dataclass(frozen=True)
class Replica:
    """One finetuning run: tune ``blocks`` (and the stem if ``tune_stem``) on examples
    ``train`` (indices into the training prefixes) with ``seed``; score on ``test`` (indices
    into the evaluation prefixes; None: all of them)."""

    blocks: tuple[int, ...]
    train: torch.Tensor
    seed: int
    tune_stem: bool = False
    test: torch.Tensor | None = None


def fit_many(backbone: BlockwiseModel, train: tuple[Prefixes, torch.Tensor], test: tuple[Prefixes, torch.Tensor],
             replicas: Sequence[Replica], n_classes: int, cfg, *, max_replicas: int = 48,
             keep: Sequence[int] = ()) -> tuple[list[float], dict[int, nn.Module]]:
    """Train every replica (as stacks of at most ``max_replicas`` with one training-set size)
    and return their test accuracies, in order, and the replicas in ``keep`` as ``SubTuned``."""
    (prefixes, targets), (test_prefixes, test_targets) = train, test
    accuracies: list[float] = [math.nan] * len(replicas)
    kept: dict[int, nn.Module] = {}
    groups: dict[int, list[int]] = {}
    for r, spec in enumerate(replicas):
        groups.setdefault(len(spec.train), []).append(r)
    for n, members in groups.items():
        for start in range(0, len(members), max_replicas):
            chunk = members[start:start + max_replicas]
            specs = [replicas[r] for r in chunk]
            stack = SubTunedStack(backbone, [s.blocks for s in specs], n_classes, seeds=[s.seed for s in specs],
                                  tune_stem=[s.tune_stem for s in specs], example=prefixes.x[:2])
            loop_cfg = train_config(cfg, n)
            stream = _IndexBatches(prefixes, targets, torch.stack([s.train for s in specs]),
                                   EpochStream(n, cfg.batch_size, [s.seed for s in specs]))
            optimizer = make_optimizer([p for p in stack.parameters() if p.requires_grad], loop_cfg)
            train_fit(stack, stream, _replica_loss, loop_cfg, QuietRun(), optimizer=optimizer)
            stack.eval()
            # Evaluate: replicas with equal test sizes together (padding is safe in eval mode).
            tests = [s.test if s.test is not None else torch.arange(len(test_prefixes)) for s in specs]
            width = max(len(t) for t in tests)
            index = torch.stack([F.pad(t, (0, width - len(t))) for t in tests])  # (S, N)
            mask = torch.stack([torch.arange(width) < len(t) for t in tests])
            correct = (stack.predict(test_prefixes, index) == test_targets[index]) & mask
            for k, r in enumerate(chunk):
                accuracies[r] = float(correct[k].sum() / mask[k].sum())
                if r in keep:
                    kept[r] = stack.replica(k, n_classes, prefixes.x[:2])
    return accuracies, kept
