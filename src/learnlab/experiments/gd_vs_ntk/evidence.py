"""Claims and figures of gd-vs-ntk, read from the stored run (``learnlab.results.StoredRun``).

A run "learns" when its test accuracy reaches ``cfg.target_accuracy`` (0.95: the paper's
"near-perfect accuracy"). Rates are over runs (cells x seeds) with a Wilson interval; the
paper's "GD learns" is read as "a run succeeds with probability above 1/2".
"""

from __future__ import annotations

import math

import numpy as np

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.gd_vs_ntk import schema as names
from learnlab.experiments.gd_vs_ntk.config import Config
from learnlab.figures import Figure, curves_over_seeds, mean_with_interval, new_figure

CHANCE = 0.60   # "near chance": within 0.1 of a coin flip
RATE = 0.5
RATE_SOURCE = "theory: learning with confidence 1 - delta, delta < 1/2 (the PAC convention that boosting needs)"
BINDS = 10.0    # the kernel bound binds where n^k >= 10 N
NOTICEABLE = 3.0  # an edge above 3x its label-permutation noise floor is resolved


# ----------------------------------------------------------------------------- readers


def kernel_curve(run, n: int, k: int) -> dict[int, np.ndarray]:
    """{N: NTK ridge accuracy per seed} at (n, k)."""
    metric = f"{names.kernel_scope(n, k)}/{names.RIDGE_ACC}"
    return {int(step): np.asarray(v) for step, v in zip(run.steps(metric), run.values(metric))}


def network_curve(run, n: int, k: int) -> dict[int, np.ndarray]:
    """{N: final accuracy per seed} of the offline networks at (n, k)."""
    scope = names.network_scope(n, k)
    accuracy, sizes = run.over_seeds(f"{scope}/{names.ACCURACY}"), run.over_seeds(f"{scope}/{names.SAMPLES}")
    return {int(size): accuracy[sizes == size] for size in sorted(set(sizes.tolist()))}


def crossing_samples(sizes, accuracies, target: float) -> float:
    """The N at which accuracy crosses ``target``, interpolated linearly in log N between the
    two grid points around it (NaN when the curve never reaches it)."""
    for i, (size, value) in enumerate(zip(sizes, accuracies)):
        if value >= target:
            if i == 0 or accuracies[i - 1] >= value:
                return float(size)
            fraction = (target - accuracies[i - 1]) / (value - accuracies[i - 1])
            return float(np.exp(np.log(sizes[i - 1]) + fraction * (np.log(size) - np.log(sizes[i - 1]))))
    return float("nan")


def kernel_needs(run, cfg: Config) -> list[tuple[int, float]]:
    """(n, N*) per kernel seed: the sample size where NTK ridge reaches the target."""
    points = []
    for n in cfg.kernel_bits:
        curve = kernel_curve(run, n, cfg.k)
        sizes = sorted(curve)
        for j in range(len(curve[sizes[0]])):
            points.append((n, crossing_samples(sizes, [float(curve[s][j]) for s in sizes], cfg.target_accuracy)))
    return points


def cell(run, index: int) -> dict[str, np.ndarray]:
    """One cell's network accuracy, kernel accuracy (empty where ``kernel_at`` skipped it), edge and floor."""
    scope = names.cell_scope(index)
    return {what: run.over_seeds(f"{scope}/{metric}") if run.has(f"{scope}/{metric}") or what != "kernel"
            else np.zeros(0) for what, metric in
            (("network", names.ACCURACY), ("kernel", names.KERNEL_ACC), ("edge", names.EDGE),
             ("floor", names.EDGE_FLOOR))}


# ----------------------------------------------------------------------------- measures


def _rate(flags, detail: str = "") -> Measurement:
    flags = np.asarray(flags, dtype=np.float64)
    return Measurement(flags, f"{int(flags.sum())} of {len(flags)}" + (f"; {detail}" if detail else ""))


def _binding_cells(cfg: Config):
    return [(i, a, n, k) for i, (a, n, k) in enumerate(cfg.cells) if a > 0 and n**k >= BINDS * cfg.cell_kernel_samples]


def _low_degree_correlation(cfg: Config, alpha: float, n: int, k: int) -> float:
    """alpha^(k - d): how much of the parity a degree-d polynomial carries under D_alpha
    (E[chi_S chi_T] = alpha^|S \\ T| for T inside S), where d = floor(log N / log n) is the
    highest degree a kernel can fit with the cell's N samples (it needs ~n^d)."""
    degree = min(k, int(math.floor(math.log(cfg.cell_kernel_samples) / math.log(n))))
    return abs(alpha) ** (k - degree)


def _kernel_cells(cfg: Config):
    """Binding cells where even a perfect low-degree fit stays within the near-chance band:
    accuracy 1/2 + alpha^(k - d) / 2 <= CHANCE. Elsewhere the kernel beats chance through the
    parity's low-degree correlations under D_alpha, without learning the parity."""
    return [(i, a, n, k) for i, a, n, k in _binding_cells(cfg)
            if 0.5 + _low_degree_correlation(cfg, a, n, k) / 2 <= CHANCE and cfg.has_cell_kernel(i)]


def _cells_measure(run, cells, what: str, transform) -> Measurement:
    if not cells:
        raise NotMeasured("no cell on this side in the config")
    values, parts = [], []
    for index, alpha, n, k in cells:
        row = cell(run, index)[what]
        values += list(transform(row))
        parts.append(f"(a={alpha:g}, n={n}, k={k}): {what} {np.mean(row):.3f}")
    return Measurement(values, "; ".join(parts)) if transform is _identity else _rate(values, "; ".join(parts))


def _identity(values):
    return values


def _exponent(run, cfg: Config) -> Measurement:
    points = [(n, need) for n, need in kernel_needs(run, cfg) if math.isfinite(need)]
    if len({n for n, _ in points}) < 3:
        raise NotMeasured("the kernel reached the target at fewer than 3 values of n")
    from scipy.stats import linregress

    fit = linregress(np.log([n for n, _ in points]), np.log([need for _, need in points]))
    detail = ", ".join(f"n={n}: {need:.0f}" for n, need in points)
    return Measurement([fit.slope], f"N* per seed (log-interpolated): {detail}", standard_error=float(fit.stderr))


def _edge_predicts(run, cfg: Config) -> Measurement:
    flags, parts = [], []
    for index, (alpha, n, k) in enumerate(cfg.cells):
        row = cell(run, index)
        noticeable = row["edge"] > NOTICEABLE * row["floor"]
        flags += list(row["network"][noticeable] >= cfg.target_accuracy)
        parts.append(f"(a={alpha:g}, n={n}, k={k}): {int(noticeable.sum())} noticeable, edge {np.mean(row['edge']):.3f} "
                     f"/ floor {np.mean(row['floor']):.3f}, GD {np.mean(row['network']):.2f}")
    if not flags:
        raise NotMeasured("no run with an edge above 3x its floor")
    return _rate(flags, "; ".join(parts))


def _lazy(run, cfg: Config) -> Measurement:
    """Per lazy cell: |linearised - kernel| - |linearised - network| (means over seeds)."""
    values, parts = [], []
    for index, (alpha, n, k, size) in enumerate(cfg.lazy_cells):
        lazy = float(np.mean(run.over_seeds(f"{names.lazy_scope(index)}/{names.ACCURACY}")))
        if size:
            network = float(np.mean(network_curve(run, n, k).get(size, [np.nan])))
            kernel = float(np.mean(kernel_curve(run, n, k).get(size, [np.nan])))
        else:
            match = [i for i, c in enumerate(cfg.cells) if c == (alpha, n, k)]
            if not match:
                raise NotMeasured(f"no biased cell ({alpha}, {n}, {k}) to compare the linearised model with")
            row = cell(run, match[0])
            if not len(row["kernel"]):
                raise NotMeasured(f"cell ({alpha}, {n}, {k}) fitted no kernel (kernel_at={cfg.kernel_at})")
            network, kernel = float(np.mean(row["network"])), float(np.mean(row["kernel"]))
        values.append(abs(lazy - kernel) - abs(lazy - network))
        parts.append(f"(a={alpha:g}, n={n}, k={k}, N={size or 'online'}): linearised {lazy:.3f}, kernel {kernel:.3f}, "
                     f"network {network:.3f}")
    return Measurement(values, "; ".join(parts))


# ----------------------------------------------------------------------------- claims


def claims(cfg: Config) -> list[Reproduction | Sanity]:
    target, k = cfg.target_accuracy, cfg.k
    binding = _binding_cells(cfg)
    where = ", ".join(f"(alpha={a:g}, n={n}, k={kk})" for _, a, n, kk in binding) or "none"
    kernel_where = ", ".join(f"(alpha={a:g}, n={n}, k={kk})" for _, a, n, kk in _kernel_cells(cfg)) or "none"
    uniform = [(i, a, n, kk) for i, (a, n, kk) in enumerate(cfg.cells)
               if a == 0 and n ** (kk - 1) >= 100 * cfg.online.max_steps]
    uniform_names = ", ".join(f"({n}, {kk})" for _, _, n, kk in uniform) or "none"
    small = [(cfg.sanity[0], k, cfg.sanity[1]), cfg.agreement]
    out: list[Reproduction | Sanity] = [
        Reproduction(
            "network-learns", f"Where the kernel bound binds (n^k >= {BINDS:g} N, N = {cfg.cell_kernel_samples}: "
            f"{where}), SGD on the network learns the parity under the biased distribution D_alpha.",
            source="Sec. 5, Fig. 2: GD on a two-layer ReLU net learns the parity under D_alpha (n = 128, k = 7)",
            statistic=f"fraction of runs (cells x seeds) with accuracy >= {target}", threshold=RATE, side=">=",
            threshold_source=RATE_SOURCE, unit="runs", interval="wilson",
            measure=lambda run: _cells_measure(run, binding, "network", lambda v: v >= target)),
        Reproduction(
            "kernel-near-chance", f"Where the bound binds and the parity's low-degree correlations stay inside the "
            f"near-chance band ({kernel_where}), the tangent kernel at initialisation (ridge, width "
            f"{cfg.kernel.width}, N = {cfg.cell_kernel_samples}) stays near chance.",
            source="Sec. 5, Fig. 2: the best tangent-kernel predictor stays near 0.5",
            statistic="mean NTK ridge test accuracy over runs (cells x kernel seeds)", threshold=CHANCE, side="<=",
            threshold_source="paper Fig. 2: near 0.5 (chance); 0.6 = chance + 0.1", unit="runs",
            measure=lambda run: _cells_measure(run, _kernel_cells(cfg), "kernel", _identity)),
        Reproduction(
            "uniform-within-budget", f"Under the uniform distribution the {uniform_names} parity is learned within "
            f"{cfg.online.max_steps:,} steps by at most a minority of seeds, against the biased case.",
            source="Sec. 5, Fig. 2: without the bias GD does not learn the parity in the same budget",
            statistic=f"fraction of seeds with accuracy >= {target}", threshold=RATE, side="<=",
            threshold_source="theory: SGD needs ~n^(k-1) steps on a uniform k-parity (>= 100x the budget here); a "
                             "lucky seed can learn earlier (Barak et al. 2022), so 'most seeds fail' at rate 1/2",
            unit="seeds", interval="wilson",
            measure=lambda run: _cells_measure(run, uniform, "network", lambda v: v >= target)),
        Reproduction(
            "edge-predicts-gd", "Where the first-step tangent-kernel edge is noticeable (above 3x its label-permutation "
            "floor), GD learns; an edge at the floor is not counted (the theorem allows small edges).",
            source="Sec. 4: a noticeable first-step edge implies that GD learns",
            statistic=f"fraction of runs with edge > {NOTICEABLE:g}x floor that reach {target}", threshold=RATE,
            side=">=", threshold_source=RATE_SOURCE, unit="runs", interval="wilson",
            measure=lambda run: _edge_predicts(run, cfg)),
    ]
    if "scaling" in cfg.parts:
        out += [
            Reproduction(
                "kernel-exponent", f"The tangent kernel's sample need for the {k}-sparse parity grows like n^k: the "
                f"log-log slope of N* (accuracy {target}) against n over {list(cfg.kernel_bits)} is at least k - 1.",
                source="Sec. 3: kernel predictors in the tangent kernel need ~n^k samples for a k-sparse parity",
                statistic="least-squares slope of log N* on log n (points: n x kernel seed)", threshold=k - 1,
                side=">=", threshold_source=f"theory: a lower bound of order n^k; k - 1 = {k - 1} leaves room for the "
                "lower-order terms at small n", unit="runs", interval="normal", measure=lambda run: _exponent(run, cfg)),
            Reproduction(
                "kernel-learns-small", f"Where N >= n^k the kernel learns: the ({cfg.sanity[0]}, {k}) parity from "
                f"N = {cfg.sanity[1]} and the ({cfg.agreement[0]}, {cfg.agreement[1]}) parity from N = {cfg.agreement[2]}.",
                source="Sec. 3: kernel methods learn degree-k targets from ~n^k samples",
                statistic=f"fraction of runs (points x kernel seeds) with accuracy >= {target}", threshold=RATE,
                side=">=", threshold_source=RATE_SOURCE, unit="runs", interval="wilson",
                measure=lambda run: _rate(run.values(f"{names.KERNEL_CHECKS}/{names.RIDGE_ACC}").ravel() >= target,
                                          ", ".join(f"(n={n}, k={kk}, N={s})" for n, kk, s in small))),
        ]
    if "lazy" in cfg.parts and cfg.lazy_cells:
        out.append(Sanity(
            "lazy-like-kernel", "The linearised network f(w0) + <w - w0, grad f(w0)>, trained exactly as the network, "
            "ends nearer the kernel's accuracy than the network's: it is a kernel predictor by construction.",
            statistic="|linearised - kernel| - |linearised - network| per cell", threshold=0.0, side="<=",
            measure=lambda run: _lazy(run, cfg)))
    return out


# ----------------------------------------------------------------------------- figures


def figures(run) -> dict[str, Figure]:
    cfg: Config = run.config
    out: dict[str, Figure] = {}
    k = cfg.k
    if "scaling" in cfg.parts:
        fig, axes = new_figure(2, width=4.4)
        ax = axes[0]
        for n in cfg.kernel_bits:
            curve = kernel_curve(run, n, k)
            mean_with_interval(ax, list(curve), list(curve.values()), label=f"NTK ridge, n={n}", marker="s")
        for n in cfg.network_bits:
            curve = network_curve(run, n, k)
            mean_with_interval(ax, list(curve), list(curve.values()), label=f"network, n={n}")
        ax.axhline(cfg.target_accuracy, color="gray", lw=0.8)
        ax.set(xscale="log", xlabel="training samples N", ylabel="test accuracy")
        ax.legend(fontsize=6, ncol=2)
        ax = axes[1]
        points = [(n, need) for n, need in kernel_needs(run, cfg) if math.isfinite(need)]
        if points:
            ns = np.array([n for n, _ in points], dtype=float)
            needs = np.array([need for _, need in points])
            ax.scatter(ns, needs, s=14, label="NTK ridge N* (per seed)")
            grid = np.geomspace(ns.min(), ns.max(), 50)
            anchor = np.exp(np.mean(np.log(needs)) - k * np.mean(np.log(ns)))
            ax.plot(grid, anchor * grid**k, "k--", lw=1, label=f"slope k = {k} (theory)")
            ax.plot(grid, anchor * grid ** (k - 1) * np.exp(np.mean(np.log(ns))), "k:", lw=1,
                    label=f"slope k - 1 = {k - 1} (claim's bound)")
        ax.set(xscale="log", yscale="log", xlabel="input bits n", ylabel=f"samples N* to reach {cfg.target_accuracy}")
        ax.legend(fontsize=6)
        out["kernel_scaling"] = Figure(
            f"Left: test accuracy of NTK ridge regression (width {cfg.kernel.width}) against N for the {k}-sparse parity, "
            "mean over kernel seeds with 95% intervals. Right: the sample size each seed needs against n on log-log "
            f"axes, with slopes k and k - 1 for reference.", fig)

    cells = [(i, a, n, kk) for i, (a, n, kk) in enumerate(cfg.cells) if run.has(f"{names.cell_scope(i)}/{names.EDGE}")]
    if cells:
        n_big = max(n for _, _, n, _ in cells)
        fig, (ax,) = new_figure(width=5.4)
        for index, alpha, n, kk in cells:
            if n != n_big:
                continue
            metric = f"{names.cell_scope(index)}/{names.ACCURACY}"
            curves_over_seeds(ax, run.steps(metric), run.values(metric), label=f"GD, alpha={alpha:g}")
            if not len(cell(run, index)["kernel"]):
                continue
            ax.axhline(float(np.mean(cell(run, index)["kernel"])), ls=":", lw=1, color=ax.lines[-1].get_color(),
                       label=f"NTK ridge (N = {cfg.cell_kernel_samples}), alpha={alpha:g}")
        ax.set(xlabel="SGD step", ylabel="test accuracy", ylim=(0.4, 1.02))
        ax.legend(fontsize=6)
        out["biased_parity_curves"] = Figure(
            f"Test accuracy of the network against SGD steps on the ({n_big}, k) parity under D_alpha, median over "
            f"{cfg.n_seeds} seeds (band: range); dotted: NTK ridge accuracy at the same n.", fig)

        fig, (ax,) = new_figure(width=5.4)
        for index, alpha, n, kk in cells:
            row = cell(run, index)
            ratio = row["edge"] / np.maximum(row["floor"], 1e-12)
            ax.scatter(ratio, row["network"], s=12, label=f"alpha={alpha:g}, n={n}, k={kk}")
        ax.axvline(NOTICEABLE, color="gray", lw=0.8, ls="--", label=f"{NOTICEABLE:g}x floor")
        ax.axhline(cfg.target_accuracy, color="gray", lw=0.8)
        ax.set(xscale="symlog", xlabel="first-step edge / noise floor", ylabel="GD final accuracy")
        ax.legend(fontsize=6)
        out["edge_vs_success"] = Figure(
            "The first-step tangent-kernel edge (over its label-permutation noise floor) against GD's final accuracy, "
            "one point per seed and cell.", fig)
    return out
