"""Reading training curves: the checks that claims are made of (numpy, no models)."""

from __future__ import annotations

import numpy as np

__all__ = ["binomial_interval", "first_step", "loglog_slope", "phase_transition", "rank_correlation"]


def first_step(steps: np.ndarray, condition: np.ndarray) -> float:
    """The first step where ``condition`` holds, or NaN if it never does."""
    hits = np.flatnonzero(condition)
    return float(steps[hits[0]]) if len(hits) else float("nan")


def phase_transition(steps: np.ndarray, loss: np.ndarray, *, plateau_fraction: float = 0.9,
                     near_zero_fraction: float = 0.1) -> tuple[float, float]:
    """Where a loss curve leaves its plateau and where it reaches near zero.

    The plateau is where the loss stays at or above ``plateau_fraction`` of its initial
    value; the plateau ends at the last such step before the loss first reaches
    ``near_zero_fraction`` of the initial value.

    Returns ``(plateau_end, near_zero_step)``; NaN for a curve that never gets near zero.
    """
    loss = np.asarray(loss, dtype=np.float64)
    initial = loss[0]
    reached = np.flatnonzero(loss <= near_zero_fraction * initial)
    if not len(reached):
        return float("nan"), float("nan")
    zero_index = reached[0]
    on_plateau = np.flatnonzero(loss[:zero_index] >= plateau_fraction * initial)
    plateau_end = steps[on_plateau[-1]] if len(on_plateau) else steps[0]
    return float(plateau_end), float(steps[zero_index])


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order; fine for steady trends)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return float("nan")
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def loglog_slope(steps: np.ndarray, values: np.ndarray) -> float:
    """The least-squares slope of log(values) against log(steps) (positive entries only):
    1 for linear growth, 1/2 for a random walk's sqrt(t)."""
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = (steps > 0) & (values > 0) & np.isfinite(values)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(steps[keep]), np.log(values[keep]), 1)[0])


def binomial_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a success probability (scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    if trials == 0:
        return float("nan"), float("nan")
    interval = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)
