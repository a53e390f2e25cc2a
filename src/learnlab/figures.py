"""The figure kit: the few plot shapes the experiments share, drawn the same way.

Experiments return ``{name: Figure(caption, fig)}`` from ``figures(run)``; the runner
draws them when a run completes (and ``learnlab show RUN --recheck`` redraws them) and
stores each as SVG and PNG artifacts, so the report shows a run without its code.

- :func:`curves_over_seeds`: a metric against steps, median over seeds with a band
- :func:`mean_with_interval`: a statistic against a size or length, mean with a 95%
  bootstrap interval over seeds
- :func:`phase_diagram`: a grid of cells (e.g. batch size x precision), annotated
- :func:`paper_points` / :func:`paper_line`: the paper's reported numbers, labelled
  "paper", drawn beside ours
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Figure", "new_figure", "curves_over_seeds", "mean_with_interval", "phase_diagram", "paper_points",
           "paper_line", "save_figure", "close"]

PAPER_STYLE = {"color": "black", "marker": "*", "markersize": 9, "linestyle": "none", "label": "paper"}


@dataclass
class Figure:
    """A drawn figure with its caption in words (shown under it in the report)."""

    caption: str
    figure: Any  # matplotlib.figure.Figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 4.6, height: float = 3.4):
    """``(fig, axes)`` with ``axes`` always a flat list; constrained layout keeps labels apart."""
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained")
    return fig, [ax for row in axes for ax in row]


def curves_over_seeds(ax, steps: np.ndarray, values: np.ndarray, *, label: str | None = None, color=None,
                      band: str = "range", alpha: float = 0.2) -> None:
    """Median over seeds of ``values`` (T,) or (T, S) against ``steps``, with the band
    between the lowest and highest seed (``band="range"``) or the quartiles (``"iqr"``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        (line,) = ax.plot(steps, values, label=label, color=color)
        return
    median = np.nanmedian(values, axis=1)
    (line,) = ax.plot(steps, median, label=label, color=color)
    if values.shape[1] > 1:
        low, high = ((np.nanmin(values, axis=1), np.nanmax(values, axis=1)) if band == "range"
                     else (np.nanpercentile(values, 25, axis=1), np.nanpercentile(values, 75, axis=1)))
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=alpha, linewidth=0)


def mean_with_interval(ax, xs: Sequence[float], samples: Sequence[Sequence[float]], *, label: str | None = None,
                       marker: str = "o", color=None) -> None:
    """Mean of each x's samples (one per seed) with its 95% bootstrap interval as error bars."""
    from learnlab.claims import bootstrap_interval

    means, lows, highs = [], [], []
    for values in samples:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        mean = float(values.mean()) if len(values) else np.nan
        low, high = bootstrap_interval(values, resamples=2000) if len(values) > 1 else (mean, mean)
        means.append(mean), lows.append(max(0.0, mean - low)), highs.append(max(0.0, high - mean))  # errorbar refuses -1e-16
    ax.errorbar(xs, means, yerr=[lows, highs], marker=marker, capsize=3, label=label, color=color)


def phase_diagram(ax, grid: np.ndarray, *, x_labels: Sequence, y_labels: Sequence, xlabel: str, ylabel: str,
                  vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis", annotate: bool = True,
                  title: str | None = None):
    """An annotated grid (rows = y, columns = x) on cell coordinates; returns the image."""
    grid = np.asarray(grid, dtype=np.float64)
    image = ax.imshow(grid, origin="lower", vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    if annotate and grid.size <= 64:
        middle = (np.nanmin(grid) + np.nanmax(grid)) / 2 if np.isfinite(grid).any() else 0
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, "-" if not np.isfinite(value) else f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if np.isfinite(value) and value < middle else "black")
    ax.set_xticks(range(len(x_labels)), [f"{v:g}" if isinstance(v, float) else str(v) for v in x_labels],
                  fontsize=7, rotation=45 if len(x_labels) > 5 else 0)
    ax.set_yticks(range(len(y_labels)), [f"{v:g}" if isinstance(v, float) else str(v) for v in y_labels], fontsize=7)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return image


def paper_points(ax, xs: Sequence[float], ys: Sequence[float], *, label: str = "paper", **style) -> None:
    """The paper's reported values as black stars, labelled ``paper``."""
    ax.plot(xs, ys, **{**PAPER_STYLE, "label": label, **style})


def paper_line(ax, y: float, *, label: str = "paper", orientation: str = "horizontal", **style) -> None:
    """A reported constant (a KL, an accuracy) as a dashed black line labelled ``paper``."""
    style = {"color": "black", "linestyle": "--", "linewidth": 1, "label": label, **style}
    (ax.axhline if orientation == "horizontal" else ax.axvline)(y, **style)


def save_figure(fig, directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``name.svg`` and ``name.png`` into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    svg, png = directory / f"{name}.svg", directory / f"{name}.png"
    fig.savefig(svg, bbox_inches="tight")
    fig.savefig(png, dpi=110, bbox_inches="tight")
    return svg, png


def close(fig) -> None:
    _pyplot().close(fig)
