"""The copying experiment's figures, drawn from the stored run with the figure kit."""

from __future__ import annotations

import numpy as np

from learnlab.experiments.copying import schema as M
from learnlab.experiments.copying.config import TRANSFORMERS, Config
from learnlab.experiments.copying.evidence import predicted_key_length
from learnlab.figures import Figure, curves_over_seeds, mean_with_interval, new_figure

__all__ = ["figures"]


def _by_length(run, cfg: Config, scope) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """(lengths, per-length values over seeds) of ``scope(seed)/acc`` logged at step = length."""
    names = [M.metric(scope(s)) for s in range(cfg.n_seeds)]
    if not all(run.has(n) for n in names):
        return None
    steps = run.steps(names[0])
    values = np.stack([np.asarray(run.values(n), float).ravel()[:len(steps)] for n in names], axis=1)
    return steps, list(values)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _copy_figures(run, cfg: Config) -> dict[str, Figure]:
    out, seeds = {}, range(cfg.n_seeds)
    fig, (ax,) = new_figure()
    for model in cfg.models:
        names = [M.metric(M.train(model, s)) for s in seeds]
        if not all(run.has(n) for n in names):
            continue
        n = min(len(run.steps(name)) for name in names)
        curves = np.stack([np.asarray(run.values(name), float).ravel()[:n] for name in names], axis=1)
        seen = np.stack([np.asarray(run.values(M.metric(M.train(model, s), M.EXAMPLES)), float).ravel()[:n]
                         for s in seeds], axis=1)
        curves_over_seeds(ax, np.median(seen, axis=1), curves, label=model)
    ax.set(xlabel="training examples seen", ylabel=f"string accuracy at |x| = {cfg.max_len}", ylim=(-0.03, 1.03))
    _legend(ax)
    out["accuracy_vs_examples"] = Figure(
        f"String accuracy at the longest training length ({cfg.max_len} letters) against training examples seen, "
        f"median over {cfg.n_seeds} seeds (band: range); every model reads the same examples.", fig)

    fig, (ax,) = new_figure()
    ax.axvspan(cfg.min_len, cfg.max_len, color="0.92", label="training lengths")
    for model in cfg.models:
        drawn = _by_length(run, cfg, lambda s, m=model: M.length(m, s))
        if drawn:
            mean_with_interval(ax, *drawn, label=model)
    ax.set(xlabel="string length |x| (letters)", ylabel="string accuracy", ylim=(-0.03, 1.03))
    _legend(ax)
    out["accuracy_vs_length"] = Figure(
        f"String accuracy against string length after training on {cfg.min_len}-{cfg.max_len} letters, mean over "
        f"{cfg.n_seeds} seeds with 95% bootstrap intervals; the shaded band marks the training lengths.", fig)

    if "ngram" in cfg.parts:
        fig, (ax,) = new_figure()
        for model in (m for m in cfg.models if m in TRANSFORMERS):
            drawn = _by_length(run, cfg, lambda s, m=model: M.duplicate(m, s))
            if drawn:
                mean_with_interval(ax, *drawn, label=model)
        if "hard_alibi" in cfg.models:
            ax.axvline(predicted_key_length(cfg) - 0.5, color="black", linestyle=":", linewidth=1,
                       label="predicted longest key")
        ax.set(xlabel="length n of the repeated n-gram", ylabel=f"string accuracy at |x| = {cfg.max_len}",
               ylim=(-0.03, 1.03))
        _legend(ax)
        out["duplicate_ngram_accuracy"] = Figure(
            f"String accuracy on {cfg.max_len}-letter strings in which one n-gram repeats, against n, mean over "
            f"{cfg.n_seeds} seeds with 95% bootstrap intervals; the dotted line marks the longest key the "
            "configuration allows (predicted before the run).", fig)
    return out


def _lookup_figure(run, cfg: Config) -> dict[str, Figure]:
    part = cfg.lookup
    fig, (ax,) = new_figure()
    ax.axvspan(part.min_len, part.max_len, color="0.92", label="training lengths")
    for model in part.models:
        for key in part.keys:
            drawn = _by_length(run, cfg, lambda s, m=model, k=key: M.lookup_length(k, m, s))
            if drawn:
                mean_with_interval(ax, *drawn, label=f"{model}, {key} key", marker="o" if key == "prefix" else "s")
    ax.set(xlabel="string length |x| (letters)", ylabel="lookup accuracy", ylim=(-0.03, 1.03))
    _legend(ax)
    return {"lookup_accuracy_vs_length": Figure(
        f"Lookup accuracy ({part.n_gram}-letter keys, {part.answer_len}-letter answers) against string length, "
        f"mean over {cfg.n_seeds} seeds with 95% bootstrap intervals; prefix key: key before the string, suffix "
        "key: after it.", fig)}


def _ngram_figure(run, cfg: Config) -> dict[str, Figure]:
    name = M.metric(M.HANDBUILT, M.REPEAT_PROBABILITY)
    if not run.has(name):
        return {}
    fig, (ax,) = new_figure()
    ax.plot(run.steps(name), np.ravel(run.values(name)), "o-", label="Monte Carlo P(some n-gram repeats)")
    bound = M.metric(M.HANDBUILT, M.REPEAT_BOUND)
    ax.plot(run.steps(bound), np.ravel(run.values(bound)), "k--", label="bound L^2 D^-n")
    copier = M.metric(M.HANDBUILT, M.COPIER_ACC)
    errors = np.clip(1 - np.ravel(run.values(copier)), 1e-6, None)
    ax.plot(run.steps(copier), errors, "s:", label="hand-built copier error")
    ax.set(yscale="log", xlabel="n-gram length n", ylabel="probability")
    ax.set_xticks(run.steps(name))
    _legend(ax)
    return {"ngram_repeat_probability": Figure(
        f"Probability that some n-gram repeats in a uniform string of {cfg.ngram.copier_length} letters (Monte "
        f"Carlo, {cfg.ngram.samples} strings), the bound L^2 D^-n, and the hand-built copier's error rate "
        "(floored at 1e-6 for the log axis), against n.", fig)}


def _pretrained_figures(run) -> dict[str, Figure]:
    book = M.metric(M.PRETRAINED, M.PHONEBOOK_ACC)
    if not run.has(book):
        return {}
    label = str(run.config.pretrained.model_path)
    fig, (ax,) = new_figure()
    ax.plot(run.steps(book), np.ravel(run.values(book)), "o-", label=label)
    ax.set(xlabel="phone-book entries", ylabel="exact match", ylim=(-0.03, 1.03))
    _legend(ax)
    out = {"phonebook_accuracy": Figure("Phone-book lookup exact match against the number of entries in the "
                                        "prompt, for the given pretrained model.", fig)}
    fig, (ax,) = new_figure()
    for tag in ("natural", "shuffled"):
        name = M.metric(M.PRETRAINED, M.text(tag, "acc"))
        if run.has(name):
            ax.plot(run.steps(name), np.ravel(run.values(name)), "o-", label=f"{tag} text")
    ax.set(xlabel="words copied", ylabel="exact match", ylim=(-0.03, 1.03))
    _legend(ax)
    out["text_copy_accuracy"] = Figure("Exact match when copying a passage of natural or word-shuffled text "
                                       "against its length in words, for the given pretrained model.", fig)
    return out


def figures(run) -> dict[str, Figure]:
    cfg: Config = run.config
    out = {}
    if "copy" in cfg.parts:
        out.update(_copy_figures(run, cfg))
    if "ngram" in cfg.parts:
        out.update(_ngram_figure(run, cfg))
    if "lookup" in cfg.parts:
        out.update(_lookup_figure(run, cfg))
    if "pretrained" in cfg.parts:
        out.update(_pretrained_figures(run))
    return out
