"""Claims and figures of sq-vs-pac, read from the stored run (``learnlab.results.StoredRun``).

A run "learns" when its test accuracy reaches ``LEARNED`` (PAC error epsilon = 0.05) and
"stays at chance" when it ends at or below ``CHANCE``. Rates are over runs (cells x seeds)
with a Wilson interval; the paper's statements are "can"/"cannot" learn, read as "a run
succeeds with probability above 1/2" (the PAC confidence delta < 1/2 that boosting needs).
"""

from __future__ import annotations

import math

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.sq_vs_pac import schema as names
from learnlab.experiments.sq_vs_pac.config import Config
from learnlab.figures import Figure, curves_over_seeds, mean_with_interval, new_figure, phase_diagram

LEARNED = 0.95  # PAC error epsilon = 0.05
CHANCE = 0.60   # within 0.1 of the coin flip a parity learner is held to without signal
RATE = 0.5      # "can learn": success probability above 1/2 (confidence delta < 1/2)
RATE_SOURCE = "theory: learning with confidence 1 - delta, delta < 1/2 (the PAC convention that boosting needs)"
SQ_SIDE = 10.0  # b rho^2 >= 10: the batch noise (~1/sqrt(b)) is ~3x below rho, the SQ side
NOISE_SIDE = 1.0  # b rho^2 <= 1: the batch noise is at least rho


# ----------------------------------------------------------------------------- readers


def cell_accuracy(run, target: str, mode: str, b: int, rho: float | None = None) -> np.ndarray:
    """Final test accuracy per seed of one phase-diagram cell, (S,) (``exact``: rho None)."""
    scope = names.phase_scope(target, mode, b)
    accuracy = run.over_seeds(f"{scope}/{names.ACCURACY}")
    if rho is None:
        return accuracy
    rhos = run.over_seeds(f"{scope}/{names.RHO}")
    chosen = np.isclose(rhos, rho, rtol=1e-5)
    if not chosen.any():
        raise NotMeasured(f"rho = {rho:g} is not in the grid of {scope}")
    return accuracy[chosen]


def _cells(cfg: Config, low: float = 0.0, high: float = math.inf, max_rho: float = math.inf):
    """The (b, rho) grid cells with low <= b rho^2 <= high and rho <= max_rho."""
    return [(b, rho) for b in cfg.batch_sizes for rho in cfg.rhos if low <= b * rho**2 <= high and rho <= max_rho]


def _rate_where_exact_learns(run, cfg: Config, target: str, mode: str, cells, success) -> Measurement:
    """0/1 per run (cell x seed) of ``success(accuracy)``, over the seeds whose exact-gradient
    run at the same b learned: what remains is the rounding's effect."""
    values, parts = [], []
    for b, rho in cells:
        learned = cell_accuracy(run, target, "exact", b) >= LEARNED
        accuracy = cell_accuracy(run, target, mode, b, rho)[learned]
        values += [float(success(a)) for a in accuracy]
        parts.append(f"b={b}, rho={rho:g}: {int(sum(success(a) for a in accuracy))}/{len(accuracy)}")
    if not values:
        raise NotMeasured(f"no grid cell or no seed whose exact-gradient run learned ({target}, {mode})")
    return Measurement(values, "; ".join(parts))


def _channel(run, prefix: str, what: str, step: int) -> np.ndarray:
    metric = names.channel_metric(prefix, what)
    steps = run.steps(metric)
    if step not in steps:
        raise NotMeasured(f"{metric} has no value at {step}")
    return np.asarray(run.values(metric)[list(steps).index(step)], dtype=np.float64)


def _read_back(run, prefix: str, steps) -> Measurement:
    """Per (step, seed): the fraction of examples read back, 0 unless the parity was solved exactly."""
    values, parts = [], []
    for step in steps:
        recovered, accuracy = _channel(run, prefix, "recovered", step), _channel(run, prefix, "accuracy", step)
        values += list(np.where(accuracy == 1.0, recovered, 0.0))
        parts.append(f"{step}: recovered {recovered.min():.3f}, accuracy {accuracy.min():.3f}")
    if not values:
        raise NotMeasured(f"no channel setting of {prefix} on this side")
    return Measurement(values, "; ".join(parts))


def _leaked(run, prefixes_steps) -> Measurement:
    values, parts = [], []
    for prefix, step in prefixes_steps:
        recovered = _channel(run, prefix, "recovered", step)
        values += list(recovered)
        parts.append(f"{prefix} {step}: {recovered.max():.3f}")
    if not values:
        raise NotMeasured("no channel setting on this side")
    return Measurement(values, "; ".join(parts))


def _disagreement(run, b: int) -> Measurement:
    metric = f"{names.DISAGREEMENT_SCOPE}/{names.DISAGREEMENT}"
    steps = list(run.steps(metric))
    if b not in steps:
        raise NotMeasured(f"no disagreement measured at b = {b}")
    values = run.values(metric)[steps.index(b)]
    return Measurement(values, f"b = {b}: mean {np.mean(values):.4f}")


# ----------------------------------------------------------------------------- claims


def claims(cfg: Config) -> list[Reproduction | Sanity]:
    n, k = cfg.n_bits, cfg.k
    b_top = max(cfg.batch_sizes)
    sq_cells = _cells(cfg, low=SQ_SIDE)
    # The majority of k bits correlates C(k-1, (k-1)/2) / 2^(k-1) with each of its bits (1/2 at k = 3):
    # SQ-learnable where the tolerance rho is below that correlation.
    correlation = math.comb(k - 1, (k - 1) // 2) / 2 ** (k - 1)
    sq_learnable_cells = [(b, rho) for b, rho in _cells(cfg, low=SQ_SIDE, max_rho=correlation * 0.999)
                          if not cfg.control_batches or b in cfg.control_batches]
    queries = math.comb(n, k)
    out: list[Reproduction | Sanity] = [
        Reproduction(
            "exact-gradients", f"SGD with exact gradients (b = {b_top}) learns the ({n}, {k}) parity, an SQ-learnable "
            f"class ({queries} parities): the reference the rounded runs are compared with.",
            source="Abstract: SGD can always simulate SQ learning",
            statistic=f"fraction of seeds with accuracy >= {LEARNED}",
            threshold=RATE, side=">=", threshold_source=RATE_SOURCE, unit="seeds", interval="wilson",
            measure=lambda run: _rate(cell_accuracy(run, "parity", "exact", b_top) >= LEARNED)),
        Reproduction(
            "sq-regime", f"Where b rho^2 >= {SQ_SIDE:g} the batch mean lies within rho of its expectation and a "
            "deterministic rounding answers like a statistical query of tolerance rho; the parity's population "
            "gradients at initialisation round to the null answer and SGD stays at chance.",
            source="Abstract: when b rho^2 is large the power of SGD is that of SQ",
            statistic=f"fraction of runs (cells b rho^2 >= {SQ_SIDE:g} x seeds, nearest) with accuracy <= {CHANCE}",
            threshold=RATE, side=">=", threshold_source=RATE_SOURCE, unit="runs", interval="wilson",
            measure=lambda run: _rate_where_exact_learns(run, cfg, "parity", "nearest", sq_cells,
                                                         lambda a: a <= CHANCE)),
        Reproduction(
            "noise-regime", f"Where b rho^2 <= {NOISE_SIDE:g} the batch noise is at least rho and carries the signal "
            "through the same deterministic rounding: SGD learns the parity as with exact gradients.",
            source="Abstract: SGD's power beyond SQ depends on rho relative to b",
            statistic=f"fraction of runs (cells b rho^2 <= {NOISE_SIDE:g} x seeds, nearest) with accuracy >= {LEARNED}",
            threshold=RATE, side=">=", threshold_source=RATE_SOURCE, unit="runs", interval="wilson",
            measure=lambda run: _rate_where_exact_learns(run, cfg, "parity", "nearest", _cells(cfg, high=NOISE_SIDE),
                                                         lambda a: a >= LEARNED)),
        Reproduction(
            "gd-fine-learns", f"Full-batch GD on m = {cfg.gd_samples} samples with rho <= 1/m learns as with exact "
            "gradients.",
            source="Abstract: with fine enough precision relative to m, GD simulates sample-based learning",
            statistic=f"fraction of seeds with accuracy >= {LEARNED} (seeds whose exact GD learned)",
            threshold=RATE, side=">=", threshold_source=RATE_SOURCE, unit="seeds", interval="wilson",
            measure=lambda run: _gd_rate(run, cfg, fine=True)),
        Reproduction(
            "gd-coarse-fails", f"Full-batch GD on m = {cfg.gd_samples} samples with m rho^2 >= {SQ_SIDE:g} (the "
            "full-batch analogue of the SQ side) stays at chance.",
            source="Abstract: GD's power depends on rho relative to the sample size m",
            statistic=f"fraction of seeds with accuracy <= {CHANCE} (seeds whose exact GD learned)",
            threshold=RATE, side=">=", threshold_source=RATE_SOURCE, unit="seeds", interval="wilson",
            measure=lambda run: _gd_rate(run, cfg, fine=False)),
    ]
    if "majority" in cfg.targets and "nearest" in cfg.majority_modes:
        out.append(Reproduction(
            "majority-survives", f"The majority of {k} bits (each bit correlates {correlation:g} with it: "
            "SQ-learnable at tolerance rho below that) is learned on the SQ side with the same deterministic rounding.",
            source="Abstract: SGD can always simulate SQ learning",
            statistic=f"fraction of runs (cells b rho^2 >= {SQ_SIDE:g}, rho < {correlation:g}, x seeds) with accuracy "
                      f">= {LEARNED}", threshold=RATE, side=">=", threshold_source=RATE_SOURCE, unit="runs",
            interval="wilson", measure=lambda run: _rate_where_exact_learns(
                run, cfg, "majority", "nearest", sq_learnable_cells, lambda a: a >= LEARNED)))
    if "stochastic" in cfg.modes:
        out.append(Reproduction(
            "stochastic-control", "Unbiased stochastic rounding on the SQ side learns the parity: the failure comes "
            "from answers that may err in one direction, which the SQ simulation needs.",
            source="Abstract: the SQ side is an oracle known only up to rho; unbiased rounding is our control, its "
                   "errors average out over steps",
            statistic=f"fraction of runs (cells b rho^2 >= {SQ_SIDE:g}, rho < {correlation:g}, x seeds) with accuracy "
                      f">= {LEARNED}", threshold=RATE, side=">=",
            threshold_source=RATE_SOURCE + "; unbiased errors average over T steps (tolerance ~ rho / sqrt(T))",
            unit="runs", interval="wilson", measure=lambda run: _rate_where_exact_learns(
                run, cfg, "parity", "stochastic", sq_learnable_cells, lambda a: a >= LEARNED)))
    out += _sanity(cfg)
    return out


def _rate(flags) -> Measurement:
    flags = np.asarray(flags, dtype=np.float64)
    return Measurement(flags, f"{int(flags.sum())} of {len(flags)}")


def _gd_rate(run, cfg: Config, *, fine: bool) -> Measurement:
    learned = run.over_seeds(f"{names.gd_scope('exact')}/{names.ACCURACY}") >= LEARNED
    scope = names.gd_scope("nearest")
    accuracy, rhos = run.over_seeds(f"{scope}/{names.ACCURACY}"), run.over_seeds(f"{scope}/{names.RHO}")
    m = cfg.gd_samples
    chosen = rhos <= 1 / m if fine else m * rhos**2 >= SQ_SIDE
    seeds = np.tile(learned, len(rhos) // max(len(learned), 1))
    accuracy = accuracy[chosen & seeds]
    if not len(accuracy):
        raise NotMeasured("no precision on this side, or no seed whose exact GD learned")
    return _rate(accuracy >= LEARNED if fine else accuracy <= CHANCE)


def _sanity(cfg: Config) -> list[Sanity]:
    part, rho = cfg.channel, cfg.channel.rho
    reads = [b for b in part.batch_sizes if b * rho <= 1]  # 1/b >= rho: every coordinate rounds away from 0
    silent = [(names.channel_prefix("sgd", mode), b) for mode in part.modes for b in part.batch_sizes
              if (mode == "nearest" and 1 / b < rho / 2) or (mode == "adv_zero" and 1 / b <= 3 * rho / 4)
              or (mode not in ("nearest", "adv_zero") and b * rho**2 >= SQ_SIDE)]
    gd_pairs = math.ceil(part.gd_samples * (part.gd_samples - 1) / (2 * part.n_blocks) + 1)
    gd_reads = [i for i, r in enumerate(part.gd_rhos) if r <= 1 / (2 * part.gd_samples)]
    gd_silent = [(names.channel_prefix("gd"), i) for i, r in enumerate(part.gd_rhos)
                 if part.gd_samples * r**2 >= SQ_SIDE]
    d_rho = cfg.disagreement_rho
    noisy_b = [b for b in cfg.disagreement_batches if b * d_rho**2 <= 1.5]
    quiet_b = [b for b in cfg.disagreement_batches if b * d_rho**2 >= 20]
    out = [
        Sanity("channel-reads", f"b rho <= 1 (rho = {rho:g}, b in {reads}): every example of a batch is read back from "
               f"the rounded gradient and Gaussian elimination over GF(2) solves the full parity on {part.n_bits} bits "
               f"(SQ-hard: (2^{part.n_bits} rho^2 - 1) / 2 queries of tolerance rho are needed). Arithmetic of the "
               "hand-built sample channel.", statistic="fraction of examples read back (0 unless solved exactly)",
               threshold=0.99, side=">=",
               measure=lambda run: _read_back(run, names.channel_prefix("sgd", "nearest"), reads)),
        Sanity("channel-silent", "Once 1/b falls inside a rounding's dead zone (nearest: rho / 2; adversarial: "
               f"3 rho / 4; any rounding at b rho^2 >= {SQ_SIDE:g}) nothing is read back: the full parity stays unlearned.",
               statistic="fraction of examples read back", threshold=0.0, side="<=",
               measure=lambda run: _leaked(run, silent)),
        # Two samples that hash to one parameter block are lost together: lambda = m (m - 1) / 2M
        # such pairs are expected (0.12 at m = 128, M = 65,536); ceil(lambda + 1) are allowed.
        Sanity("gd-channel-reads", f"Full-batch GD on m = {part.gd_samples} samples with rho <= 1/(2m) reads "
               f"every sample that shares its parameter block with no other (at most {gd_pairs} colliding pairs "
               "lost) and solves the full parity.", statistic="fraction of samples read back (0 unless solved exactly)",
               threshold=1 - 2 * gd_pairs / part.gd_samples, side=">=",
               measure=lambda run: _read_back(run, names.channel_prefix("gd"), gd_reads)),
        Sanity("gd-channel-silent", f"Full-batch GD with m rho^2 >= {SQ_SIDE:g} reads nothing back.",
               statistic="fraction of samples read back", threshold=0.0, side="<=",
               measure=lambda run: _leaked(run, gd_silent)),
    ]
    if noisy_b:
        out.append(Sanity("noise-disagrees", f"At initialisation with b rho^2 <= 1.5 (b = {noisy_b[-1]}, "
                          f"rho = {d_rho:g}) two independent batches' rounded gradients differ on many coordinates: the batch noise "
                          "crosses rounding boundaries.", statistic="fraction of coordinates that differ",
                          threshold=0.2, side=">=", measure=lambda run: _disagreement(run, noisy_b[-1])))
    if quiet_b:
        out.append(Sanity("sq-collapse", f"At initialisation with b rho^2 >= 20 (b = {quiet_b[0]}, "
                          f"rho = {d_rho:g}) two independent batches' rounded gradients agree almost everywhere: the answer is a function of "
                          "the population, as a statistical query's is.",
                          statistic="fraction of coordinates that differ",
                          threshold=0.01, side="<=", measure=lambda run: _disagreement(run, quiet_b[0])))
    return out


# ----------------------------------------------------------------------------- figures


def _boundaries(ax, bs, rhos) -> None:
    """The regime lines b rho = 1, b rho^2 = 1 and b rho^2 = 10 in cell coordinates (log-interpolated)."""
    fine_b = np.geomspace(bs[0], bs[-1], 100)
    x = np.interp(np.log(fine_b), np.log(bs), range(len(bs)))
    for line_rho, style, label in ((1 / fine_b, "--", "b rho = 1"), (np.sqrt(1 / fine_b), ":", "b rho^2 = 1"),
                                   (np.sqrt(SQ_SIDE / fine_b), "-.", f"b rho^2 = {SQ_SIDE:g}")):
        y = np.interp(np.log(line_rho), np.log(rhos), range(len(rhos)), left=np.nan, right=np.nan)
        ax.plot(x, y, style, color="red", lw=1, label=label)


def figures(run) -> dict[str, Figure]:
    cfg: Config = run.config
    out: dict[str, Figure] = {}
    bs, rhos = sorted(cfg.batch_sizes), sorted(cfg.rhos)
    panels = [("parity", mode) for mode in cfg.modes] + [("majority", mode) for mode in cfg.majority_modes
                                                         if "majority" in cfg.targets]
    fig, axes = new_figure(len(panels), width=3.8, height=3.4)
    image = None
    for ax, (target, mode) in zip(axes, panels):
        grid = np.full((len(rhos), len(bs)), np.nan)
        for (i, rho), (j, b) in ((a, c) for a in enumerate(rhos) for c in enumerate(bs)):
            try:
                grid[i, j] = float(np.mean(cell_accuracy(run, target, mode, b, rho)))
            except Exception:  # a cell that did not run stays blank
                pass
        image = phase_diagram(ax, grid, x_labels=bs, y_labels=rhos, xlabel="batch b", ylabel="precision rho",
                              vmin=0.5, vmax=1.0, title=f"{target}, {mode} rounding")
        _boundaries(ax, bs, rhos)
    axes[0].legend(fontsize=6, loc="upper right")
    fig.colorbar(image, ax=axes, shrink=0.8, label="test accuracy (mean over seeds)")
    out["phase_diagram"] = Figure(
        f"Final test accuracy over batch size b and precision rho, mean over {cfg.n_seeds} seeds, for the "
        f"({cfg.n_bits}, {cfg.k}) parity and the majority; red lines: b rho = 1, b rho^2 = 1 and "
        f"b rho^2 = {SQ_SIDE:g}.",
        fig)

    sq_cells = _cells(cfg, low=SQ_SIDE, max_rho=0.49)
    if sq_cells:
        b, rho = max(sq_cells)
        fig, (ax,) = new_figure()
        for target, mode in [("parity", "exact"), *panels]:
            scope = names.phase_scope(target, mode, b)
            if not run.has(f"{scope}/{names.ACCURACY}"):
                continue
            values = run.values(f"{scope}/{names.ACCURACY}")
            if mode != "exact":
                values = values[:, np.isclose(run.over_seeds(f"{scope}/{names.RHO}"), rho, rtol=1e-5)]
            curves_over_seeds(ax, run.steps(f"{scope}/{names.ACCURACY}"), values, label=f"{target}, {mode}")
        ax.set(xlabel="SGD step", ylabel="test accuracy", ylim=(0.4, 1.02))
        ax.legend(fontsize=7)
        out["sq_cell_curves"] = Figure(
            f"Test accuracy against SGD steps at b = {b}, rho = {rho:g} (b rho^2 = {b * rho**2:.0f}), median over "
            "seeds (band: range): exact gradients, each rounding, and the majority target.", fig)

    metric = f"{names.DISAGREEMENT_SCOPE}/{names.DISAGREEMENT}"
    if run.has(metric):
        fig, (ax,) = new_figure()
        steps = run.steps(metric)
        mean_with_interval(ax, steps, list(run.values(metric)), label="coordinates that differ")
        nonzero = f"{names.DISAGREEMENT_SCOPE}/{names.NONZERO}"
        mean_with_interval(ax, run.steps(nonzero), list(run.values(nonzero)), label="nonzero coordinates", marker="s")
        ax.set_yscale("symlog", linthresh=1e-4)  # log above 1e-4, linear down to an exact 0
        ax.set(xscale="log", ylim=(0, 1), xlabel="batch b", ylabel="fraction of coordinates")
        ax.legend(fontsize=7)
        out["gradient_disagreement"] = Figure(
            f"Two independent batches' rounded gradients at initialisation (nearest, rho = {cfg.disagreement_rho:g}): "
            "fraction of coordinates that differ and that are nonzero, against b; mean over seeds with 95% intervals.",
            fig)

    fig, (ax,) = new_figure(width=5.2)
    for mode in cfg.channel.modes:
        prefix = names.channel_prefix("sgd", mode)
        if run.has(names.channel_metric(prefix, "recovered")):
            for what, marker in (("recovered", "o-"), ("accuracy", "s--")):
                metric = names.channel_metric(prefix, what)
                ax.plot(run.steps(metric), np.mean(run.values(metric), axis=1), marker,
                        label=f"{mode}: {'examples read back' if what == 'recovered' else 'parity test accuracy'}")
    ax.axvline(1 / cfg.channel.rho, color="gray", lw=0.8, ls="--", label="b rho = 1")
    ax.axvline(SQ_SIDE / cfg.channel.rho**2, color="gray", lw=0.8, ls="-.", label=f"b rho^2 = {SQ_SIDE:g}")
    ax.set(xscale="log", xlabel="batch b", ylabel="fraction (mean over seeds)")
    ax.legend(fontsize=6)
    out["sample_channel"] = Figure(
        f"The sample channel on the full parity of {cfg.channel.n_bits} bits (rho = {cfg.channel.rho:g}, "
        f"{cfg.channel.sample_budget} examples): fraction of examples read back from the rounded gradients and the "
        "test accuracy of the parity solved from them, against b, mean over seeds.", fig)

    gd_metric = f"{names.gd_scope('nearest')}/{names.ACCURACY}"
    if run.has(gd_metric):
        fig, (ax,) = new_figure()
        exact = f"{names.gd_scope('exact')}/{names.ACCURACY}"
        curves_over_seeds(ax, run.steps(exact), run.values(exact), label="exact")
        gd_rhos = run.over_seeds(f"{names.gd_scope('nearest')}/{names.RHO}")
        for rho in sorted(set(np.round(gd_rhos, 8))):
            chosen = np.isclose(gd_rhos, rho, rtol=1e-5)
            curves_over_seeds(ax, run.steps(gd_metric), run.values(gd_metric)[:, chosen],
                              label=f"rho = {rho:g} (m rho^2 = {cfg.gd_samples * rho**2:.3g})")
        ax.set(xlabel="GD step", ylabel="test accuracy", ylim=(0.4, 1.02))
        ax.legend(fontsize=7)
        out["full_batch_gd"] = Figure(
            f"Full-batch GD of the MLP on m = {cfg.gd_samples} samples through the oracle (nearest rounding): test "
            "accuracy against steps, median over seeds (band: range).", fig)
    return out
