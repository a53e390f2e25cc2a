"""ar-learners figures, drawn from the stored run with the figure kit."""

from __future__ import annotations

import json
import textwrap

import numpy as np

from learnlab.claims import wilson_interval
from learnlab.experiments.ar_learners import metrics as M
from learnlab.figures import Figure, new_figure


def figures(run) -> dict:
    cfg, out = run.config, {}
    if "parity" in cfg.parts or "length" in cfg.parts:
        out["parity_vs_chain_length"] = _chain_length(run)
    if "multiplication" in cfg.parts:
        out["multiplication"] = _multiplication(run)
    if "text" in cfg.parts:
        out["perplexity"] = _perplexity(run)
        samples = _samples(run)
        if samples is not None:
            out["samples"] = samples
    return out


def _points(ax, run, scopes, label, style):
    xs, ys, lows, highs = [], [], [], []
    for scope in scopes:
        accuracy = float(run.last(M.scoped(scope, M.FINAL_TOKEN_ACC)))
        n = int(run.last(M.scoped(scope, M.TEST_EXAMPLES)))
        low, high = wilson_interval(round(accuracy * n), n)
        xs.append(float(run.last(M.scoped(scope, M.CHAIN_TOKENS))))
        # max(0, .): at accuracy 1.0 the Wilson bound can sit 1e-16 below it, which errorbar refuses
        ys.append(accuracy), lows.append(max(0.0, accuracy - low)), highs.append(max(0.0, high - accuracy))
    order = np.argsort(xs)
    ax.errorbar(np.array(xs)[order], np.array(ys)[order], yerr=[np.array(lows)[order], np.array(highs)[order]],
                fmt=style, capsize=3, label=label)


def _chain_length(run) -> Figure:
    cfg = run.config
    fig, (ax,) = new_figure(width=6.0, height=3.8)
    if "parity" in cfg.parts:
        for n in cfg.parity.n_bits:
            _points(ax, run, [M.parity_scope(n, c) for c in ("none", "count")], f"linear, n = {n}: none vs count",
                    "o-")
    if "length" in cfg.parts:
        part = cfg.length
        _points(ax, run, [M.length_mlp_scope(k) for k in part.chunk_sizes],
                f"MLP, n = {part.n_bits}, |A| = {part.subset_size}: running parities", "s--")
        _points(ax, run, [M.length_linear_scope(t) for t in part.linear_lengths],
                f"linear, n = {part.n_bits}, |A| = {part.linear_subset_size}: count chain cut", "^:")
    ax.axhline(0.5, color="gray", lw=0.8)
    ax.set(xlabel="chain-of-thought tokens", ylabel="final-token accuracy (roll-out)", ylim=(0.3, 1.05))
    ax.legend(fontsize=7)
    return Figure("Parity: final-token accuracy against the number of chain-of-thought tokens, for the linear model "
                  "and the MLP variant (error bars: 95% Wilson intervals over test examples; gray: chance).", fig)


def _multiplication(run) -> Figure:
    cfg = run.config
    p = cfg.multiplication.digits
    fig, (ax_steps, ax_digits) = new_figure(2, width=4.8)
    for scope, label in ((M.MULT_COT, "chain of thought"), (M.MULT_DIRECT, "answer only")):
        name = M.scoped(scope, M.EXACT_MATCH)
        ax_steps.plot(run.steps(name), run.values(name), "o-", label=label)
        digits = run.last(M.scoped(scope, M.ANSWER_DIGIT_ACC))
        ax_digits.plot(np.arange(1, np.size(digits) + 1), np.atleast_1d(digits), "o-", label=label)
    ax_steps.set(xlabel="step", ylabel="held-out exact match", ylim=(0, 1.02))
    ax_digits.set(xlabel="answer digit (most significant first)", ylabel="accuracy", ylim=(0, 1.02))
    ax_digits.xaxis.get_major_locator().set_params(integer=True)
    ax_steps.legend(fontsize=7)
    return Figure(f"{p} x {p}-digit multiplication (width d = {cfg.multiplication.d}): held-out exact match against "
                  "steps (left) and accuracy per answer digit at the end (right), with and without the chain.", fig)


def _perplexity(run) -> Figure:
    corpora = run.config.text.corpora
    fig, axes = new_figure(len(corpora), width=4.6)
    for ax, corpus in zip(axes, corpora):
        scope = M.text_scope(corpus)
        name = M.scoped(scope, M.VAL_PERPLEXITY)
        ax.plot(run.steps(name), run.values(name), "o-", label="linear model")
        for baseline, metric, style in (("unigram", M.UNIGRAM_PERPLEXITY, ":"), ("add-k bigram", M.BIGRAM_PERPLEXITY, "--")):
            ax.axhline(float(run.last(M.scoped(scope, metric))), ls=style, color="gray", label=baseline)
        ax.set(yscale="log", xlabel="step", ylabel="validation perplexity", title=corpus)
        ax.legend(fontsize=7)
    return Figure("Validation perplexity of the linear model against steps, with unigram and add-k bigram baselines "
                  "on the same split, one panel a corpus.", fig)


def _samples(run) -> Figure | None:
    """The first sampled texts (temperature 0.5) of each corpus, as a figure of text."""
    lines = []
    for corpus in run.config.text.corpora:
        path = run.artifact_path(f"{M.text_scope(corpus)}.{M.SAMPLES}")
        if path is None:
            continue
        lines.append(f"{corpus}:")
        for text in json.loads(path.read_text())[:4]:
            lines += ["  " + row for row in textwrap.wrap(text, 110)[:2]]
    if not lines:
        return None
    fig, (ax,) = new_figure(width=10, height=0.22 * len(lines) + 0.4)
    ax.axis("off")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace", fontsize=7, transform=ax.transAxes)
    return Figure("Texts sampled at temperature 0.5 from the start of validation windows, four a corpus.", fig)
