"""The figures of hidden-progress, drawn from a stored run with the figure kit."""

from __future__ import annotations

import numpy as np

from learnlab.experiments.hidden_progress import schema as M
from learnlab.experiments.hidden_progress.config import scaling_learners
from learnlab.experiments.hidden_progress.evidence import REFERENCE_T_C, convergence_steps, median_t_c, scaling_table
from learnlab.figures import Figure, curves_over_seeds, new_figure, paper_points
from learnlab.results import StoredRun

__all__ = ["figures"]


def figures(run: StoredRun) -> dict[str, Figure]:
    if run.config.scaling_n:
        return _scaling_figures(run)
    cfg, out = run.config, {}
    n, k, seeds = cfg.task.n_bits, cfg.task.k, cfg.n_seeds
    t_c = convergence_steps(run)

    fig, (ax_loss, ax_acc) = new_figure(2)
    curves_over_seeds(ax_loss, run.steps(M.TRAIN_LOSS), run.values(M.TRAIN_LOSS), label="true labels")
    curves_over_seeds(ax_acc, run.steps(M.VAL_ACC), run.values(M.VAL_ACC))
    if np.isfinite(median_t_c(t_c)):
        ax_acc.axvline(median_t_c(t_c), color="black", ls=":", lw=1, label="median $t_c$")
        ax_acc.legend(fontsize=8)
    ax_loss.set(xscale="log", xlabel="step", ylabel=f"training loss ({cfg.train.loss})", title=f"({n}, {k})-parity")
    ax_acc.set(xscale="log", xlabel="step", ylabel="validation accuracy", ylim=(0.4, 1.02))
    out["loss_and_accuracy"] = Figure(
        f"Training loss and validation accuracy against steps on the ({n}, {k}) sparse parity, median over {seeds} "
        "seeds (band: range); the dotted line is the median convergence time t_c.", fig)

    if run.has(M.TOP_NEURONS_SEPARATED):
        fig, (ax, ax_growth) = new_figure(2, width=5.5)
        curves_over_seeds(ax, run.steps(M.TOP_NEURONS_SEPARATED), run.values(M.TOP_NEURONS_SEPARATED),
                          label=f"top {cfg.top_neurons:.0%} neurons separated")
        curves_over_seeds(ax, run.steps(M.NEURONS_SEPARATED), run.values(M.NEURONS_SEPARATED), label="all neurons separated")
        curves_over_seeds(ax, run.steps(M.VAL_ACC), 2 * run.values(M.VAL_ACC) - 1, label="accuracy above chance (2 acc - 1)")
        ax.set(xscale="log", xlabel="step", ylabel="fraction", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
        if run.has(M.TOP_NEURONS_SUPPORT_GROWTH):
            curves_over_seeds(ax_growth, run.steps(M.TOP_NEURONS_SUPPORT_GROWTH), run.values(M.TOP_NEURONS_SUPPORT_GROWTH),
                              label=f"top {cfg.top_neurons:.0%} neurons")
            ax_growth.axhline(0.0, color="black", lw=0.8)
        ax_growth.set(xscale="log", xlabel="step", ylabel="log(support share / its value at W_0)")
        ax_growth.legend(fontsize=7)
        out["support_separation"] = Figure(
            "Left: fraction of neurons whose mean |w| on the support exceeds their largest |w| off it (the neurons "
            "with the largest final readout, and all neurons) against steps, beside the accuracy above chance. Right: "
            "growth of those neurons' support share (mean |w| on S over mean |w| off S) from initialisation, the "
            f"hidden progress under the flat loss. Median over {seeds} seeds (band: range).", fig)

    if run.has(M.WEIGHT_MOVEMENT):
        fig, (ax,) = new_figure(1, width=5.5)
        curves_over_seeds(ax, run.steps(M.WEIGHT_MOVEMENT), run.values(M.WEIGHT_MOVEMENT), label="true labels")
        control = M.scoped(M.RANDOM_LABELS, M.WEIGHT_MOVEMENT)
        if run.has(control):
            curves_over_seeds(ax, run.steps(control), run.values(control), label="random labels")
        ax.set(xscale="log", yscale="log", xlabel="step", ylabel=r"$\rho_t = \max|W_t - W_0|$")
        ax.legend(fontsize=8)
        out["weight_movement"] = Figure(
            "Weight movement rho_t = max|W_t - W_0| against steps on log-log axes, true labels against the "
            f"random-label control, median over {seeds} seeds (band: range): drift grows like t, a random walk like "
            "sqrt t.", fig)

    if cfg.widths or cfg.lrs:
        widths, lrs = run.values(M.REPLICA_WIDTH)[0], run.values(M.REPLICA_LR)[0]
        fig, (ax,) = new_figure(1, width=5.5)
        for lr in sorted(set(lrs)):
            points = sorted(set(widths[lrs == lr]))
            ax.plot(points, [median_t_c(t_c[(widths == w) & (lrs == lr)]) for w in points], "o-", label=f"lr {lr:g}")
        ax.set(xscale="log", yscale="log", xlabel="width r", ylabel="median $t_c$")
        ax.set_xticks(sorted(set(widths)), [f"{w:g}" for w in sorted(set(widths))])
        ax.minorticks_off()
        ax.legend(fontsize=8)
        out["width_grid"] = Figure("Median convergence time against MLP width, one line per learning rate.", fig)

    if run.has(M.scoped(M.INIT_ONLY, M.VAL_ACC)):
        fig, (ax,) = new_figure(1, width=5.5)
        for scope, label in ((M.INIT_ONLY, "inits varied (data fixed)"), (M.DATA_ONLY, "data varied (init fixed)")):
            values = convergence_steps(run, scope)
            ax.hist(values[np.isfinite(values)], bins=15, alpha=0.5, label=label)
        ax.set(xlabel="$t_c$", ylabel="seeds")
        ax.legend(fontsize=8)
        out["luck_vs_noise"] = Figure("Histogram of convergence times when only the initialisation varies and when "
                                      "only the data stream varies.", fig)

    if run.has(M.FOURIER_GAP):
        fig, (ax,) = new_figure(1, width=5.5)
        curves_over_seeds(ax, run.steps(M.FOURIER_GAP), run.values(M.FOURIER_GAP))
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set(xscale="symlog", xlabel="step", ylabel="Fourier gap (mean over neurons)")
        out["fourier_gap"] = Figure("Exact Fourier gap of the population gradient (mean over neurons) against steps, "
                                    f"median over {seeds} seeds (band: range).", fig)
    return out


def _scaling_figures(run: StoredRun) -> dict[str, Figure]:
    cfg, lrs = run.config, dict(scaling_learners(run.config))
    fig, (ax,) = new_figure(1, width=5.8, height=4)
    for (learner, k), (ns, per_n) in scaling_table(run).items():
        ax.plot(ns, [median_t_c(t) for t in per_n], "o-", label=f"{learner}, k={k}")
    reference = [(n, t) for (learner, lr, n, k), t in REFERENCE_T_C.items()
                 if learner in lrs and lrs[learner] == lr and n in cfg.scaling_n and k in cfg.scaling_k]
    if reference:
        paper_points(ax, *zip(*reference), label="reference runs (batch 32, hinge)")
    ax.set(xscale="log", yscale="log", xlabel="n", ylabel="median $t_c$ (steps)")
    ax.set_xticks(list(cfg.scaling_n), [str(n) for n in cfg.scaling_n])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    out = {"scaling": Figure(f"Median convergence time over {cfg.n_seeds} seeds against n on log-log axes, one line "
                             "per learner and k; stars: median t_c of reference runs.", fig)}
    n, k = max(cfg.scaling_n), min(cfg.scaling_k)
    fig, (ax,) = new_figure(1, width=5.5)
    for learner in lrs:
        name = M.scoped(M.sweep_scope(learner, n, k), M.TRAIN_LOSS)
        if run.has(name):
            curves_over_seeds(ax, run.steps(name), run.values(name), label=learner)
    ax.set(xscale="log", xlabel="step", ylabel="training loss")
    ax.legend(fontsize=8)
    out["loss_per_learner"] = Figure(f"Training loss against steps on the ({n}, {k}) parity, one curve per learner, "
                                     f"median over {cfg.n_seeds} seeds (band: range).", fig)
    return out
