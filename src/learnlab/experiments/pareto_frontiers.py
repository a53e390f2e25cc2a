"""Pareto frontiers: data, compute, width and luck in offline sparse-parity learning.

Paper: Edelman, Goel, Kakade, Malach, Zhang, "Pareto Frontiers in Neural Feature
Learning: Data, Compute, Width, and Luck", NeurIPS 2023 (arXiv 2309.03800).

Setting (Section 4): an (n, k)-sparse parity with a fixed training set of m samples,
a two-layer ReLU MLP of width r, multi-pass minibatch SGD (lr 0.1, weight decay 0.01,
batch 32, hinge loss, at most T steps). A run succeeds when its error on 10^4 held-out
samples is at most 10%. Each hidden neuron starts dense, or sparse: s = 2 nonzero input
weights on random coordinates (a "lottery ticket" when they fall in the support), then
trains as a normal dense layer. Every (init, m, trial) of one width trains as one
stacked ensemble; a run that succeeds stops (its weights are frozen) and the ensemble
ends when all have stopped or at T.

Section 5: MLPs (width, depth 1-3, sparse s in {2, 4} or dense first layer) against a
random forest and histogram gradient boosting on small tabular sets that ship with
scikit-learn (or a CSV/ARFF file of your own), each downsampled to a grid of fractions.

Presets
-------
``quick``     n=40, k=3, m in {250, 500, 1000, 2000}, widths 10 and 100, dense vs sparse,
              16 trials each, T = 10^4; plus the tabular comparison on breast cancer, wine
              and a generated set: ``learnlab run pareto-frontiers --preset quick``, about
              3 minutes on 2 cores.
``frontier``  the (r, m) heat map: widths 10-300 x 7 sample sizes x 16 runs (7 minutes on 2 cores).
``tabular``   the full tabular grid: 5 sets x 5 fractions x 20 trials, widths 128/1024,
              depths 1-3, dense / s=2 / s=4.
``paper``     n=100, k=3, widths 10^3 and 10^4, m up to 6,000 (Figure 2; a GPU job).
``smoke``     seconds; used by the tests.

Paper reference (n=100, k=3, the m where success first reaches 50%): width 10^5 dense
~2,400, sparse ~1,400; width 10^3 dense ~4,000, sparse ~3,000.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from learnlab.claims import Claim
from learnlab.config import Interval, param
from learnlab.train.parity_train import ParityTrainConfig
from learnlab.models.deep_mlp import DeepMLP, DeepMLPConfig
from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.probes.curves import binomial_interval, first_step
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.sparse_parity import sample_sparse_parity, sparse_parity_support, sq_frontier_samples
from learnlab.tasks.tabular import BUNDLED, load_dataset, standardize, trial_split
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import margin_losses, replica_accuracy, sign_accuracy
from learnlab.train.optim import TrainConfig

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "pareto-frontiers"
DESCRIPTION = "Edelman et al. 2023: offline sparse parity success vs width x samples, sparse init, tabular vs forests"

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class OfflineParityConfig:
    n_bits: int = param(40, Interval(1, 1024), help="input dimension n")
    k: int = param(3, Interval(1, "n_bits"), help="parity degree k")
    n_test: int = param(10_000, Interval(1, None), help="held-out samples that decide success")
    n_monitor: int = param(2048, Interval(1, None), help="the first test samples, read every eval to stop early")
    n_train_monitor: int = param(2048, Interval(1, None),
                                 help="training accuracy is read on the first this-many samples of each set")
    target_error: float = param(0.1, Interval(0.0, 0.5), help="success: test error <= this")
    stop_error: float = param(0.05, Interval(0.0, "target_error"),
                              help="a run stops early once its monitored error is <= this (below the target, so "
                                   "a stopped run is past its drop, not on the edge of success)")


@dataclass(frozen=True)
class TabularConfig:
    datasets: tuple[str, ...] = param(("breast_cancer", "wine", "classification"),
                                      help="bundled names (breast_cancer, wine, digits, iris, classification, "
                                           "parity) or paths to .csv / .arff files")
    target: str | None = param(None, help="label column of user files (default: the last)")
    fractions: tuple[float, ...] = param((0.05, 0.1, 0.25, 0.5), Interval(0.0, 1.0, closed="right"),
                                         help="fractions of the training pool used")
    n_trials: int = param(20, Interval(1, 1000), help="random splits per (set, fraction)")
    test_fraction: float = param(0.3, Interval(0.0, 1.0, closed="neither"))
    widths: tuple[int, ...] = param((512,), Interval(1, None))
    depths: tuple[int, ...] = param((1,), Interval(1, 8))
    sparsities: tuple[int, ...] = param((0, 2), Interval(0, None),
                                        help="first-layer nonzeros per neuron (capped at the set's features); 0: dense")
    train: TrainConfig = TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-2, batch_size=64, max_steps=500,
                                     eval_every=500, log_every=50)
    forest_trees: int = param(100, Interval(1, None), help="trees of the random forest")


@dataclass(frozen=True)
class ParetoConfig:
    seed: int = param(0, Interval(0, None))
    parts: tuple[str, ...] = param(("frontier", "tabular"), help="frontier: offline sparse parity; tabular: Sec. 5")
    n_trials: int = param(16, Interval(1, 4096), help="runs R per (width, m, init) point")
    task: OfflineParityConfig = OfflineParityConfig()
    sample_sizes: tuple[int, ...] = param((250, 500, 1000, 2000), Interval(1, None), help="training set sizes m")
    widths: tuple[int, ...] = param((10, 100), Interval(1, None), help="MLP widths r, one ensemble each")
    inits: tuple[str, ...] = param(("dense", "sparse"), help="first-layer initialisations compared")
    sparsity: int = param(2, Interval(1, None), help="s: nonzero input weights per neuron at a sparse init")
    model: MLPConfig = MLPConfig()
    train: ParityTrainConfig = ParityTrainConfig(lr=0.1, weight_decay=0.01, batch_size=32, max_steps=10_000,
                                                 eval_every=100, log_every=100)
    tabular: TabularConfig = TabularConfig()

    def check(self) -> str | None:
        if not self.parts or set(self.parts) - {"frontier", "tabular"}:
            return "'parts' entries must be among frontier, tabular (at least one)"
        if not self.inits or set(self.inits) - {"dense", "sparse"}:
            return "'inits' entries must be among dense, sparse (at least one)"
        if self.sparsity > self.task.n_bits:
            return f"'sparsity' must be <= task.n_bits={self.task.n_bits}"
        if self.task.n_monitor > self.task.n_test:
            return "'task.n_monitor' must be <= 'task.n_test'"
        for source in self.tabular.datasets if "tabular" in self.parts else ():
            if source not in BUNDLED and not (source.endswith((".csv", ".arff")) and Path(source).is_file()):
                return (f"'tabular.datasets' entry {source!r} is neither a bundled set ({', '.join(BUNDLED)}) "
                        "nor an existing .csv / .arff file")
        return None


Config = ParetoConfig


def presets() -> dict[str, Config]:
    quick = Config()
    # The (r, m) heat map of the frontier on CPU.
    frontier = replace(quick, parts=("frontier",), widths=(10, 30, 100, 300),
                       sample_sizes=(125, 250, 500, 750, 1000, 1500, 2000))
    tabular = replace(quick, parts=("tabular",), tabular=replace(
        quick.tabular, datasets=("breast_cancer", "wine", "digits", "classification", "parity"),
        fractions=(0.02, 0.05, 0.1, 0.25, 0.5), widths=(128, 1024), depths=(1, 2, 3), sparsities=(0, 2, 4)))
    # Figure 2 at the paper's n = 100 (width 10^5 needs ~10 GB per 64 runs: scale n_trials to the GPU).
    paper = replace(quick, parts=("frontier",), n_trials=32, task=replace(quick.task, n_bits=100),
                    widths=(1000, 10_000), sample_sizes=(1000, 2000, 3000, 4000, 6000),
                    train=replace(quick.train, max_steps=100_000, eval_every=500, log_every=500))
    smoke = replace(quick, n_trials=2, task=OfflineParityConfig(n_bits=8, k=2, n_test=1024, n_monitor=512),
                    sample_sizes=(64, 256), widths=(16,),
                    train=replace(quick.train, max_steps=400, eval_every=50, log_every=50),
                    tabular=replace(quick.tabular, datasets=("wine",), fractions=(0.2, 1.0), n_trials=2, widths=(32,),
                                    forest_trees=10, train=replace(quick.tabular.train, max_steps=50, eval_every=50)))
    return {"smoke": smoke, "quick": quick, "frontier": frontier, "tabular": tabular, "paper": paper}


# ----------------------------------------------------------------------------- the frontier


class SuccessEvaluator:
    """Training accuracy and monitored test error per run; stops a run at its first success.

    Steps to success: the first evaluation at which the monitored test error is at most
    the target. A run whose monitored error falls to ``stop_error`` is frozen (the loop
    leaves its weights as they are); whether a run succeeded is decided at its end (frozen
    or at T) on all ``n_test`` held-out samples.
    """

    def __init__(self, model: TwoLayerMLP, x_train, y_train, train_mask, x_test, y_test, cfg: OfflineParityConfig):
        self.x_train, self.y_train, self.train_mask = x_train, y_train, train_mask  # (S, m_max, n), (S, m_max) x2
        self.x_monitor, self.y_monitor = x_test[:, : cfg.n_monitor], y_test[:, : cfg.n_monitor]
        self.target_error, self.stop_error = cfg.target_error, cfg.stop_error
        self.success_step = torch.full((model.n_replicas,), float("nan"))
        model.register_buffer("replica_frozen", torch.zeros(model.n_replicas, dtype=torch.bool, device=x_test.device))
        self.model = model

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        train_correct = (_outputs(model, self.x_train) * self.y_train > 0).float()
        train_acc = (train_correct * self.train_mask).sum(1) / self.train_mask.sum(1)
        test_error = 1.0 - sign_accuracy(_outputs(model, self.x_monitor), self.y_monitor)
        hit = (test_error <= self.target_error).cpu() & torch.isnan(self.success_step)
        self.success_step[hit] = float(step)
        model.replica_frozen |= test_error <= self.stop_error
        return {"train_acc": train_acc, "test_error": test_error}

    def done(self, step: int) -> bool:
        return bool(self.model.replica_frozen.all())

    def state_dict(self) -> dict[str, Any]:
        return {"success_step": self.success_step}  # the frozen mask is a model buffer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.success_step = state["success_step"].cpu()


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) in chunks of samples, so the (S, chunk, r) hidden layer stays small."""
    width = model.weight.shape[1]
    chunk = max(1, 2**22 // (model.n_replicas * width))
    return torch.cat([model(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)], dim=1)


def run(cfg: Config, run: Run) -> None:
    if "frontier" in cfg.parts:
        for width in cfg.widths:
            _train_frontier(cfg, width, run.scoped(f"w{width}"))
    if "tabular" in cfg.parts:
        for source in cfg.tabular.datasets:
            _tabular(cfg, source, run)


def _frontier_grid(cfg) -> list[tuple[str, int, int]]:
    """(init, m, trial) of every run in one width's ensemble, in replica order."""
    get = (lambda name: cfg[name]) if isinstance(cfg, dict) else (lambda name: getattr(cfg, name))
    return [(init, m, trial) for init in get("inits") for m in get("sample_sizes") for trial in range(get("n_trials"))]


def _train_frontier(cfg: Config, width: int, run: Run) -> None:
    device, task = run.device, cfg.task
    grid = _frontier_grid(cfg)
    # Paired design: trial j has one support, one test set and one pool of samples at every
    # (init, m, width); its training sets are nested (the first m of the pool).
    trial_seeds = replica_seeds(cfg.seed, cfg.n_trials)
    support_seeds, test_seeds, pool_seeds, init_seeds, data_seeds = zip(*(replica_seeds(s, 5) for s in trial_seeds))
    m_max = max(cfg.sample_sizes)

    supports = torch.stack([sparse_parity_support(n_bits=task.n_bits, k=task.k, generator=generator(s, device))
                            for s in support_seeds])  # (R, k)
    pools = [sample_sparse_parity(m_max, n_bits=task.n_bits, support=supports[j], generator=generator(s, device))
             for j, s in enumerate(pool_seeds)]
    tests = [sample_sparse_parity(task.n_test, n_bits=task.n_bits, support=supports[j], generator=generator(s, device))
             for j, s in enumerate(test_seeds)]
    x_train = torch.stack([pools[trial][0] for _, _, trial in grid])  # (S, m_max, n)
    y_train = torch.stack([pools[trial][1] for _, _, trial in grid])  # (S, m_max)
    sizes = torch.tensor([m for _, m, _ in grid], device=device)
    train_mask = (torch.arange(m_max, device=device)[None, :] < sizes[:, None]).float()  # (S, m_max)
    x_test = torch.stack([tests[trial][0] for _, _, trial in grid])  # (S, n_test, n)
    y_test = torch.stack([tests[trial][1] for _, _, trial in grid])

    def sampler(trial: int, m: int):
        x_set, y_set = pools[trial][0][:m], pools[trial][1][:m]

        def draw(g: torch.Generator, n_batches: int):  # minibatches resampled from the fixed set
            index = torch.randint(0, m, (n_batches * cfg.train.batch_size,), generator=g, device=g.device)
            return x_set[index].view(n_batches, cfg.train.batch_size, -1), y_set[index].view(n_batches, -1)
        return draw

    # Dense and sparse replicas of a trial share their init seed: the sparse one keeps s of
    # the dense one's coordinates (rescaled), so the comparison is paired.
    seeds = [init_seeds[trial] for _, _, trial in grid]
    dense = TwoLayerMLP(task.n_bits, replace(cfg.model, width=width, init_sparsity=None), seeds, device)
    if "sparse" in cfg.inits:
        sparse = TwoLayerMLP(task.n_bits, replace(cfg.model, width=width, init_sparsity=cfg.sparsity), seeds, device)
        is_sparse = torch.tensor([init == "sparse" for init, _, _ in grid], device=device)
        with torch.no_grad():
            for p_dense, p_sparse in zip(dense.parameters(), sparse.parameters()):
                p_dense.copy_(torch.where(is_sparse.view(-1, *([1] * (p_dense.dim() - 1))), p_sparse, p_dense))
    model = dense
    batches = ReplicaStream([sampler(trial, m) for _, m, trial in grid], [data_seeds[t] for *_, t in grid], device)

    loss_fn = margin_losses[cfg.train.loss]
    watched = min(m_max, task.n_train_monitor)
    evaluator = SuccessEvaluator(model, x_train[:, :watched], y_train[:, :watched], train_mask[:, :watched],
                                 x_test, y_test, task)
    last_step = fit(model, batches, loss_fn, cfg.train, run, evaluate=evaluator)

    with torch.no_grad():
        final_error = 1.0 - sign_accuracy(_outputs(model, x_test), y_test)
    run.log(last_step, final_test_error=final_error, success_step=evaluator.success_step,
            success=(final_error <= task.target_error).float())
    run.artifact("supports", supports.cpu().tolist())


# ----------------------------------------------------------------------------- tabular


def _tabular(cfg: Config, source: str, run: Run) -> None:
    """Forests and MLPs on one set, every (fraction, trial) split; accuracies logged per split."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    tab, device = cfg.tabular, run.device
    dataset = load_dataset(source, target=tab.target)
    scope = run.scoped(f"tab_{_slug(dataset.name)}")
    splits = [(fraction, trial) for fraction in tab.fractions for trial in range(tab.n_trials)]
    trial_seeds = replica_seeds(cfg.seed, tab.n_trials)
    prepared = []
    for fraction, trial in splits:
        train, test = trial_split(dataset, fraction=fraction, test_fraction=tab.test_fraction, seed=trial_seeds[trial] % 2**31)
        x_train, x_test = standardize(dataset.x[train], dataset.x[test])
        prepared.append((x_train, dataset.y[train], x_test, dataset.y[test]))

    # Boosting's default min_samples_leaf = 20 cannot split a set of 10 examples at all (it
    # predicts the majority class); scale it to the training size so the baseline is fair.
    forests = {"random_forest": lambda seed, n: RandomForestClassifier(tab.forest_trees, random_state=seed, n_jobs=1),
               "gradient_boosting": lambda seed, n: HistGradientBoostingClassifier(
                   random_state=seed, min_samples_leaf=max(1, min(20, n // 10)))}
    for name, make in forests.items():
        accuracies = [float((make(trial_seeds[t] % 2**31, len(ya)).fit(xa, ya).predict(xb) == yb).mean())
                      for (_, t), (xa, ya, xb, yb) in zip(splits, prepared)]
        scope.log(0, **{f"{name}_acc": torch.tensor(accuracies)})

    # MLPs: every (sparsity, split) of one (width, depth) as one ensemble.
    n_features = dataset.x.shape[1]
    x_test = torch.tensor(np.stack([p[2] for p in prepared]), dtype=torch.float32, device=device)  # (F*R, N_test, d)
    y_test = torch.tensor(np.stack([p[3] for p in prepared]), device=device)
    for width in tab.widths:
        for depth in tab.depths:
            replicas = [(s, i) for s in tab.sparsities for i in range(len(splits))]
            sparsities = [min(s, n_features) if s else None for s, _ in replicas]
            seeds = [replica_seeds(trial_seeds[splits[i][1]], 2)[0] + s for s, i in replicas]
            model = DeepMLP(n_features, dataset.n_classes, DeepMLPConfig(width=width, depth=depth), seeds, device,
                            sparsities=sparsities)
            samplers = [_table_sampler(prepared[i][0], prepared[i][1], tab.train.batch_size, device) for _, i in replicas]
            batches = ReplicaStream(samplers, [seed + 1 for seed in seeds], device)
            tests = x_test.repeat(len(tab.sparsities), 1, 1), y_test.repeat(len(tab.sparsities), 1)
            evaluator = Measure(lambda model, tests=tests: {"test_acc": replica_accuracy(model, *tests)})
            mlp_run = run.scoped(f"tab_{_slug(dataset.name)}_mlp_w{width}_d{depth}")
            fit(model, batches, _cross_entropy, tab.train, mlp_run, evaluate=evaluator)
            mlp_run.log(0, replica_sparsity=torch.tensor([float(s) for s, _ in replicas]))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _table_sampler(x: np.ndarray, y: np.ndarray, batch_size: int, device):
    x_set = torch.tensor(x, dtype=torch.float32, device=device)
    y_set = torch.tensor(y, device=device)

    def draw(g: torch.Generator, n_batches: int):  # minibatches with replacement from the training split
        index = torch.randint(0, len(y_set), (n_batches * batch_size,), generator=g, device=g.device)
        return x_set[index].view(n_batches, batch_size, -1), y_set[index].view(n_batches, batch_size)
    return draw


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per replica: logits (S, B, C), labels (S, B) -> (S,)."""
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)


# ----------------------------------------------------------------------------- reading results


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


def frontier_table(record: RunRecord) -> list[FrontierPoint]:
    """Success probability (with its interval) and steps to success at every (width, init, m)."""
    cfg, grid, points = record.config, _frontier_grid(record.config), []
    for width in cfg["widths"]:
        success = record.series(f"w{width}/success")
        steps = record.series(f"w{width}/success_step")
        if not len(success):
            continue
        success_row, steps_row = success.values[-1], steps.values[-1]
        for init in cfg["inits"]:
            for m in cfg["sample_sizes"]:
                index = [i for i, (g_init, g_m, _) in enumerate(grid) if g_init == init and g_m == m]
                hits = int(np.nansum(success_row[index]))
                low, high = binomial_interval(hits, len(index))
                won = steps_row[index][success_row[index] > 0]
                points.append(FrontierPoint(width, init, m, hits, len(index), low, high, won[np.isfinite(won)]))
    return points


def _point(points: list[FrontierPoint], width: int, init: str, m: int) -> FrontierPoint | None:
    return next((p for p in points if (p.width, p.init, p.m) == (width, init, m)), None)


def grokking_traces(record: RunRecord, width: int) -> list[tuple[int, float, float]]:
    """(replica, step train accuracy first reached 100%, step of success) of runs that
    succeeded at least twice as late as they fit their training set (and >= 500 steps later)."""
    train, test = record.series(f"w{width}/train_acc"), record.series(f"w{width}/test_error")
    target = record.config["task"]["target_error"]
    traces = []
    for s in range(train.values.shape[1] if len(train) else 0):
        fitted = first_step(train.steps, train.values[:, s] >= 1.0)
        solved = first_step(test.steps, test.values[:, s] <= target)
        if np.isfinite(fitted) and np.isfinite(solved) and solved >= 2 * fitted and solved - fitted >= 500:
            traces.append((s, fitted, solved))
    return traces


def tabular_table(record: RunRecord) -> dict[str, dict[str, np.ndarray]]:
    """data set -> model -> accuracy (fractions, trials); models: the forests and each MLP variant."""
    cfg, tab = record.config, record.config["tabular"]
    n_fractions, n_trials = len(tab["fractions"]), tab["n_trials"]
    out: dict[str, dict[str, np.ndarray]] = {}
    for source in tab["datasets"] if "tabular" in cfg["parts"] else ():
        name = _slug(source.rsplit("/", 1)[-1].removesuffix(".csv").removesuffix(".arff"))
        models = {}
        for forest in ("random_forest", "gradient_boosting"):
            values = record.series(f"tab_{name}/{forest}_acc")
            if len(values):
                models[forest] = values.values[-1].reshape(n_fractions, n_trials)
        for width in tab["widths"]:
            for depth in tab["depths"]:
                values = record.series(f"tab_{name}_mlp_w{width}_d{depth}/test_acc")
                if not len(values):
                    continue
                per_sparsity = values.values[-1].reshape(len(tab["sparsities"]), n_fractions, n_trials)
                for s, accuracy in zip(tab["sparsities"], per_sparsity):
                    models[f"mlp w{width} d{depth} " + (f"sparse s={s}" if s else "dense")] = accuracy
        out[name] = models
    return out


# ----------------------------------------------------------------------------- claims


def claims(record: RunRecord) -> list[Claim]:
    out = _frontier_claims(record) if "frontier" in record.config["parts"] else []
    return out + (_tabular_claims(record) if "tabular" in record.config["parts"] else [])


def _frontier_claims(record: RunRecord) -> list[Claim]:
    cfg, points = record.config, frontier_table(record)
    out = []
    if {"dense", "sparse"} <= set(cfg["inits"]):
        pairs = [(_point(points, p.width, "sparse", p.m), p) for p in points if p.init == "dense"]
        worse = [(s, d) for s, d in pairs if s.probability < d.probability]
        out.append(Claim(
            "sparse-init-helps", "Sparse initialisation is more sample-efficient: its success probability is at least "
            "the dense init's at every sample size.",
            "; ".join(f"r={d.width} m={d.m}: sparse {s.probability:.2f} vs dense {d.probability:.2f}" for s, d in pairs),
            "sparse >= dense at every (width, m)", not worse))
        sparse_500, dense_500 = _point(points, 100, "sparse", 500), _point(points, 100, "dense", 500)
        if sparse_500 and dense_500 and cfg["train"]["max_steps"] == 10_000:
            out.append(Claim(
                "m500-gap", "At m = 500 (width 100, 10^4 steps) sparse init usually succeeds and dense init rarely does.",
                f"sparse {sparse_500.probability:.2f} [{sparse_500.low:.2f}, {sparse_500.high:.2f}], dense "
                f"{dense_500.probability:.2f} [{dense_500.low:.2f}, {dense_500.high:.2f}] over {dense_500.trials} runs",
                "sparse >= 0.5 and dense <= 0.25",
                sparse_500.probability >= 0.5 and dense_500.probability <= 0.25))
        m_steps = 1000 if 1000 in cfg["sample_sizes"] else max(cfg["sample_sizes"])
        width = max(cfg["widths"])
        sparse_t, dense_t = _point(points, width, "sparse", m_steps), _point(points, width, "dense", m_steps)
        if sparse_t and dense_t:
            # Failed runs count as slower than any success (they never reached the target within T).
            def median_steps(p):
                values = np.concatenate([p.steps, np.full(p.trials - len(p.steps), np.inf)])
                return float(np.median(values))
            s_med, d_med = median_steps(sparse_t), median_steps(dense_t)
            out.append(Claim(
                "sparse-fewer-steps", f"At m = {m_steps} sparse init reaches success in fewer steps than dense init.",
                f"width {width}: median steps to success sparse {s_med:.0f}, dense {d_med:.0f} (inf: most runs failed)",
                "median(sparse) < median(dense)", s_med < d_med))
    widths = sorted(cfg["widths"])
    if len(widths) > 1:
        drops = [(init, m, a, b) for init in cfg["inits"] for m in cfg["sample_sizes"]
                 for a, b in zip(widths, widths[1:])
                 if (pa := _point(points, a, init, m)) and (pb := _point(points, b, init, m)) and pb.high < pa.low]
        ladder = "; ".join(f"{init} m={m}: " + " / ".join(f"{_point(points, w, init, m).probability:.2f}" for w in widths)
                           for init in cfg["inits"] for m in cfg["sample_sizes"])
        out.append(Claim(
            "width-helps", "Width is parallel search: at fixed m, success probability does not decrease with width.",
            f"success at widths {widths}: {ladder}",
            "no wider net's 95% interval lies wholly below a narrower one's", not drops))
    traces = {width: grokking_traces(record, width) for width in widths}
    found = [(width, *trace) for width, found in traces.items() for trace in found]
    example = (f"e.g. width {found[0][0]}, run {found[0][1]}: train 100% at step {found[0][2]:.0f}, "
               f"test error <= {cfg['task']['target_error']} at {found[0][3]:.0f}" if found else "none")
    out.append(Claim(
        "grokking", "Near the frontier, runs fit the training set long before they generalise (grokking).",
        f"{len(found)} runs; {example}", ">= 1 run succeeds >= 2x (and >= 500 steps) after train accuracy hits 100%",
        bool(found)))
    return out


def _tabular_claims(record: RunRecord) -> list[Claim]:
    table = tabular_table(record)
    fractions = record.config["tabular"]["fractions"]
    small = [i for i, f in enumerate(fractions) if f <= 0.1] or [0]
    rows, best = [], -np.inf
    for name, models in table.items():
        sparse = {label: acc for label, acc in models.items() if "sparse" in label}
        if "random_forest" not in models or not sparse:
            continue
        for i in small:
            forest = float(models["random_forest"][i].mean())
            label, accuracy = max(((lab, float(a[i].mean())) for lab, a in sparse.items()), key=lambda t: t[1])
            rows.append(f"{name} @ {fractions[i]:g}: {label} {accuracy:.3f} vs forest {forest:.3f}")
            best = max(best, accuracy - forest)
    return [Claim(
        "tabular-sparse-mlp", "On small tabular data sets, wide sparsely-initialised MLPs are competitive with (sometimes "
        "beat) random forests.", "; ".join(rows) or "no tabular results",
        "on >= 1 set at a fraction <= 0.1: sparse MLP >= forest - 0.02 (mean over trials)", bool(best >= -0.02))]


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cfg, out = record.config, {}
    if "frontier" in cfg["parts"]:
        points = frontier_table(record)
        widths, sizes = sorted(cfg["widths"]), sorted(cfg["sample_sizes"])
        fig, ax = plt.subplots(figsize=(6, 4))
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(widths)))
        for width, color in zip(widths, colors):
            for init, style in (("dense", "--"), ("sparse", "-")):
                row = [_point(points, width, init, m) for m in sizes]
                if not all(row):
                    continue
                ax.plot(sizes, [p.probability for p in row], style, marker="o", color=color, label=f"r={width} {init}")
                ax.fill_between(sizes, [p.low for p in row], [p.high for p in row], color=color, alpha=0.1)
        ax.set(xscale="log", xlabel="training samples m", ylabel="success probability", ylim=(-0.02, 1.02),
               title=f"({cfg['task']['n_bits']}, {cfg['task']['k']})-parity: success vs samples")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        out["success_vs_samples"] = fig

        # The (r, m) heat map per init, successes / runs in each cell.
        inits = list(cfg["inits"])
        heat, axes = plt.subplots(1, len(inits), figsize=(5 * len(inits), 3.8), squeeze=False)
        for ax, init in zip(axes[0], inits):
            grid = np.array([[_point(points, w, init, m).probability for m in sizes] for w in widths])
            image = ax.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="magma", aspect="auto")
            ax.set_xticks(range(len(sizes)), [str(m) for m in sizes])
            ax.set_yticks(range(len(widths)), [str(w) for w in widths])
            for i, w in enumerate(widths):
                for j, m in enumerate(sizes):
                    p = _point(points, w, init, m)
                    ax.text(j, i, f"{p.successes}/{p.trials}", ha="center", va="center", fontsize=7,
                            color="white" if p.probability < 0.5 else "black")
            ax.set(xlabel="samples m", ylabel="width r", title=f"{init} init")
        heat.colorbar(image, ax=axes[0].tolist(), label="success probability")
        out["frontier_heatmap"] = heat

        # The resource frontier in the (m, r) plane: the SQ bound's width below which success
        # probability 1/2 is impossible after T steps, against the measured frontier (the
        # fewest samples at which each width succeeds at least half the time).
        n, k, steps = cfg["task"]["n_bits"], cfg["task"]["k"], cfg["train"]["max_steps"]
        fig, ax = plt.subplots(figsize=(6, 4))
        m_axis = np.geomspace(min(sizes) / 4, max(sizes) * 4, 50)
        ax.plot(m_axis, [0.5 * sq_frontier_samples(n_bits=n, k=k, steps=steps, n_params=n + 2, success=1.0) / m
                         for m in m_axis], "k--", label=f"SQ bound, T={steps}: success 1/2 needs r above this")
        for init, marker in (("dense", "s"), ("sparse", "o")):
            frontier = [(next((m for m in sizes if _point(points, w, init, m).probability >= 0.5), np.nan), w)
                        for w in widths]
            ax.plot(*zip(*frontier), marker=marker, label=f"measured: first m with success >= 1/2 ({init})")
        ax.set(xscale="log", yscale="log", xlabel="samples m", ylabel="width r",
               title=f"({n}, {k})-parity: resource frontier (the bound is far from binding here)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["resource_bound"] = fig

        fig, ax = plt.subplots(figsize=(6, 4))
        for width, color in zip(widths, colors):
            for init, style in (("dense", "--"), ("sparse", "-")):
                row = [(m, np.median(p.steps)) for m in sizes if (p := _point(points, width, init, m)) and len(p.steps)]
                if row:
                    ax.plot(*zip(*row), style, marker="o", color=color, label=f"r={width} {init}")
        ax.set(xscale="log", yscale="log", xlabel="training samples m", ylabel="median steps to success (successes)",
               title="data vs time")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        out["steps_to_success"] = fig

        traces = [(w, *t) for w in widths for t in grokking_traces(record, w)]
        if traces:
            width, replica, _, _ = traces[0]
            train, test = record.series(f"w{width}/train_acc"), record.series(f"w{width}/test_error")
            fig, ax = plt.subplots(figsize=(6, 3.6))
            ax.plot(train.steps, train.values[:, replica], label="train accuracy")
            ax.plot(test.steps, 1 - test.values[:, replica], label="test accuracy")
            init, m, trial = _frontier_grid(cfg)[replica]
            ax.set(xlabel="step", ylabel="accuracy", title=f"grokking: r={width}, {init} init, m={m}, trial {trial}")
            ax.legend(fontsize=8)
            fig.tight_layout()
            out["grokking"] = fig

    table = tabular_table(record) if "tabular" in cfg["parts"] else {}
    if table:
        fractions = cfg["tabular"]["fractions"]
        fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 3.6), squeeze=False)
        for ax, (name, models) in zip(axes[0], table.items()):
            for label, accuracy in models.items():
                mean = accuracy.mean(axis=1)
                sem = accuracy.std(axis=1, ddof=1) / np.sqrt(accuracy.shape[1]) if accuracy.shape[1] > 1 else 0 * mean
                ax.errorbar(fractions, mean, yerr=sem, marker="o", capsize=2, label=label,
                            ls="--" if "forest" in label or "boosting" in label else "-")
            ax.set(xscale="log", xlabel="fraction of training data", ylabel="test accuracy", title=name)
            ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
            ax.xaxis.set_minor_locator(plt.NullLocator())
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        out["tabular"] = fig
    return out
