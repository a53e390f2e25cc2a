"""The figures of pareto-frontiers, drawn from a stored run with the figure kit."""

from __future__ import annotations

import numpy as np

from learnlab.experiments.pareto_frontiers.evidence import (frontier_table, grokking_traces, is_grokking,
                                                            lottery_neurons, point, tabular_table)
from learnlab.experiments.pareto_frontiers import schema as M
from learnlab.experiments.pareto_frontiers.config import frontier_grid
from learnlab.figures import Figure, mean_with_interval, new_figure, phase_diagram
from learnlab.results import StoredRun
from learnlab.tasks.sparse_parity import sq_frontier_samples

__all__ = ["figures"]


def figures(run: StoredRun) -> dict[str, Figure]:
    cfg, out = run.config, {}
    if "frontier" in cfg.parts:
        out.update(_frontier_figures(run))
    table = tabular_table(run) if "tabular" in cfg.parts else {}
    if table:
        fractions = cfg.tabular.fractions
        fig, axes = new_figure(len(table), width=4.2)
        for ax, (name, models) in zip(axes, table.items()):
            for label, accuracy in models.items():
                mean_with_interval(ax, fractions, list(accuracy), label=label)
            ax.set(xscale="log", xlabel="fraction of training data", ylabel="test accuracy", title=name)
            ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
            ax.minorticks_off()
        axes[0].legend(fontsize=6)
        out["tabular"] = Figure("Test accuracy against the fraction of training data on each tabular set, forests "
                                f"and MLP variants, mean over {cfg.tabular.n_trials} splits (bars: 95% bootstrap "
                                "interval).", fig)
    return out


def _frontier_figures(run: StoredRun) -> dict[str, Figure]:
    cfg, points, out = run.config, frontier_table(run), {}
    widths, sizes = sorted(cfg.widths), sorted(cfg.sample_sizes)
    n, k = cfg.task.n_bits, cfg.task.k

    # Success against m at each width: the sample-wise picture, with Wilson intervals.
    fig, axes = new_figure(len(widths), width=3.8)
    for ax, width in zip(axes, widths):
        for init, style in (("dense", "--"), ("sparse", "-")):
            row = [point(points, width, init, m) for m in sizes]
            if all(row):
                probability = np.array([p.probability for p in row])
                ax.errorbar(sizes, probability, yerr=[probability - [p.low for p in row],
                                                      [p.high for p in row] - probability],
                            ls=style, marker="o", capsize=3, label=init)
        lottery = lottery_neurons(width, n, k, cfg.sparsity)
        ax.set(xscale="log", xlabel="training samples m", ylabel="success probability", ylim=(-0.02, 1.02),
               title=f"r = {width} ({lottery:.2f} lottery neurons expected)")
        ax.set_xticks(sizes, [str(m) for m in sizes], rotation=45)
        ax.minorticks_off()
        ax.legend(fontsize=7)
    out["success_vs_samples"] = Figure(
        f"Success probability (test error <= {cfg.task.target_error}) against training samples m on the ({n}, {k}) "
        f"parity, one panel per width, dense and sparse init, over {cfg.n_trials} runs (bars: Wilson 95% interval).",
        fig)

    fig, axes = new_figure(len(cfg.inits), width=4.6)
    for ax, init in zip(axes, cfg.inits):
        grid = np.array([[point(points, w, init, m).probability for m in sizes] for w in widths])
        image = phase_diagram(ax, grid, x_labels=sizes, y_labels=widths, xlabel="samples m", ylabel="width r",
                              vmin=0, vmax=1, cmap="magma", title=f"{init} init")
    fig.colorbar(image, ax=axes, label="success probability")
    out["frontier_heatmap"] = Figure(f"Success probability over {cfg.n_trials} runs at each width and sample size, "
                                     "dense and sparse init.", fig)

    # The SQ bound's width below which success 1/2 is impossible after T steps, against the
    # fewest samples at which each width succeeds at least half the time.
    steps = cfg.train.max_steps
    fig, (ax,) = new_figure(1, width=5.8, height=4)
    m_axis = np.geomspace(min(sizes) / 4, max(sizes) * 4, 50)
    ax.plot(m_axis, [0.5 * sq_frontier_samples(n_bits=n, k=k, steps=steps, n_params=n + 2, success=1.0) / m
                     for m in m_axis], "k--", label=f"SQ bound, T={steps}")
    for init, marker in (("dense", "s"), ("sparse", "o")):
        frontier = [(next((m for m in sizes if point(points, w, init, m).probability >= 0.5), np.nan), w)
                    for w in widths]
        ax.plot(*zip(*frontier), marker=marker, label=f"first m with success >= 1/2 ({init})")
    ax.set(xscale="log", yscale="log", xlabel="samples m", ylabel="width r")
    ax.legend(fontsize=7)
    out["resource_bound"] = Figure("The resource frontier in the (m, r) plane: the statistical-query bound on the width "
                                   "needed for success 1/2 within T steps (dashed) against the measured frontier.", fig)

    fig, (ax,) = new_figure(1, width=5.8)
    for width in widths:
        for init, style in (("dense", "--"), ("sparse", "-")):
            row = [(m, p.steps) for m in sizes if (p := point(points, width, init, m)) and len(p.steps) > 0]
            if row:
                xs, samples = zip(*row)
                mean_with_interval(ax, xs, samples, label=f"r={width} {init}", marker="o" if init == "sparse" else "s")
    ax.set(xscale="log", yscale="log", xlabel="training samples m", ylabel="steps to success (successful runs)")
    ax.legend(fontsize=6, ncol=2)
    out["steps_to_success"] = Figure("Steps to success against training samples, mean over the successful runs "
                                     "(bars: 95% bootstrap interval), per width and init.", fig)

    grid = frontier_grid(cfg)
    for width in widths:
        example = next((s for s, trace in grokking_traces(run, width).items() if is_grokking(*trace)), None)
        if example is not None:
            train = run.values(M.frontier_metric(width, M.TRAIN_ACC))[:, example]
            test = run.values(M.frontier_metric(width, M.TEST_ERROR))[:, example]
            fig, (ax,) = new_figure(1, width=5.8)
            ax.plot(run.steps(M.frontier_metric(width, M.TRAIN_ACC)), train, label="train accuracy")
            ax.plot(run.steps(M.frontier_metric(width, M.TEST_ERROR)), 1 - test, label="test accuracy")
            init, m, trial = grid[example]
            ax.set(xlabel="step", ylabel="accuracy")
            ax.legend(fontsize=8)
            out["grokking"] = Figure(f"Train and test accuracy against steps of one run that generalises long after "
                                     f"fitting its training set (width {width}, {init} init, m = {m}, trial {trial}).",
                                     fig)
            break
    return out
