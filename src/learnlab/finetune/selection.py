"""Which blocks to finetune: the finetuning profile and greedy SubTuning.

The profile trains each single block (or each window of consecutive blocks) with a new
head and reports test accuracy per block over seeds (the paper's Figures 1-2). Greedy
SubTuning (the paper's Algorithm 1) grows the set of tuned blocks from linear probing,
adding at each round the block that most improves k-fold cross-validated accuracy, and
stops when the best gain is below epsilon. The official code stops only when accuracy
*drops* (``stop="drop"``); backward selection starts from full finetuning and removes
blocks; ``best`` runs both and keeps the better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from learnlab.finetune.blocks import BlockwiseModel
from learnlab.finetune.subtune import FitConfig, SubTuned, accuracy, fit

__all__ = ["finetuning_profile", "cross_validated_score", "greedy_subtuning"]

Score = Callable[[frozenset[int]], float]


def finetuning_profile(backbone: BlockwiseModel, train: tuple[torch.Tensor, torch.Tensor],
                       test: tuple[torch.Tensor, torch.Tensor], n_classes: int, *, seeds: Sequence[int],
                       window: int = 1, cfg: FitConfig = FitConfig()) -> dict[tuple[int, ...], list[float]]:
    """{blocks: test accuracy per seed} for every window of ``window`` consecutive blocks."""
    (x, y), (x_test, y_test) = train, test
    out = {}
    for start in range(len(backbone) - window + 1):
        blocks = tuple(range(start, start + window))
        out[blocks] = [accuracy(fit(SubTuned(backbone, blocks, n_classes, example=x), x, y, cfg, seed=s),
                                x_test, y_test) for s in seeds]
    return out


def cross_validated_score(backbone: BlockwiseModel, x: torch.Tensor, y: torch.Tensor, n_classes: int, *,
                          folds: int = 3, seed: int = 0, cfg: FitConfig = FitConfig()) -> Score:
    """A score for greedy selection: mean validation accuracy of ``SubTuned(blocks)`` over k folds."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    parts = order.chunk(folds)

    def score(blocks: frozenset[int]) -> float:
        values = []
        for k, held in enumerate(parts):
            kept = torch.cat([p for j, p in enumerate(parts) if j != k])
            model = fit(SubTuned(backbone, sorted(blocks), n_classes, example=x), x[kept], y[kept], cfg, seed=seed + k)
            values.append(accuracy(model, x[held], y[held]))
        return float(np.mean(values))

    return score


def greedy_subtuning(score: Score, n_blocks: int, *, epsilon: float = 0.005, max_blocks: int | None = None,
                     direction: Literal["forward", "backward", "best"] = "forward",
                     stop: Literal["gain", "drop"] = "gain") -> dict:
    """Greedy block selection on ``score(blocks)``.

    Forward: from the empty set (linear probing); each round scores every block not yet
    chosen and adds the best; stops when the best gain < ``epsilon`` (``stop="gain"``, the
    paper's rule) or only when it is negative (``stop="drop"``, the official code's), or at
    ``max_blocks``. At most 1 + L k calls for k rounds. Backward: from all blocks (full
    finetuning), removes the block whose removal scores best while that costs less than
    ``epsilon``. Returns {"blocks", "score", "history": [(blocks, score)], "calls"}.
    """
    if direction == "best":
        forward = greedy_subtuning(score, n_blocks, epsilon=epsilon, max_blocks=max_blocks, stop=stop)
        backward = greedy_subtuning(score, n_blocks, epsilon=epsilon, max_blocks=max_blocks, direction="backward",
                                    stop=stop)
        best = forward if forward["score"] >= backward["score"] else backward
        return {**best, "calls": forward["calls"] + backward["calls"],
                "history": forward["history"] + backward["history"]}
    calls = 0

    def scored(blocks: frozenset[int]) -> float:
        nonlocal calls
        calls += 1
        return score(blocks)

    limit = n_blocks if max_blocks is None else max_blocks
    if direction == "forward":
        chosen: frozenset[int] = frozenset()
        current = scored(chosen)
        history = [(tuple(), current)]
        while len(chosen) < min(limit, n_blocks):
            candidates = {b: scored(chosen | {b}) for b in range(n_blocks) if b not in chosen}
            block, value = max(candidates.items(), key=lambda item: (item[1], -item[0]))
            gain = value - current
            if (stop == "gain" and gain < epsilon) or (stop == "drop" and gain < 0):
                break
            chosen, current = chosen | {block}, value
            history.append((tuple(sorted(chosen)), current))
        return {"blocks": tuple(sorted(chosen)), "score": current, "history": history, "calls": calls}
    chosen = frozenset(range(n_blocks))
    current = scored(chosen)
    history = [(tuple(sorted(chosen)), current)]
    while chosen:
        candidates = {b: scored(chosen - {b}) for b in sorted(chosen)}
        block, value = max(candidates.items(), key=lambda item: (item[1], item[0]))
        loss = current - value
        if (stop == "gain" and loss > epsilon) or (stop == "drop" and loss > 0):
            break
        chosen, current = chosen - {block}, value
        history.append((tuple(sorted(chosen)), current))
    return {"blocks": tuple(sorted(chosen)), "score": current, "history": history, "calls": calls}
