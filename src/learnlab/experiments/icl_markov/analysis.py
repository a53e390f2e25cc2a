"""Phases read off stored curves: the nearest strategy at every evaluation (the paper's
Figure 1 shades by the minimum of the KL curves), transition steps, plateau lengths."""

from __future__ import annotations

import numpy as np

from learnlab.experiments.icl_markov import metrics as M

# The paper's strategy KLs, KL(true || strategy) at the last position, length 100 (k -> level);
# probes.markov reproduces them within 0.005 (tests/tasks/test_markov.py).
PAPER_LEVELS = {2: {"uniform": 0.213, "unigram": 0.087, "bigram": 0.0092},
                3: {"uniform": 0.282, "unigram": 0.170, "bigram": 0.026},
                4: {"uniform": 0.311, "unigram": 0.228, "bigram": 0.049}}
PAPER_STEPS = 2000  # the paper's training run (Figure 1)


def curves(run, name: str, scope: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Steps (T,) and values (T, S) of a per-seed metric."""
    full = M.scoped(scope, name)
    values = np.asarray(run.values(full), dtype=np.float64)
    return run.steps(full), values if values.ndim == 2 else values[:, None]


def nearest_strategy(run, scope: str = "") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Steps (T,), the index of the strategy closest in KL(strategy || model) (T, S), names."""
    names = [n for n in M.STRATEGY_NAMES if run.has(M.scoped(scope, M.kl_to(n)))]
    stacked = np.stack([curves(run, M.kl_to(n), scope)[1] for n in names])  # (strategies, T, S)
    return curves(run, M.KL, scope)[0], stacked.argmin(axis=0), names


def settle_steps(steps: np.ndarray, nearest: np.ndarray, target: int) -> np.ndarray:
    """Per seed: the first evaluation from which ``nearest`` stays ``target``; NaN if never."""
    out = []
    for s in range(nearest.shape[1]):
        settled = np.flatnonzero(np.cumprod(nearest[::-1, s] == target)[::-1] == 1)
        out.append(float(steps[settled[0]]) if len(settled) else np.nan)
    return np.array(out)


def transition_steps(run, scope: str = "") -> np.ndarray:
    """Per seed: the step from which the model stays closest to the highest-order strategy
    (bigram for Markov chains); NaN if it never settles there."""
    steps, nearest, names = nearest_strategy(run, scope)
    return settle_steps(steps, nearest, len(names) - 1)


def longest_run(steps: np.ndarray, inside: np.ndarray) -> float:
    """Longest stretch of steps over consecutive evaluations where ``inside`` holds."""
    best, start = 0.0, None
    for i, flag in enumerate(inside):
        if flag and start is None:
            start = i
        if start is not None and (not flag or i == len(inside) - 1):
            end = i if flag else i - 1
            best = max(best, float(steps[end] - steps[start]))
            start = None
    return best


def phases(steps: np.ndarray, nearest: np.ndarray, kl: np.ndarray, names: list[str], bigram_level: float) -> dict:
    """Per seed (arrays of S): ``transition`` step (NaN if none), ``first_unigram`` (first
    step nearest to unigram; inf if never), ``plateau`` (longest stretch nearest to unigram
    before the transition), ``fall`` (steps from the last unigram evaluation to the first
    with KL <= ``bigram_level``; inf if it never gets there)."""
    unigram, bigram = names.index("unigram"), names.index("bigram")
    transition = settle_steps(steps, nearest, bigram)
    first, plateau, fall = [], [], []
    for s in range(nearest.shape[1]):
        before = steps < (transition[s] if np.isfinite(transition[s]) else np.inf)
        on_unigram = (nearest[:, s] == unigram) & before
        hits = np.flatnonzero(on_unigram)
        first.append(float(steps[hits[0]]) if len(hits) else np.inf)
        plateau.append(longest_run(steps, on_unigram))
        low = np.flatnonzero(kl[:, s] <= bigram_level)
        if not len(hits) or not len(low):
            fall.append(np.inf)
            continue
        reached = steps[low[0]]
        left = steps[hits][steps[hits] <= reached]
        fall.append(float(reached - left[-1]) if len(left) else np.inf)
    return {"transition": transition, "first_unigram": np.array(first), "plateau": np.array(plateau),
            "fall": np.array(fall)}


def describe(values: np.ndarray, fmt: str = ".0f") -> str:
    """``[1100, 1020, never]``."""
    return "[" + ", ".join("never" if not np.isfinite(v) else format(v, fmt) for v in values) + "]"
