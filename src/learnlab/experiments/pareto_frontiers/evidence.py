"""Readers and claims of pareto-frontiers, declared from the config, measured on a stored run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity, wilson_interval
from learnlab.experiments.pareto_frontiers import schema as M
from learnlab.experiments.pareto_frontiers.config import Config, frontier_grid
from learnlab.probes.curves import first_step
from learnlab.results import StoredRun

__all__ = ["claims", "FrontierPoint", "frontier_table", "point", "grokking_traces", "tabular_table",
           "lottery_neurons", "LOTTERY_SCOPE"]

# The paper's smallest width in Figure 2 (r = 10^3 at n = 100, k = 3, s = 2) expects
# 10^3 * C(3, 2) / C(100, 2) = 0.61 neurons whose s nonzero weights all lie on the support.
LOTTERY_SCOPE = 0.5


def lottery_neurons(width: int, n: int, k: int, s: int) -> float:
    """Expected number of neurons whose s nonzero input weights all fall on the support."""
    return width * math.comb(k, s) / math.comb(n, s) if s <= k else 0.0


@dataclass(frozen=True)
class FrontierPoint:
    width: int
    init: str
    m: int
    successes: int
    trials: int
    low: float  # Wilson 95% interval of the success probability
    high: float
    steps: np.ndarray  # steps to success of the successful runs

    @property
    def probability(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")


def _outcomes(run: StoredRun, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Success (0/1) and steps to success (NaN: never) per replica of one width."""
    return (run.over_seeds(M.frontier_metric(width, M.SUCCESS)),
            run.over_seeds(M.frontier_metric(width, M.SUCCESS_STEP)))


def frontier_table(run: StoredRun) -> list[FrontierPoint]:
    """Success probability (with its interval) and steps to success at every (width, init, m)."""
    cfg, grid, points = run.config, frontier_grid(run.config), []
    for width in cfg.widths:
        if not run.has(M.frontier_metric(width, M.SUCCESS)):
            continue
        success, steps = _outcomes(run, width)
        for init in cfg.inits:
            for m in cfg.sample_sizes:
                index = [i for i, (g_init, g_m, _) in enumerate(grid) if g_init == init and g_m == m]
                hits = int(np.nansum(success[index]))
                low, high = wilson_interval(hits, len(index))
                won = steps[index][success[index] > 0]
                points.append(FrontierPoint(width, init, m, hits, len(index), low, high, won[np.isfinite(won)]))
    return points


def point(points: list[FrontierPoint], width: int, init: str, m: int) -> FrontierPoint | None:
    return next((p for p in points if (p.width, p.init, p.m) == (width, init, m)), None)


def grokking_traces(run: StoredRun, width: int) -> dict[int, tuple[float, float]]:
    """replica -> (step train accuracy first reached 100%, step of success), for every run
    that reached both."""
    train_name, test_name = M.frontier_metric(width, M.TRAIN_ACC), M.frontier_metric(width, M.TEST_ERROR)
    train, test = np.atleast_2d(run.values(train_name).T).T, np.atleast_2d(run.values(test_name).T).T
    train_steps, test_steps = run.steps(train_name), run.steps(test_name)
    target, out = run.config.task.target_error, {}
    for s in range(train.shape[1]):
        fitted = first_step(train_steps, train[:, s] >= 1.0)
        solved = first_step(test_steps, test[:, s] <= target)
        if np.isfinite(fitted) and np.isfinite(solved):
            out[s] = (fitted, solved)
    return out


def is_grokking(fitted: float, solved: float) -> bool:
    """Generalised at least twice as late as it fit the training set, and >= 500 steps later."""
    return solved >= 2 * fitted and solved - fitted >= 500


def tabular_table(run: StoredRun) -> dict[str, dict[str, np.ndarray]]:
    """data set -> model -> accuracy (fractions, trials); models: the forests and each MLP variant."""
    cfg, tab = run.config, run.config.tabular
    n_fractions, n_trials = len(tab.fractions), tab.n_trials
    out: dict[str, dict[str, np.ndarray]] = {}
    for source in tab.datasets if "tabular" in cfg.parts else ():
        name = M.dataset_name(source)
        models = {}
        for forest in ("random_forest", "gradient_boosting"):
            if run.has(M.forest_metric(name, forest)):
                models[forest] = run.over_seeds(M.forest_metric(name, forest)).reshape(n_fractions, n_trials)
        for width in tab.widths:
            for depth in tab.depths:
                metric = f"{M.mlp_scope(name, width, depth)}/{M.TEST_ACC}"
                if not run.has(metric):
                    continue
                per_sparsity = run.over_seeds(metric).reshape(len(tab.sparsities), n_fractions, n_trials)
                for s, accuracy in zip(tab.sparsities, per_sparsity):
                    models[f"mlp w{width} d{depth} " + (f"sparse s={s}" if s else "dense")] = accuracy
        out[name] = models
    return out


# ----------------------------------------------------------------------------- claims


def claims(cfg: Config) -> list[Reproduction | Sanity]:
    out: list[Reproduction | Sanity] = []
    if "frontier" in cfg.parts:
        out += _frontier_claims(cfg)
    if "tabular" in cfg.parts and any(s > 0 for s in cfg.tabular.sparsities):
        out.append(_tabular_claim(cfg))
    return out


def _paired(cfg: Config, width: int, run: StoredRun, m: int | None = None):
    """(dense, sparse) success and steps of one width, each (n_sizes, n_trials) or (n_trials,) at m."""
    success, steps = _outcomes(run, width)
    shape = (len(cfg.inits), len(cfg.sample_sizes), cfg.n_trials)
    success, steps = success.reshape(shape), steps.reshape(shape)
    dense, sparse = cfg.inits.index("dense"), cfg.inits.index("sparse")
    if m is not None:
        j = cfg.sample_sizes.index(m)
        return success[dense, j], success[sparse, j], steps[dense, j], steps[sparse, j]
    return success[dense], success[sparse], steps[dense], steps[sparse]


def _frontier_claims(cfg: Config) -> list[Reproduction | Sanity]:
    n, k, s = cfg.task.n_bits, cfg.task.k, cfg.sparsity
    in_scope = [w for w in cfg.widths if lottery_neurons(w, n, k, s) >= LOTTERY_SCOPE]
    out: list[Reproduction | Sanity] = []

    def success_identity(run: StoredRun) -> Measurement:
        gaps = [np.abs(run.over_seeds(M.frontier_metric(w, M.SUCCESS))
                       - (run.over_seeds(M.frontier_metric(w, M.FINAL_TEST_ERROR)) <= cfg.task.target_error))
                for w in cfg.widths]
        return Measurement(np.concatenate(gaps), "success against final test error <= target, every run")

    out.append(Sanity("success-is-final-error", "A run's success is its final error on all held-out samples "
                      f"being <= {cfg.task.target_error}.", statistic="|success - [final error <= target]| per run",
                      threshold=0.0, side="==", measure=success_identity))

    if {"dense", "sparse"} <= set(cfg.inits):
        def sparse_wins(run: StoredRun) -> Measurement:
            if not in_scope:
                raise NotMeasured(f"no width with >= {LOTTERY_SCOPE} expected lottery neurons")
            wins, text = [], []
            for w in in_scope:
                dense, sparse, _, _ = _paired(cfg, w, run)
                discordant = dense != sparse  # pairs where exactly one init succeeded
                wins.append(sparse[discordant])
                text.append(f"r={w}: sparse {sparse.mean():.2f} vs dense {dense.mean():.2f}")
            wins = np.concatenate(wins)
            if not len(wins):
                raise NotMeasured("in every pair both inits succeeded or both failed")
            return Measurement(wins, "; ".join(text) + f" (success over all m); {int(wins.sum())} of {len(wins)} "
                                     "discordant pairs won by sparse")

        out.append(Reproduction(
            "sparse-init-helps", "Sparse initialisation is more sample-efficient than dense at the widths where a "
            "lottery-ticket neuron is likely: when only one init of a pair succeeds, it is the sparse one.",
            source="Sec. 4, Fig. 2", statistic=f"fraction of discordant (m, trial) pairs won by sparse init, at widths "
            f"expecting >= {LOTTERY_SCOPE} neurons with all s nonzeros on the support "
            f"(here {', '.join(map(str, in_scope)) or 'none'})", threshold=0.5, side=">=", unit="runs",
            interval="wilson", threshold_source="paper Fig. 2: the sparse-init frontier lies at fewer samples than "
            "the dense one at every width shown (10^3 to 10^5 at n = 100, >= 0.6 expected lottery neurons); a pair "
            "is won by sparse more often than not (> 0.5)", measure=sparse_wins))

        widest = max(cfg.widths)
        m_steps = 1000 if 1000 in cfg.sample_sizes else max(cfg.sample_sizes)

        def faster(run: StoredRun) -> Measurement:
            _, _, dense, sparse = _paired(cfg, widest, run, m_steps)
            dense, sparse = np.where(np.isnan(dense), np.inf, dense), np.where(np.isnan(sparse), np.inf, sparse)
            decided = np.isfinite(dense) | np.isfinite(sparse)
            if not decided.any():
                raise NotMeasured(f"no run succeeded at width {widest}, m = {m_steps}")
            wins = (sparse[decided] < dense[decided]).astype(float)
            return Measurement(wins, f"width {widest}, m = {m_steps}: median steps sparse {np.median(sparse):.0f}, "
                                     f"dense {np.median(dense):.0f} (inf: most failed)")

        out.append(Reproduction(
            "sparse-fewer-steps", f"At m = {m_steps} sparse init reaches success in fewer steps than dense init.",
            source="Sec. 4 (data vs. compute)", statistic=f"fraction of trials (width {widest}) where the sparse run "
            "succeeds sooner than its dense pair (a failure counts as never)", threshold=0.5, side=">=", unit="runs",
            interval="wilson", threshold_source="paper Sec. 4: sparse init needs less compute for the same data; "
            "0.5 is the weakest reading ('more often than not')", measure=faster))

    if len(cfg.widths) >= 3:
        widths = sorted(cfg.widths)
        log_widths = np.log2(widths)

        def width_trend(run: StoredRun) -> Measurement:
            success = np.stack([_outcomes(run, w)[0] for w in widths])  # (W, S)
            centred = log_widths - log_widths.mean()
            varies = success.min(axis=0) != success.max(axis=0)  # runs whose outcome depends on the width
            if not varies.any():
                raise NotMeasured("no (init, m, trial) changes outcome across widths")
            slopes = centred @ (success[:, varies] - success[:, varies].mean(axis=0)) / (centred @ centred)
            means = ", ".join(f"r={w}: {success[i].mean():.2f}" for i, w in enumerate(widths))
            return Measurement(slopes, f"success over all (init, m, trial): {means}")

        out.append(Reproduction(
            "width-helps", "Width is parallel search: at fixed m and init, success rises with width.",
            source="Sec. 4, Fig. 2", statistic=f"least-squares slope of success against log2 width over {widths}, "
            "per (init, m, trial) whose outcome changes with width", threshold=0.0, side=">=", unit="runs", interval="bootstrap",
            threshold_source="paper Fig. 2: at a fixed m, success probability grows with width (slope > 0)",
            measure=width_trend))

    def grokking(run: StoredRun) -> Measurement:
        flags = []
        for width in cfg.widths:
            success, _ = _outcomes(run, width)
            traces = grokking_traces(run, width)
            grid = frontier_grid(cfg)
            for init in cfg.inits:
                for m in cfg.sample_sizes:
                    index = [i for i, (g_init, g_m, _) in enumerate(grid) if g_init == init and g_m == m]
                    if 0 < success[index].mean() < 1:  # a cell near the frontier
                        flags += [float(is_grokking(*traces[i])) for i in index if success[i] > 0 and i in traces]
        if not flags:
            raise NotMeasured("no (width, init, m) cell lies near the frontier (success strictly between 0 and 1)")
        return Measurement(flags, f"{int(sum(flags))} of {len(flags)} successful runs in near-frontier cells")

    out.append(Reproduction(
        "grokking", "Near the frontier, runs fit the training set long before they generalise (grokking).",
        source="Sec. 4 (grokking)", statistic="fraction of successful runs in cells with success strictly between 0 "
        "and 1 that reach the target >= 2x (and >= 500 steps) after training accuracy hits 100%", threshold=0.5,
        side=">=", unit="runs", interval="wilson", threshold_source="paper Sec. 4: near the frontier, successful "
        "runs typically generalise long after fitting the training set; 0.5 reads 'typically'", measure=grokking))
    return out


def _tabular_claim(cfg: Config) -> Reproduction:
    tab = cfg.tabular
    sparsity = max(tab.sparsities)
    label = f"mlp w{max(tab.widths)} d{min(tab.depths)} sparse s={sparsity}"
    small = [i for i, f in enumerate(tab.fractions) if f <= 0.1] or [0]

    def versus_forest(run: StoredRun) -> Measurement:
        diffs, rows = [], []
        for name, models in tabular_table(run).items():
            if "random_forest" not in models or label not in models:
                continue
            for i in small:
                diff = models[label][i] - models["random_forest"][i]
                diffs.append(diff)
                rows.append(f"{name} @ {tab.fractions[i]:g}: {models[label][i].mean():.3f} vs forest "
                            f"{models['random_forest'][i].mean():.3f}")
        if not diffs:
            raise NotMeasured("no tabular set has both the forest and the sparse MLP")
        return Measurement(np.concatenate(diffs), "; ".join(rows))

    return Reproduction(
        "tabular-sparse-mlp", "On small tabular data sets, a wide sparsely-initialised MLP is competitive with a "
        "random forest.", source="Sec. 5", statistic=f"accuracy of the {label} minus the random forest's, paired by "
        "split, at fractions <= 0.1", threshold=0.0, side=">=", unit="splits", interval="bootstrap",
        threshold_source="paper Sec. 5: sparse-init MLPs match or beat forests on small tabular sets (difference >= 0)",
        measure=versus_forest)
