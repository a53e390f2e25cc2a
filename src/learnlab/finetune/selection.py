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

from collections.abc import Callable, Generator, Sequence
from typing import Literal

import numpy as np
import torch

from learnlab.finetune.blocks import BlockwiseModel
from learnlab.finetune.stack import Prefixes, Replica, fit_many
from learnlab.finetune.subtune import FitConfig, SubTuned, accuracy, fit
from learnlab.seeding import stream

__all__ = ["finetuning_profile", "cross_validated_score", "cross_validated_scores", "greedy_subtuning", "greedy_many"]

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
    """A score for greedy selection: mean validation accuracy of ``SubTuned(blocks)`` over k folds
    (the k fits trained at once as stacked replicas, ``cross_validated_scores``)."""
    prefixes, everything = Prefixes(backbone, x), torch.arange(len(y))

    def score(blocks: frozenset[int]) -> float:
        return cross_validated_scores(backbone, (prefixes, y), [(everything, blocks, seed)], n_classes, folds=folds,
                                      cfg=cfg)[0]

    return score


def cross_validated_scores(backbone: BlockwiseModel, pool: tuple[Prefixes, torch.Tensor],
                           requests: Sequence[tuple[torch.Tensor, frozenset[int], int]], n_classes: int, *,
                           folds: int, cfg: FitConfig, max_replicas: int = 48) -> list[float]:
    """Mean k-fold validation accuracy for each request ``(examples, blocks, seed)``: ``examples``
    (n,) indices into the pool, split into ``folds`` parts by ``randperm(n)`` under the stream
    ``"folds"`` of ``seed``; fold k trains ``SubTuned(blocks)`` on the other parts, seeded with the
    stream ``f"fold-{k}"`` of ``seed``, and scores the held-out part. All requests' fold fits
    are trained together (``fit_many``)."""
    replicas = []
    for examples, blocks, seed in requests:
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(stream(seed, "folds")))
        parts = order.chunk(folds)
        for k, held in enumerate(parts):
            kept = torch.cat([p for j, p in enumerate(parts) if j != k])
            replicas.append(Replica(tuple(sorted(blocks)), examples[kept], stream(seed, f"fold-{k}"),
                                    test=examples[held]))
    accuracies, _ = fit_many(backbone, pool, pool, replicas, n_classes, cfg, max_replicas=max_replicas)
    per_fold = np.asarray(accuracies).reshape(len(requests), -1)
    return [float(v) for v in per_fold.mean(axis=1)]


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
    return greedy_many(lambda requests: [score(blocks) for _, blocks in requests], 1, n_blocks, epsilon=epsilon,
                       max_blocks=max_blocks, direction=direction, stop=stop)[0]


def greedy_many(score_many: Callable[[list[tuple[int, frozenset[int]]]], list[float]], problems: int,
                n_blocks: int, **options) -> list[dict]:
    """``greedy_subtuning`` for ``problems`` selections (e.g. seeds) in lockstep: each round,
    every unfinished selection's candidate sets are scored in one call
    ``score_many([(problem, blocks), ...]) -> [score, ...]`` (one batched training run)."""
    runs = [_greedy(n_blocks, **options) for _ in range(problems)]
    results: list[dict | None] = [None] * problems
    requests = {p: next(run) for p, run in enumerate(runs)}
    while requests:
        flat = [(p, blocks) for p, sets in requests.items() for blocks in sets]
        scores = iter(score_many(flat))
        answers = {p: [next(scores) for _ in sets] for p, sets in requests.items()}
        requests = {}
        for p, values in answers.items():
            try:
                requests[p] = runs[p].send(values)
            except StopIteration as done:
                results[p] = done.value
    return results


def _greedy(n_blocks: int, *, epsilon: float = 0.005, max_blocks: int | None = None,
            direction: Literal["forward", "backward", "best"] = "forward",
            stop: Literal["gain", "drop"] = "gain") -> Generator[list[frozenset[int]], list[float], dict]:
    """The selection rule as a generator: yields the block sets it needs scored, receives
    their scores, returns the result. The starting set is scored with the first round."""
    if direction == "best":
        forward = yield from _greedy(n_blocks, epsilon=epsilon, max_blocks=max_blocks, stop=stop)
        backward = yield from _greedy(n_blocks, epsilon=epsilon, max_blocks=max_blocks, direction="backward",
                                      stop=stop)
        best = forward if forward["score"] >= backward["score"] else backward
        return {**best, "calls": forward["calls"] + backward["calls"],
                "history": forward["history"] + backward["history"]}
    calls = 0
    limit = n_blocks if max_blocks is None else max_blocks
    if direction == "forward":
        chosen: frozenset[int] = frozenset()
        current, history = None, []
        while True:
            open_round = len(chosen) < min(limit, n_blocks)
            if current is not None and not open_round:
                break
            candidates = [chosen | {b} for b in range(n_blocks) if b not in chosen] if open_round else []
            values = yield ([chosen] if current is None else []) + candidates
            calls += len(values)
            if current is None:
                current, values = values[0], values[1:]
                history.append((tuple(), current))
            if not open_round:
                break
            scored = {min(c - chosen): v for c, v in zip(candidates, values)}
            block, value = max(scored.items(), key=lambda item: (item[1], -item[0]))
            gain = value - current
            if (stop == "gain" and gain < epsilon) or (stop == "drop" and gain < 0):
                break
            chosen, current = chosen | {block}, value
            history.append((tuple(sorted(chosen)), current))
        return {"blocks": tuple(sorted(chosen)), "score": current, "history": history, "calls": calls}
    chosen = frozenset(range(n_blocks))
    current, history = None, []
    while True:
        if current is not None and not chosen:
            break
        candidates = [chosen - {b} for b in sorted(chosen)]
        values = yield ([chosen] if current is None else []) + candidates
        calls += len(values)
        if current is None:
            current, values = values[0], values[1:]
            history.append((tuple(sorted(chosen)), current))
        if not chosen:
            break
        scored = {b: v for b, v in zip(sorted(chosen), values)}
        block, value = max(scored.items(), key=lambda item: (item[1], item[0]))
        loss = current - value
        if (stop == "gain" and loss > epsilon) or (stop == "drop" and loss > 0):
            break
        chosen, current = chosen - {block}, value
        history.append((tuple(sorted(chosen)), current))
    return {"blocks": tuple(sorted(chosen)), "score": current, "history": history, "calls": calls}
