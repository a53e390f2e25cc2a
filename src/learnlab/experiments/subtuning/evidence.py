"""SubTuning's claims (declared from the config) and figures (drawn from the stored run)."""

from __future__ import annotations

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.subtuning import schema as m
from learnlab.figures import Figure, mean_with_interval, new_figure, phase_diagram
from learnlab.results import StoredRun

__all__ = ["claims", "figures"]

PAPER = "Kaplun et al. 2023 (arXiv 2302.06354)"


def _targets(cfg) -> list[str]:
    return ["data"] if cfg.arch != "resnet1d" else list(cfg.targets)


def _greedy_targets(cfg) -> list[str]:
    return ["data"] if cfg.arch != "resnet1d" else [t for t in cfg.targets if t in cfg.greedy_targets]


def _at_size(run: StoredRun, name: str, size: int) -> np.ndarray:
    """The (S,) values of ``name`` logged at exactly ``size`` examples per class."""
    rows = np.flatnonzero(run.steps(name) == size)
    if not len(rows):
        raise NotMeasured(f"'{name}' was not measured at {size} examples per class")
    return np.atleast_1d(np.asarray(run.values(name)[rows[-1]], dtype=np.float64))


def _profile(run: StoredRun, scope: str, size: int, block_name=m.profile_block) -> np.ndarray:
    """(S, L): test accuracy of finetuning each single block, per seed."""
    blocks = len(run.names(m.scoped(scope, block_name(0))[:-1]))
    if not blocks:
        raise NotMeasured(f"no finetuning profile under '{scope}'")
    return np.stack([_at_size(run, m.scoped(scope, block_name(b)), size) for b in range(blocks)], axis=1)


# ----------------------------------------------------------------------------- claims


def _later_blocks(scope: str, size: int, block_name=m.profile_block, what: str = "") -> Reproduction:
    def measure(run: StoredRun) -> Measurement:
        profile = _profile(run, scope, size, block_name)
        half = profile.shape[1] // 2
        gap = profile[:, half:].mean(axis=1) - profile[:, :half].mean(axis=1)
        means = profile.mean(axis=0)
        return Measurement(gap, f"{scope} at {size} per class: block accuracies "
                                + ", ".join(f"{v:.3f}" for v in means) + f" (best: block {int(means.argmax())})")

    return Reproduction(
        f"later-blocks-matter-more{'-' + scope if scope != 'new_classes' else ''}",
        f"Finetuning one later block (with a new head) beats finetuning one earlier block{what}: the mean "
        "accuracy of the later half of the blocks exceeds the earlier half's.",
        source=f"{PAPER}, Sec. 3, Fig. 2 (finetuning profiles)", statistic="later-half minus earlier-half mean "
        "single-block accuracy, per paired seed", threshold=0.0, side=">=",
        threshold_source="paper Sec. 3: later blocks matter more (any positive gap; 0 = no preference)",
        unit="seeds", measure=measure)


def _paired(scope: str, size: int, better: str, worse: str) -> Reproduction:
    words = {m.GREEDY: "greedy SubTuning", m.FT: "full finetuning", m.LP: "linear probing"}

    def measure(run: StoredRun) -> Measurement:
        a, b = _at_size(run, m.scoped(scope, better), size), _at_size(run, m.scoped(scope, worse), size)
        return Measurement(a - b, f"{scope} at {size} per class: {words[better]} {a.mean():.3f}, "
                                  f"{words[worse]} {b.mean():.3f}")

    return Reproduction(
        f"low-data-{better}-vs-{worse}-{scope}",
        f"With few examples ({size} per class, {scope}), {words[better]} is at least as accurate as {words[worse]}.",
        source=f"{PAPER}, Sec. 4 (low-data regime)", statistic=f"{words[better]} minus {words[worse]} test accuracy, "
        "per paired seed", threshold=0.0, side=">=",
        threshold_source="paper Sec. 4: SubTuning outperforms both finetuning and linear probing when data is "
        "scarce (0 = equal)", unit="seeds", measure=measure)


def _more_blocks(scope: str, small: int, large: int) -> Reproduction:
    def measure(run: StoredRun) -> Measurement:
        few = _at_size(run, m.scoped(scope, m.GREEDY_BLOCKS), small)
        many = _at_size(run, m.scoped(scope, m.GREEDY_BLOCKS), large)
        return Measurement(many - few, f"{scope}: blocks chosen per seed {few.astype(int).tolist()} "
                                       f"at {small} per class, {many.astype(int).tolist()} at {large}")

    return Reproduction(
        f"more-blocks-with-more-data-{scope}",
        f"Greedy SubTuning chooses more blocks with more data ({large} vs {small} examples per class, {scope}).",
        source=f"{PAPER}, Sec. 4 (greedy selection as the training set grows)",
        statistic="blocks chosen at the larger size minus at the smaller, per paired seed (mean)",
        threshold=0.0, side=">", threshold_source="paper Sec. 4: more blocks are worth tuning as data grows "
        "(0 = no change; strict, so seeds that all choose the same count do not count as more)", unit="seeds",
        measure=measure)


def claims(cfg) -> list:
    out: list = []
    if cfg.minilm and cfg.minilm_sizes:
        out.append(_later_blocks(m.MINILM, cfg.minilm_sizes[0], m.minilm_block, " (MiniLM-L6, a text task)"))
    targets = _targets(cfg)
    if "new_classes" in targets or "data" in targets:
        out.append(_later_blocks("data" if "data" in targets else "new_classes", cfg.profile_size))
    greedy = sorted(cfg.greedy_sizes)
    for scope in _greedy_targets(cfg):
        if greedy:
            out += [_paired(scope, greedy[0], m.GREEDY, m.FT), _paired(scope, greedy[0], m.GREEDY, m.LP)]
        if len(greedy) > 1:
            out.append(_more_blocks(scope, greedy[0], greedy[-1]))
    if greedy and _greedy_targets(cfg):
        def capped(run: StoredRun) -> Measurement:
            scopes = _greedy_targets(cfg)
            values = np.concatenate([run.values(m.scoped(t, m.GREEDY_CAPPED)).ravel() for t in scopes])
            most = max(int(np.max(run.values(m.scoped(t, m.GREEDY_BLOCKS)))) for t in scopes)
            return Measurement(values, f"greedy reached its limit of min(cap {cfg.greedy_max_blocks}, all blocks) "
                                       f"in {int(values.sum())} of {len(values)} selections; most blocks chosen: {most}")

        out.append(Sanity("greedy-cap-did-not-bind", "Greedy stopped because no block added epsilon = "
                          f"{cfg.epsilon:g} of cross-validated accuracy, never at its limit (the cap of "
                          f"{cfg.greedy_max_blocks}, or every block).",
                          "greedy selections that stopped at the cap", 0.0, "<=", capped))
    if cfg.arch == "resnet1d" and cfg.targets:
        def equal(run: StoredRun) -> Measurement:
            value = run.last(m.scoped(m.MULTITASK, m.MAX_ABS_DIFFERENCE))
            return Measurement([value], f"max |merged - separate| = {value:.2e}")

        def cost(run: StoredRun) -> Measurement:
            value = run.last(m.scoped(m.MULTITASK, m.FLOPS_RATIO_TWO))
            parts = run.last(m.scoped(m.MULTITASK, m.FLOPS_RATIO_TWO_PARTS))
            # Relative excess over the parts' sum; infinite when sharing saves nothing.
            excess = abs(value - parts) / parts if value < 2 else float("inf")
            return Measurement([excess], f"two tasks on one trunk: {value:.3f}x one model's FLOPs; shared prefix "
                                         f"once + two branches: {parts:.3f}x (two models: 2x)")

        out += [Sanity("multitask-outputs-equal", "Serving tasks from one shared trunk gives exactly the separate "
                       "models' outputs.", "max absolute difference of the logits", 1e-5, "<=", equal),
                Sanity("multitask-flops", "Two tasks that tune only the last block cost exactly the shared prefix "
                       "once plus two branches (each counted alone), less than two models' 2x.",
                       "relative difference of the two FLOP counts (infinite at 2x or more)", 1e-9, "<=", cost)]
    return out


# ----------------------------------------------------------------------------- figures


def _panels(run: StoredRun, scopes: list[str], draw) -> Figure | None:
    drawn = []
    fig, axes = new_figure(len(scopes))
    for ax, scope in zip(axes, scopes):
        try:
            drawn.append(draw(ax, scope))
        except NotMeasured:
            ax.set_axis_off()
    return fig if any(drawn) else None


def figures(run: StoredRun) -> dict[str, Figure]:
    cfg, out = run.config, {}
    scopes = _targets(cfg) + ([m.MINILM] if cfg.minilm else [])
    if not scopes:
        return out
    greedy = sorted(cfg.greedy_sizes)

    def profile(ax, scope):
        minilm = scope == m.MINILM
        size = cfg.minilm_sizes[0] if minilm else cfg.profile_size
        values = _profile(run, scope, size, m.minilm_block if minilm else m.profile_block)
        mean_with_interval(ax, range(values.shape[1]), values.T, label="one block + new head")
        for name, style in ((m.LP, ":"), (m.FT, "--")):
            ax.axhline(_at_size(run, m.scoped(scope, name), size).mean(), ls=style, color="gray", label=name.upper())
        ax.set(xlabel="finetuned block (0 = nearest the input)", ylabel="test accuracy", title=f"{scope}, {size} per class")
        ax.legend(fontsize=7)
        return True

    def by_size(ax, scope):
        drew = False
        for name in (m.LP, m.FT, m.GREEDY):
            try:
                sizes = [int(s) for s in run.steps(m.scoped(scope, name)) if s > 0]
                values = [_at_size(run, m.scoped(scope, name), s) for s in sizes]
            except NotMeasured:
                continue
            mean_with_interval(ax, sizes, values, label={m.LP: "linear probing", m.FT: "full finetuning",
                                                         m.GREEDY: "greedy SubTuning"}[name])
            drew = True
        ax.set(xscale="log", xlabel="examples per class", ylabel="test accuracy", title=scope)
        ax.legend(fontsize=7)
        return drew

    def choices(ax, scope):
        blocks = int(run.last(m.scoped(scope, m.N_BLOCKS)))
        grid = np.stack([np.mean([_at_size(run, m.scoped(scope, m.greedy_choice(s)), size)
                                  for s in range(cfg.n_seeds)], axis=0) for size in greedy])
        image = phase_diagram(ax, grid, x_labels=list(range(blocks)), y_labels=greedy, xlabel="block",
                              ylabel="examples per class", vmin=0, vmax=1, title=f"{scope}: fraction of seeds")
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
        return True

    drawn = {"finetuning_profile": (_panels(run, scopes, profile),
                                    "Test accuracy of finetuning one block with a new head, per block, mean over "
                                    "paired seeds with 95% bootstrap intervals; dotted: linear probing, dashed: full "
                                    "finetuning."),
             "accuracy_vs_data": (_panels(run, _targets(cfg), by_size),
                                  "Test accuracy against examples per class for linear probing, full finetuning and "
                                  "greedy SubTuning, mean over paired seeds with 95% bootstrap intervals."),
             "greedy_choices": (_panels(run, _greedy_targets(cfg), choices) if greedy and _greedy_targets(cfg) else None,
                                "Which blocks greedy SubTuning chose: the fraction of paired seeds choosing each "
                                "block, at each training-set size.")}
    out.update({name: Figure(caption, fig) for name, (fig, caption) in drawn.items() if fig is not None})
    if run.has(m.scoped(m.MULTITASK, m.FLOPS_RATIO)):
        ratios = np.atleast_1d(run.last(m.scoped(m.MULTITASK, m.FLOPS_RATIO)))
        fig, (ax,) = new_figure()
        counts = np.arange(1, len(ratios) + 1)
        ax.plot(counts, ratios, "o-", label="one trunk, tasks branch at the last block")
        ax.plot(counts, counts, "k--", label="separate models")
        ax.set(xlabel="tasks", ylabel="FLOPs / one model", xticks=counts)
        ax.legend(fontsize=7)
        out["multitask_cost"] = Figure("Inference FLOPs of T tasks served from one shared trunk, relative to one "
                                       "model, against T separate models.", fig)
    return out
