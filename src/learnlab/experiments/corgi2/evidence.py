"""The corgi2 experiment's claims (declared from the config) and figures (read from the store)."""

from __future__ import annotations

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.data.quality import expected_homogeneity
from learnlab.experiments.corgi2 import schema as M
from learnlab.experiments.corgi2.config import Config
from learnlab.figures import Figure, curves_over_seeds, mean_with_interval, new_figure, paper_points

__all__ = ["claims", "figures", "arm_accuracy"]

SAME_ACCURACY = 0.01  # "reaches the accuracy of a full shuffle": within one point


def arm_accuracy(run, cfg: Config, part: str, model: str, epoch: int | None = None) -> dict[str, np.ndarray]:
    """{arm: test accuracy per seed} at ``epoch`` (None: the last)."""
    name = f"{part}/{model}/{M.TEST_ACC}"
    values = np.asarray(run.last(name) if epoch is None else run.at(name, epoch), dtype=float)
    replicas = M.replicas(cfg, getattr(cfg, part))
    table: dict[str, list[float]] = {}
    for (arm, _), value in zip(replicas, values):
        table.setdefault(arm, []).append(float(value))
    return {arm: np.array(v) for arm, v in table.items()}


def _fmt(values) -> str:
    return "/".join(f"{v:.3f}" for v in np.asarray(values, dtype=float))


def _part_claims(cfg: Config, part_name: str) -> list:
    part, out = getattr(cfg, part_name), []
    n_off, n_on, b = part.n_offline, part.n_online, part.records_per_shard

    def homogeneity(run):
        h = run.last(f"{part_name}/{M.H_SORTED}")
        after = run.over_seeds(f"{part_name}/{M.homogeneity(n_off)}")
        predicted = expected_homogeneity(h, n_off)
        return Measurement(after / predicted, f"sorted h = {h:.1f}; after one pass {np.mean(after):.2f} "
                           f"(range {after.min():.2f}-{after.max():.2f}) vs the formula's {predicted:.2f}")
    out.append(Reproduction(
        f"{part_name}-homogeneity", f"One offline pass with groups of n_off = {n_off} blocks lowers block "
        "homogeneity to the paper's 1 + (h - 1)/n_off.", source="Sec. 3 (analysis of the offline pass)",
        statistic="homogeneity after one pass over the formula's value, mean over passes", threshold=1.0,
        side="<=", threshold_source="the paper's formula 1 + (h - 1)/n_off itself: the pass does at least as "
        "well as the analysis says", unit="passes", measure=homogeneity))
    if "full" in cfg.arms and "corgi2" in cfg.arms:
        def kl(run):
            ratios = run.over_seeds(f"{part_name}/{M.KL_RATIO}")
            predicted = run.last(f"{part_name}/{M.KL_RATIO_PREDICTED}")
            return Measurement(ratios / predicted, f"Corgi^2 / full batch label KL {np.mean(ratios):.2f} "
                               f"(range {ratios.min():.2f}-{ratios.max():.2f}) vs {predicted:.2f} predicted")
        out.append(Reproduction(
            f"{part_name}-batch-kl", f"Corgi^2's batches (n_off = {n_off}, n_on = {n_on}) are as close to a full "
            "shuffle's as the homogeneity of its blocks predicts: label KL ratio 1 + B (h~ - 1)/(n_on b).",
            source="Sec. 3 (homogeneity and batch variance)", statistic="measured KL ratio over the predicted "
            "ratio, mean over passes", threshold=1.0, side="<=",
            threshold_source="the ratio the paper's homogeneity formula predicts, itself: batches at least as "
            "close to i.i.d. as the analysis says", unit="passes", measure=kl))
        for model in cfg.models:
            def gap(run, model=model, arm="corgi2"):
                table = arm_accuracy(run, cfg, part_name, model)
                return Measurement(table["full"] - table[arm], f"full {_fmt(table['full'])}; {arm} {_fmt(table[arm])}")
            out.append(Reproduction(
                f"{part_name}-{model}-corgi2-matches-full", f"{model}: training on Corgi^2's order reaches the test "
                f"accuracy of a full shuffle (n_off x n_on = {n_off * n_on} blocks of {b}).",
                source="Sec. 5 (experiments)", statistic="full-shuffle minus Corgi^2 final test accuracy, mean over "
                "seeds", threshold=SAME_ACCURACY, side="<=", threshold_source="paper Sec. 5: Corgi^2 matches full "
                "shuffle's accuracy (read as within 1 point)", unit="seeds", measure=gap))
            if "corgipile" in cfg.arms:
                out.append(Reproduction(
                    f"{part_name}-{model}-corgipile-worse", f"{model}: CorgiPile alone, at the same buffer of "
                    f"{n_on} blocks, ends below a full shuffle on label-sorted blocks.",
                    source="Sec. 1 and 5 (CorgiPile on homogeneous blocks)", statistic="full-shuffle minus CorgiPile "
                    "final test accuracy, mean over seeds", threshold=SAME_ACCURACY, side=">=",
                    threshold_source="paper: CorgiPile degrades when blocks are homogeneous and the buffer small "
                    "(read as more than the 1 point that counts as the same accuracy)", unit="seeds",
                    measure=lambda run, model=model: gap(run, model, "corgipile")))

    def io(run):
        records, shards = run.last(f"{part_name}/{M.N_RECORDS}"), run.last(f"{part_name}/{M.N_SHARDS}")
        deviations, words = [], []
        for arm in cfg.arms:
            requests = run.last(f"{part_name}/{M.arm(arm, M.REQUESTS)}")
            words.append(f"{arm} {requests:,.0f}")
            # full random access: one ranged request per record, plus at most each shard's footer once
            deviations.append(0.0 if (arm == "full" and records <= requests <= records + shards)
                              else requests - shards if arm != "full" else requests - records)
        offline = run.last(f"{part_name}/{M.OFFLINE_REQUESTS}") if run.has(f"{part_name}/{M.OFFLINE_REQUESTS}") \
            else 2 * shards
        deviations.append(offline - 2 * shards)
        return Measurement(deviations, f"{records:,.0f} records in {shards:,.0f} blocks; requests per epoch: "
                           + ", ".join(words) + f"; offline pass {offline:,.0f}")
    out.append(Sanity(f"{part_name}-io", "Per epoch, full random access makes one request per record; the block "
                      "orders one sequential request per block; the offline pass one read and one write per block.",
                      statistic="requests minus the count by construction, every arm", threshold=0.0, side="==",
                      measure=io))
    out.append(Sanity(f"{part_name}-orders", "Each loader emits exactly its planned order, and the in-memory "
                      "offline pass used for the intervals equals the real one.", statistic="1 when equal, every "
                      "arm and the pass", threshold=1.0, side="==", measure=lambda run: Measurement(
                          [run.last(f"{part_name}/{M.arm(a, M.MATCHES_PLAN)}") for a in cfg.arms]
                          + [run.last(f"{part_name}/{M.PASS_EQUALS_SIMULATION}")])))
    return out


def claims(cfg: Config) -> list:
    return [spec for part in cfg.parts for spec in _part_claims(cfg, part)]


# ----------------------------------------------------------------------------- figures


def _part_figures(run, cfg: Config, part_name: str) -> dict[str, Figure]:
    part, out = getattr(cfg, part_name), {}
    arms, prefix = list(cfg.arms), f"{part_name}/"
    fig, axes = new_figure(len(cfg.models))
    for ax, model in zip(axes, cfg.models):
        name = f"{prefix}{model}/{M.TEST_ACC}"
        if not run.has(name):
            continue
        values, replicas = np.asarray(run.values(name), float), M.replicas(cfg, part)
        for arm in arms:
            columns = [i for i, (a, _) in enumerate(replicas) if a == arm]
            curves_over_seeds(ax, run.steps(name), values[:, columns], label=arm)
        ax.set(xlabel="epoch", ylabel="test accuracy", title=model)
    axes[0].legend(fontsize=6)
    out[f"{part_name}_accuracy_vs_epoch"] = Figure(
        f"Test accuracy against epochs for each order ({part_name}, blocks of {part.records_per_shard} label-sorted "
        f"records, buffer of {part.n_online} blocks), median over {cfg.n_seeds} seeds (band: range).", fig)

    fig, axes = new_figure(2)
    kl = [float(np.mean(run.last(f"{prefix}{M.arm(a, M.BATCH_KL)}"))) for a in arms]
    requests = [float(run.last(f"{prefix}{M.arm(a, M.REQUESTS)}")) for a in arms]
    axes[0].barh(arms, kl)
    axes[0].set(xlabel="mean per-batch label KL (nats)")
    axes[1].barh(arms, requests)
    axes[1].set(xscale="log", xlabel="storage requests per epoch")
    out[f"{part_name}_batch_kl_and_io"] = Figure(
        f"Mean per-batch label KL to the label distribution (left; mean over {cfg.n_seeds} seeds) and storage "
        "requests per epoch (right) for each order.", fig)

    sweep = M.sweep(part)
    fig, axes = new_figure(2)
    h = run.last(f"{prefix}{M.H_SORTED}")
    mean_with_interval(axes[0], sweep, [run.over_seeds(f"{prefix}{M.homogeneity(n)}") for n in sweep],
                       label=f"measured ({part.passes} passes)")
    paper_points(axes[0], sweep, [expected_homogeneity(h, n) for n in sweep], label="paper formula 1 + (h - 1)/n")
    axes[0].set(xscale="log", yscale="log", xlabel="n_off (blocks a group)", ylabel="homogeneity after one pass")
    axes[0].legend(fontsize=7)
    if "full" in cfg.arms:
        for model in cfg.models:
            table = arm_accuracy(run, cfg, part_name, model)
            mean_with_interval(axes[1], [n * part.n_online for n in sweep],
                               [table["full"] - table[M.sweep_arm(n)] for n in sweep], label=model)
        axes[1].axhline(SAME_ACCURACY, color="black", linestyle=":", linewidth=1, label="1 point")
        axes[1].set(xscale="log", xlabel="n_off x n_on (blocks)", ylabel="full minus Corgi^2 test accuracy")
        axes[1].legend(fontsize=7)
    out[f"{part_name}_sweep"] = Figure(
        f"Left: block homogeneity after one offline pass against n_off (sorted h = {h:.0f}), mean over passes with "
        f"95% bootstrap intervals, beside the paper's formula. Right: full-shuffle minus Corgi^2 test accuracy "
        f"against n_off x n_on (blocks of {part.records_per_shard}), mean over {cfg.n_seeds} seeds.", fig)
    return out


def figures(run) -> dict[str, Figure]:
    cfg: Config = run.config
    out = {}
    for part in cfg.parts:
        out.update(_part_figures(run, cfg, part))
    return out
