"""icl-markov figures, drawn from the stored run with the figure kit."""

from __future__ import annotations

import json

import numpy as np

from learnlab.experiments.icl_markov import analysis as A
from learnlab.experiments.icl_markov import metrics as M
from learnlab.figures import Figure, curves_over_seeds, new_figure, paper_line

COLORS = {"uniform": "#999999", "unigram": "#1f77b4", "bigram": "#d62728", "trigram": "#2ca02c"}
CONTROL_COLORS = {"one_layer": "#ff7f0e", "minimal": "#9467bd", "doubly_stochastic": "#8c564b",
                  "unigram_mix": "#17becf"}


def figures(run) -> dict[str, Figure]:
    cfg = run.config
    out = {"strategies": _strategies(run), "test_kl": _test_kl(run), "transitions": _transitions(run)}
    attention = _attention(run)
    if attention is not None:
        out["attention"] = attention
    if run.has(M.l1_relative(0)):
        fig, (ax,) = new_figure(width=5.6)
        steps = run.steps(M.l1_relative(0))
        for m in range(M.RELATIVE_OFFSETS):
            curves_over_seeds(ax, steps, A.curves(run, M.l1_relative(m))[1], label=f"offset {m}", band="iqr")
        ax.set(xlabel="step", ylabel="q . r_m / sqrt(d_head), layer 1")
        ax.legend(fontsize=7)
        out["relative_positions"] = Figure("Layer 1's relative-position score at offsets 0 to 5 against steps, "
                                           f"median over {cfg.n_seeds} seeds (band: quartiles).", fig)
    if run.has(M.scoped("minimal", M.MINIMAL_W_DIAGONAL)):
        out["minimal_model"] = _minimal(run)
    return out


def _strategies(run) -> Figure:
    """The paper's Figure 1: KL from each strategy to the model (seed 0), shaded by the nearest."""
    cfg = run.config
    steps, nearest, names = A.nearest_strategy(run)
    fig, (ax,) = new_figure(width=7.0, height=3.8)
    seen = steps * cfg.train.batch_size
    # one span a run of evaluations with the same nearest strategy (not one an interval: 200 patches in
    # the paper preset took half of this figure's drawing time)
    starts = [0] + [i for i in range(1, len(steps) - 1) if nearest[i, 0] != nearest[i - 1, 0]]
    for first, end in zip(starts, starts[1:] + [len(steps) - 1]) if len(steps) > 1 else ():
        ax.axvspan(seen[first], seen[end], color=COLORS[names[nearest[first, 0]]], alpha=0.12, lw=0)
    for name in names:
        ax.plot(seen, A.curves(run, M.kl_to(name))[1][:, 0], color=COLORS[name], label=f"KL({name} || model)")
    ax.plot(seen, A.curves(run, M.KL)[1][:, 0], color="black", lw=1.5, label="KL(true || model)")
    ax.set(xlabel="sequences seen", ylabel="KL, last position", yscale="log")
    ax.legend(fontsize=7)
    return Figure(f"KL from each in-context strategy to the model against sequences seen (k = {cfg.task.k}, "
                  f"n = {cfg.task.n}, seed 0); the background is shaded by the nearest strategy, as the paper's "
                  "Figure 1.", fig)


def _test_kl(run) -> Figure:
    cfg = run.config
    steps, names = run.steps(M.KL), [n for n in M.STRATEGY_NAMES if run.has(M.level(n))]
    fig, (ax,) = new_figure(width=7.0, height=3.8)
    curves_over_seeds(ax, steps, A.curves(run, M.KL)[1], label=f"2-layer transformer ({cfg.n_seeds} seeds)",
                      color="black")
    for name in names:
        ax.axhline(float(run.last(M.level(name))), color=COLORS[name], ls="--", lw=1, label=f"{name} strategy")
    paper = A.PAPER_LEVELS.get(cfg.task.k) if cfg.task.n == 2 and cfg.task.length == 100 else None
    for i, value in enumerate((paper or {}).values()):
        paper_line(ax, value, label="paper strategy KLs" if i == 0 else None, linestyle=":")
    for scope, color in CONTROL_COLORS.items():
        if run.has(M.scoped(scope, M.KL)):
            control_steps, values = A.curves(run, M.KL, scope)
            curves_over_seeds(ax, control_steps, values, label=scope.replace("_", " "), color=color)
    if run.has(M.COUNT_ONLY_FLOOR):
        ax.axhline(float(run.last(M.COUNT_ONLY_FLOOR)), color=CONTROL_COLORS["one_layer"], ls="-.", lw=1,
                   label="count-only floor (Monte Carlo)")
    ax.set(xlabel="step", ylabel="KL(true || model), last position", yscale="log")
    ax.legend(fontsize=6, ncol=2)
    return Figure("Test KL from the true next-token law to the model against steps, median over seeds (band: "
                  "range), with each strategy's KL on our test set (dashed), the paper's strategy KLs (dotted "
                  "black) and the controls.", fig)


def _transitions(run) -> Figure:
    cfg = run.config
    transitions = A.transition_steps(run)
    cap = cfg.train.max_steps
    fig, (ax,) = new_figure(width=5.6, height=3.0)
    settled = np.sort(transitions[np.isfinite(transitions)])
    ax.plot(settled, np.arange(1, len(settled) + 1) / len(transitions), "o-", drawstyle="steps-post",
            label=f"{len(settled)} of {len(transitions)} seeds settled")
    if cfg.task.n == 2 and cap >= A.PAPER_STEPS:
        paper_line(ax, A.PAPER_STEPS, orientation="vertical", label="paper's training run (2,000 steps)")
    ax.set(xlabel="transition step (settled at the highest-order strategy)", ylabel="fraction of seeds",
           xlim=(0, cap), ylim=(0, 1.02))
    ax.legend(fontsize=7)
    return Figure(f"Distribution of transition steps over {len(transitions)} seeds: the fraction of seeds settled at "
                  f"the {'bigram' if cfg.task.n == 2 else 'highest-order'} strategy by each step (seeds that never "
                  f"settle within {cap:,} steps are left out of the curve).", fig)


def _attention(run) -> Figure | None:
    path = run.artifact_path(M.ATTENTION_SNAPSHOTS)
    transitions = A.transition_steps(run)
    if path is None or not path.exists() or not np.isfinite(transitions[0]):
        return None
    snapshots = json.loads(path.read_text())
    snap_steps = np.array(snapshots["steps"])
    fig, axes = new_figure(2, 2, width=4.0, height=3.3)
    for row, index in enumerate((int(np.searchsorted(snap_steps, transitions[0] / 2)), len(snap_steps) - 1)):
        layer1 = np.array(snapshots["layer1"][index])[0]  # seed 0, (40, 40)
        layer2 = np.array(snapshots["layer2"][index])[0]  # seed 0, (T,)
        axes[2 * row].imshow(layer1, cmap="viridis", vmin=0, vmax=1)
        axes[2 * row].set(title=f"layer 1, step {snap_steps[index]}", xlabel="key", ylabel="query")
        # one filled step patch, not a bar a key (200 patches took half of this figure's drawing)
        axes[2 * row + 1].stairs(layer2, np.arange(len(layer2) + 1) - 0.5, fill=True, color=COLORS["bigram"])
        axes[2 * row + 1].set(title=f"layer 2, last query, step {snap_steps[index]}", xlabel="key position",
                              ylabel="attention")
    return Figure("Attention of seed 0 on its first test sequence on the plateau (top) and at the end (bottom): "
                  "layer 1 over the first 40 positions, layer 2 from the last query, as the paper's Figure 2.", fig)


def _minimal(run) -> Figure:
    steps, _ = A.curves(run, M.MINIMAL_W_DIAGONAL, "minimal")
    fig, (ax_v, ax_w) = new_figure(2, width=4.6)
    for m in range(M.RELATIVE_OFFSETS):
        curves_over_seeds(ax_v, steps, A.curves(run, M.minimal_v(m), "minimal")[1], label=f"v_{m}", band="iqr")
    ax_v.set(xlabel="step", ylabel="v (positional weights)")
    ax_v.legend(fontsize=7)
    for metric, label in ((M.MINIMAL_W_DIAGONAL, "diagonal"), (M.MINIMAL_W_OFF_DIAGONAL, "off-diagonal")):
        curves_over_seeds(ax_w, steps, A.curves(run, metric, "minimal")[1], label=label, band="iqr")
    ax_w.set(xlabel="step", ylabel="W, mean entry")
    ax_w.legend(fontsize=7)
    n = A.curves(run, M.MINIMAL_W_DIAGONAL, "minimal")[1].shape[1]
    return Figure(f"Minimal model of Section 5: positional weights v (left) and W's diagonal and off-diagonal "
                  f"(right) against steps, median over {n} seeds (band: quartiles).", fig)
