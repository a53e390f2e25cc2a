"""The claims of hidden-progress, declared from the config and measured on a stored run."""

from __future__ import annotations

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.hidden_progress import schema as M
from learnlab.experiments.hidden_progress.config import Config, scaling_learners
from learnlab.probes.curves import first_step, loglog_slope, phase_transition
from learnlab.results import StoredRun

__all__ = ["claims", "convergence_steps", "median_t_c", "scaling_table", "REFERENCE_T_C", "LEFT_CHANCE"]

# Chance accuracy is 0.5; with 2^13 validation samples its standard deviation is ~0.006.
LEFT_CHANCE = 0.55
# A memoryless learner (random search: t_c geometric) converges within a quarter of its
# median time with probability 1 - 2^(-1/4).
MEMORYLESS_QUARTER = 1 - 2 ** (-0.25)

# Median t_c of reference runs (batch 32, hinge, no decay): the width-100 ReLU MLP at
# lr 0.1, PolyNet at lr 0.05, a single sine neuron at lr 0.1; (learner, lr, n, k) -> steps.
# Drawn beside the scaling figure, not gated: they are not numbers from the paper.
REFERENCE_T_C = {
    ("mlp", 0.1, 20, 3): 710, ("mlp", 0.1, 30, 3): 1240, ("mlp", 0.1, 40, 3): 1750, ("mlp", 0.1, 50, 3): 2710,
    ("mlp", 0.1, 20, 4): 910, ("polynet", 0.05, 20, 3): 210, ("polynet", 0.05, 40, 3): 280,
    ("neuron", 0.1, 20, 3): 140, ("neuron", 0.1, 40, 3): 250,
}


# ----------------------------------------------------------------------------- readers


def convergence_steps(run: StoredRun, scope: str = "") -> np.ndarray:
    """t_c per seed: the first evaluation at 100% validation accuracy (NaN: never)."""
    name = M.scoped(scope, M.VAL_ACC)
    steps, accuracy = run.steps(name), np.atleast_2d(run.values(name).T).T
    return np.array([first_step(steps, accuracy[:, s] >= 1.0) for s in range(accuracy.shape[1])])


def median_t_c(t_c: np.ndarray) -> float:
    """The median, counting a seed that never converged as later than any that did (NaN
    only when half or more never converged)."""
    median = float(np.median(np.where(np.isnan(t_c), np.inf, t_c)))
    return median if np.isfinite(median) else float("nan")


def scaling_table(run: StoredRun) -> dict[tuple[str, int], tuple[np.ndarray, list[np.ndarray]]]:
    """(learner, k) -> (n values, t_c per seed at each n) of a scaling run."""
    cfg, table = run.config, {}
    for learner, _ in scaling_learners(cfg):
        for k in cfg.scaling_k:
            ns = np.array(cfg.scaling_n, dtype=float)
            table[learner, k] = (ns, [convergence_steps(run, M.sweep_scope(learner, int(n), k)) for n in ns])
    return table


# ----------------------------------------------------------------------------- claims


def claims(cfg: Config) -> list[Reproduction | Sanity]:
    if cfg.scaling_n:
        return _scaling_claims(cfg)
    out = [*_main_claims(cfg)]
    if cfg.learner != "transformer":
        out += _weight_claims(cfg)
    if M.INIT_ONLY in cfg.controls and M.DATA_ONLY in cfg.controls:
        out += _luck_claims()
    return out


def _main_claims(cfg: Config) -> list[Reproduction | Sanity]:
    def abrupt(run: StoredRun) -> Measurement:
        t_c = convergence_steps(run)
        steps, loss = run.steps(M.TRAIN_LOSS), np.atleast_2d(run.values(M.TRAIN_LOSS).T).T
        flags, plateaus, drops = [], [], []
        for s, t in enumerate(t_c):
            if not np.isfinite(t):
                flags.append(0.0)  # no transition seen within the cap
                continue
            plateau_end, near_zero = phase_transition(steps, loss[:, s])
            plateaus.append(plateau_end / t), drops.append((near_zero - plateau_end) / t)
            flags.append(float(plateau_end >= 0.5 * t and near_zero - plateau_end <= 0.5 * t))
        return Measurement(flags, f"{int(sum(flags))} of {len(flags)} seeds; median plateau end "
                                  f"{np.nanmedian(plateaus) if plateaus else np.nan:.2f} t_c, median drop "
                                  f"{np.nanmedian(drops) if drops else np.nan:.2f} t_c")

    def converge(run: StoredRun) -> Measurement:
        t_c = convergence_steps(run)
        return Measurement(np.isfinite(t_c).astype(float), f"{int(np.isfinite(t_c).sum())} of {len(t_c)} seeds "
                           f"by step {cfg.train.max_steps}; median t_c {median_t_c(t_c):.0f}")

    return [
        Reproduction(
            "abrupt-transition", "The loss stays on a plateau until at least half of t_c, then falls to near zero "
            "within about half of t_c more (a phase transition).", source="Sec. 4, Fig. 1 (left)",
            statistic="fraction of seeds whose loss stays >= 0.9 L_0 until >= 0.5 t_c and reaches <= 0.1 L_0 "
                      "within 0.5 t_c after", threshold=0.5, side=">=", unit="seeds", interval="wilson",
            threshold_source="paper Fig. 1: every run shown plateaus, then drops sharply near t_c; 0.5 is the "
                             "weakest reading ('most runs')", measure=abrupt),
        Reproduction(
            "seeds-converge", "SGD on the learner reaches 100% validation accuracy within the step cap.",
            source="Sec. 4, Fig. 1", statistic="fraction of seeds with 100% accuracy on 2^13 validation samples",
            threshold=0.8, side=">=", unit="seeds", interval="wilson",
            threshold_source="paper Fig. 1: every seed shown converges; 0.8 allows a few slow seeds",
            measure=converge),
    ]


def _weight_claims(cfg: Config) -> list[Reproduction | Sanity]:
    def grows_under_flat_loss(run: StoredRun) -> Measurement:
        steps, growth = run.steps(M.TOP_NEURONS_SUPPORT_GROWTH), np.atleast_2d(run.values(M.TOP_NEURONS_SUPPORT_GROWTH).T).T
        acc_steps, accuracy = run.steps(M.VAL_ACC), np.atleast_2d(run.values(M.VAL_ACC).T).T
        separated_steps = run.steps(M.TOP_NEURONS_SEPARATED)
        separated = np.atleast_2d(run.values(M.TOP_NEURONS_SEPARATED).T).T
        t_c, values, separation_ratios = convergence_steps(run), [], []
        for s in range(growth.shape[1]):
            left_chance = first_step(acc_steps, accuracy[:, s] >= LEFT_CHANCE)
            if not np.isfinite(left_chance):
                continue  # never left chance: no flat phase to look inside
            # Halfway through the flat phase: the loss and the accuracy show nothing yet.
            halfway = np.flatnonzero((steps > 0) & (steps <= left_chance / 2))
            if len(halfway):
                values.append(growth[halfway[-1], s])
            done = first_step(separated_steps, separated[:, s] > 0.5)
            if np.isfinite(done) and np.isfinite(t_c[s]):
                separation_ratios.append(done / t_c[s])
        if not values:
            raise NotMeasured("no seed's accuracy left chance after its first evaluation")
        return Measurement(values, f"{sum(v > 0 for v in values)} of {len(values)} seeds grew; complete separation "
                                   f"(support mean above the off-support max) came at a median "
                                   f"{np.median(separation_ratios) if separation_ratios else np.nan:.2f} t_c")

    def drift(run: StoredRun) -> Measurement:
        true_name, control_name = M.WEIGHT_MOVEMENT, M.scoped(M.RANDOM_LABELS, M.WEIGHT_MOVEMENT)
        steps, movement = run.steps(true_name), np.atleast_2d(run.values(true_name).T).T
        control_steps, control = run.steps(control_name), np.atleast_2d(run.values(control_name).T).T
        # Both fitted over the same window: up to the median end of the loss plateau.
        loss_steps, loss = run.steps(M.TRAIN_LOSS), np.atleast_2d(run.values(M.TRAIN_LOSS).T).T
        ends = [phase_transition(loss_steps, loss[:, s])[0] for s in range(loss.shape[1])]
        horizon = np.nanmedian(ends) if np.isfinite(ends).any() else control_steps.max()
        horizon = min(horizon, control_steps.max())
        window, control_window = (steps > 0) & (steps <= horizon), (control_steps > 0) & (control_steps <= horizon)
        true = np.array([loglog_slope(steps[window], movement[window, s]) for s in range(movement.shape[1])])
        random = np.array([loglog_slope(control_steps[control_window], control[control_window, s])
                           for s in range(control.shape[1])])
        paired = min(len(true), len(random))
        return Measurement(true[:paired] - random[:paired], f"log-log slope of rho_t up to step {horizon:.0f}: true "
                           f"labels {np.nanmedian(true):.2f}, random labels {np.nanmedian(random):.2f} (medians)")

    def starts_at_zero(run: StoredRun) -> Measurement:
        values = [np.atleast_1d(run.at(name, 0)) for name in (M.WEIGHT_MOVEMENT, M.scoped(M.RANDOM_LABELS, M.WEIGHT_MOVEMENT))
                  if run.has(name)]
        return Measurement(np.concatenate(values), "rho_0 on every seed")

    out: list[Reproduction | Sanity] = [
        Reproduction(
            "support-grows-under-flat-loss", "Hidden progress: SGD amplifies the sparse solution while loss and error "
            "are flat: in the neurons that end up carrying the parity, the weights on the k support coordinates grow "
            "relative to the others well before the accuracy leaves chance.",
            source="abstract ('continual progress that is invisible to loss and error metrics'); Sec. 4.2",
            statistic=f"log(share_t / share_0) at half the step where validation accuracy first reaches {LEFT_CHANCE}, "
                      f"share = mean |w| on S / mean |w| off S, averaged over the top {cfg.top_neurons:.0%} neurons "
                      "(largest final |readout|); mean over seeds", threshold=0.0, side=">=", unit="seeds",
            interval="bootstrap", threshold_source="theory: without hidden progress (a search that 'stumbles in the "
            "dark') nothing singles out S before the transition, so the share keeps its initial value (log ratio 0)",
            measure=grows_under_flat_loss),
        Sanity("movement-starts-at-zero", "rho_t = max|W_t - W_0| is measured from the initial weights: rho_0 = 0.",
               statistic="rho_0 per seed", threshold=0.0, side="==", tolerance=1e-7, measure=starts_at_zero),
    ]
    if M.RANDOM_LABELS in cfg.controls:
        out.insert(1, Reproduction(
            "drift-vs-random-walk", "Hidden progress is drift, not a random walk: under the flat loss, rho_t grows "
            "faster on true labels than on random labels.", source="Sec. 4.2",
            statistic="log-log slope of rho_t (true labels) minus that of the random-label control, paired by seed, "
                      "over the flat-loss window", threshold=0.0, side=">=", unit="seeds", interval="bootstrap",
            threshold_source="theory: drift grows like t (slope 1), a random walk like sqrt t (slope 1/2); the "
                             "statement is that true labels outgrow the control (difference > 0)", measure=drift))
    if cfg.learner == "mlp" and cfg.model.activation == "relu":
        out.append(Sanity(
            "unit-init-fourier-gap", "At the all-ones initialisation the population gradient favours the support: "
            "gamma = |g^(k-1)| - |g^(k+1)| > 0 for g = 1[sum x > 0] (exact; zero when n and k are both odd).",
            statistic="gamma(n, k)", threshold=1e-12, side=">=",
            measure=lambda run: Measurement([run.last(M.UNIT_INIT_FOURIER_GAP)],
                                            f"gamma({cfg.task.n_bits}, {cfg.task.k}) = {run.last(M.UNIT_INIT_FOURIER_GAP):.3g}")))
    return out


def _luck_claims() -> list[Reproduction]:
    def lucky(run: StoredRun) -> Measurement:
        t_c = convergence_steps(run)
        median = median_t_c(t_c)
        if not np.isfinite(median):
            raise NotMeasured("half or more of the seeds never converged")
        return Measurement((t_c <= median / 4).astype(float),
                           f"min t_c {np.nanmin(t_c):.0f}, median {median:.0f} over {len(t_c)} seeds")

    def spread(values: np.ndarray) -> float:  # interquartile range relative to the median
        values = values[np.isfinite(values)]
        return float(np.subtract(*np.percentile(values, [75, 25])) / np.median(values)) if len(values) > 3 else np.nan

    def init_vs_data(run: StoredRun) -> Measurement:
        init, data = convergence_steps(run, M.INIT_ONLY), convergence_steps(run, M.DATA_ONLY)
        ratio = spread(init) / spread(data)
        rng = np.random.default_rng(0)
        draws = [spread(rng.choice(init, len(init))) / spread(rng.choice(data, len(data))) for _ in range(2000)]
        draws = np.asarray(draws)[np.isfinite(draws)]
        return Measurement([ratio], f"relative IQR of t_c: inits varied {spread(init):.2f}, data varied "
                           f"{spread(data):.2f}", standard_error=float(np.std(draws)) if len(draws) > 1 else np.nan)

    return [
        Reproduction(
            "no-lucky-runs", "SGD does not stumble on the answer by luck: few seeds converge in a quarter of the "
            "median time, unlike a memoryless search.", source="Sec. 4 (luck vs. SGD noise)",
            statistic="fraction of seeds with t_c <= median t_c / 4", threshold=MEMORYLESS_QUARTER, side="<=",
            unit="seeds", interval="wilson",
            threshold_source="theory: a memoryless learner (geometric t_c) has P(t_c <= median/4) = 1 - 2^(-1/4) = 0.16",
            measure=lucky),
        Reproduction(
            "init-vs-data", "The spread of t_c comes from the initialisation more than from the data (SGD noise), "
            "at batch 128 and lr 0.01.", source="Sec. 4 (luck vs. SGD noise)",
            statistic="relative IQR of t_c with inits varied / with data varied (bootstrap standard error)",
            threshold=1.0, side=">=", unit="seeds", interval="normal",
            threshold_source="paper: the variance comes mostly from the initialisation (ratio > 1)", measure=init_vs_data),
    ]


def _scaling_claims(cfg: Config) -> list[Reproduction]:
    if not ({3, 4} <= set(cfg.scaling_k) and "mlp" in dict(scaling_learners(cfg)) and len(cfg.scaling_n) >= 2):
        return [Sanity("scaling-sweep-ran", "Every (learner, n, k) point of the sweep logged its t_c.",
                       statistic="points with a t_c per seed", threshold=1.0, side=">=",
                       measure=lambda run: Measurement([float(all(len(t) for _, ts in scaling_table(run).values()
                                                                  for t in ts))]))]

    def steeper(run: StoredRun) -> Measurement:
        table = scaling_table(run)

        def slope(ns, per_n) -> float:
            medians = np.array([median_t_c(t) for t in per_n])
            return loglog_slope(ns, medians) if np.isfinite(medians).all() else np.nan

        (n3, t3), (n4, t4) = table["mlp", 3], table["mlp", 4]
        observed = slope(n4, t4) - slope(n3, t3)
        if not np.isfinite(observed):
            raise NotMeasured("a median t_c was not reached within the cap")
        rng = np.random.default_rng(0)
        draws = np.array([slope(n4, [rng.choice(t, len(t)) for t in t4]) - slope(n3, [rng.choice(t, len(t)) for t in t3])
                          for _ in range(1000)])
        draws = draws[np.isfinite(draws)]
        return Measurement([observed], f"MLP slopes: k=3 {slope(n3, t3):.2f}, k=4 {slope(n4, t4):.2f}",
                           standard_error=float(np.std(draws)) if len(draws) > 1 else np.nan)

    return [Reproduction(
        "scaling-k4-steeper", "t_c ~ n^O(k): the exponent grows with k, so the MLP's log-log slope of median t_c "
        "against n is larger at k = 4 than at k = 3.", source="Sec. 4, Fig. 1 (right)",
        statistic="slope(k=4) - slope(k=3) (bootstrap standard error over seeds)", threshold=0.0, side=">=",
        unit="seeds", interval="normal",
        threshold_source="theory (Sec. 3): n^Omega(k) for statistical-query learners, n^O(k) for SGD; the exponent "
                         "grows with k (difference > 0)", measure=steeper)]
