"""Bad models can be good role models: interpolating teachers are samplers; their students approach Bayes.

Paper: Kaplun, Malach, Nakkiran, Shalev-Shwartz, "Knowledge Distillation: Bad Models Can
Be Good Role Models", NeurIPS 2022 (arXiv 2203.14649); official code
``GalKaplun/sampler-distillation`` (CIFAR-10 / CIFAR-5m, one random teacher per *batch*).
A teacher that interpolates labels with class-dependent noise (a fixed permutation pi at
rate eta) predicts, at a test point, about a sample of the noisy conditional: it is a bad
classifier (accuracy near (1 - eta) x Bayes). A student trained on the teacher's labels of
fresh unlabelled inputs averages those samples and approaches the Bayes classifier. With a
pool of teachers, the theory draws an independent teacher for every example.

Parts:

- ``gaussian``: four unit Gaussians at (+-2, 0), (0, +-2) (exact Bayes accuracy 0.849);
  eta in {0.2, 0.4}; n_train in {1000, 5000}; 1-NN, interpolating RBF-kernel and network
  teachers (a pool of 5, each on its own training set); one-hidden-layer MLP students on
  5k and 50k unlabelled points, labelled by one teacher, a random teacher per example, or
  the pool's vote; 3 seeds, every student of a setting trained as one stacked ensemble.
- ``mnist1d``: a pool of 1-D CNN teachers trained to fit 4,000 noisy ``mnist1d`` examples
  (eta = 0.2), students distilled on freshly generated unlabelled examples, against a CNN
  trained on the clean labels; evaluated on a clean generated test set.
- ``data``: the same on arrays you supply (``data_path``: an ``.npz`` with x_train,
  y_train, x_unlabelled, x_test, y_test): images get ResNet-18 teachers and students (the
  paper's CIFAR-10 / CIFAR-5m run: ``--preset paper --data cifar.npz``), other arrays MLPs.

Presets: ``quick`` (gaussian and mnist1d; ``learnlab run sampler-distillation --preset
quick``, 9-15 minutes on 2 cores), ``paper`` (larger pools and unlabelled sets; set
``data_path`` for your own data), ``smoke`` (seconds; the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from learnlab.claims import Claim
from learnlab.config import Interval, npz_problem, param
from learnlab.distill import (KernelTeacher, NearestNeighbourTeacher, class_permutation,
                              corrupt_labels, flip_rate, teacher_targets)
from learnlab.models.deep_mlp import DeepMLP, DeepMLPConfig
from learnlab.models.resnet import ResNet18
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.gaussian_mixture import bayes_accuracy, sample_gaussian_mixture
from learnlab.train.data import ReplicaStream
from learnlab.train.ensemble import FunctionalEnsemble, ModuleStack
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import replica_accuracy
from learnlab.train.optim import TrainConfig

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "sampler-distillation"
DESCRIPTION = "Kaplun et al. 2022: interpolating teachers are samplers; distilled students approach Bayes"

MODES = ("single", "random_per_example", "ensemble")

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class GaussianPartConfig:
    noise_rates: tuple[float, ...] = param((0.2, 0.4), Interval(0.0, 0.5, closed="left"))
    n_train: tuple[int, ...] = param((1000, 5000), Interval(1, None), help="noisy examples per teacher")
    teachers: tuple[str, ...] = param(("knn", "kernel"), help="knn (1-NN), kernel (RBF, ridge -> 0), network")
    extra_max_train: int = param(1000, Interval(1, None),
                                 help="kernel and network teachers only for n_train up to this (their cost grows with it)")
    n_unlabelled: tuple[int, ...] = param((5000, 50_000), Interval(1, None), help="fresh inputs the students see")
    n_test: int = param(20_000, Interval(1, None))
    pool_data: str = param("disjoint", help="teachers' training sets: disjoint, overlapping or same (see _teacher_sets)")
    kernel_bandwidth: float = param(0.1, Interval(0.0, None, closed="neither"))
    network_width: int = param(128, Interval(1, None), help="hidden units of the two-hidden-layer network teachers")
    student_width: int = param(256, Interval(1, None))
    # Cosine decay: the students fit noisy labels, and a constant rate leaves a noisy last iterate.
    student: TrainConfig = TrainConfig(optimizer="adam", lr=3e-3, schedule="cosine", batch_size=256, max_steps=2000,
                                       eval_every=2000, log_every=100)
    network_teacher: TrainConfig = TrainConfig(optimizer="adam", lr=3e-3, batch_size=1000, max_steps=1500,
                                               eval_every=1500, log_every=100)


@dataclass(frozen=True)
class Mnist1dPartConfig:
    n_train: int = param(4000, Interval(1, None))
    noise_rate: float = param(0.2, Interval(0.0, 0.5, closed="left"))
    n_unlabelled: int = param(50_000, Interval(1, None))
    n_test: int = param(5000, Interval(1, None))
    channels: int = param(16, Interval(1, None))
    teacher: TrainConfig = TrainConfig(optimizer="adam", lr=3e-3, batch_size=256, max_steps=2000, eval_every=2000,
                                       log_every=100)
    student: TrainConfig = TrainConfig(optimizer="adam", lr=3e-3, schedule="cosine", batch_size=256, max_steps=2000,
                                       eval_every=2000, log_every=100)


@dataclass(frozen=True)
class DistillationConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(3, Interval(1, 64), help="independent repetitions (teacher pools, students)")
    pool_size: int = param(5, Interval(1, 64), help="teachers M in a pool, each on its own noisy training set")
    parts: tuple[str, ...] = param(("gaussian", "mnist1d"))
    data_path: str | None = param(None, help=".npz with x_train, y_train, x_unlabelled, x_test, y_test (part data)")
    data_noise_rate: float = param(0.2, Interval(0.0, 0.5, closed="left"))
    resnet_width: int = param(64, Interval(1, None), help="ResNet-18 stem channels for image data (64 as the paper)")
    gaussian: GaussianPartConfig = GaussianPartConfig()
    mnist1d: Mnist1dPartConfig = Mnist1dPartConfig()

    def check(self) -> str | None:
        if not self.parts or set(self.parts) - {"gaussian", "mnist1d", "data"}:
            return "'parts' entries must be among gaussian, mnist1d, data (at least one)"
        if self.gaussian.pool_data not in ("disjoint", "overlapping", "same"):
            return "'gaussian.pool_data' must be disjoint, overlapping or same"
        if set(self.gaussian.teachers) - {"knn", "kernel", "network"} or not self.gaussian.teachers:
            return "'gaussian.teachers' entries must be among knn, kernel, network"
        if "data" in self.parts and self.data_path is None:
            return "part 'data' needs data_path (an .npz with x_train, y_train, x_unlabelled, x_test, y_test)"
        if self.data_path is not None:
            return npz_problem(self.data_path, ("x_train", "y_train", "x_unlabelled", "x_test", "y_test"))
        return None


Config = DistillationConfig


def presets() -> dict[str, Config]:
    quick = Config()
    # Network teachers need long training to interpolate 1,000 noisy points (width 128 fits ~72% in 1,500 steps).
    paper = replace(quick, n_seeds=5, pool_size=10, mnist1d=replace(quick.mnist1d, channels=32), gaussian=replace(
        quick.gaussian, n_unlabelled=(5000, 50_000, 200_000), teachers=("knn", "kernel", "network"), network_width=512,
        network_teacher=replace(quick.gaussian.network_teacher, max_steps=20_000, eval_every=5000)),
                    )
    # With --data PATH (CIFAR-10 as x_train / y_train / x_test / y_test, CIFAR-5m as x_unlabelled)
    # the paper preset also trains ResNet-18 teachers and students on it.
    paper = replace(paper, mnist1d=replace(paper.mnist1d, n_unlabelled=200_000))
    smoke = replace(quick, n_seeds=2, pool_size=3, gaussian=replace(
        quick.gaussian, noise_rates=(0.2,), n_train=(200,), n_unlabelled=(500,), n_test=1000, extra_max_train=200, teachers=("knn", "kernel", "network"),
        network_width=32, student_width=32,
        student=replace(quick.gaussian.student, max_steps=50, eval_every=50),
        network_teacher=replace(quick.gaussian.network_teacher, max_steps=50, eval_every=50, batch_size=200)),
        mnist1d=replace(quick.mnist1d, n_train=300, n_unlabelled=600, n_test=300, channels=8,
                        teacher=replace(quick.mnist1d.teacher, max_steps=30, eval_every=30),
                        student=replace(quick.mnist1d.student, max_steps=30, eval_every=30)))
    return {"smoke": smoke, "quick": quick, "paper": paper}


# ----------------------------------------------------------------------------- shared training


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c p_c log softmax(logits)_c, per replica: (S, B, C) -> (S,)."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean(dim=-1)


def _accuracy(x: torch.Tensor, y: torch.Tensor, name: str) -> Measure:
    """Accuracy of every replica on its own labelled set (S, N, ...), (S, N) at each evaluation."""
    return Measure(lambda model: {name: replica_accuracy(model, x, y)})


def _train_replicas(model: nn.Module, inputs: list[torch.Tensor], targets: list[torch.Tensor], seeds, cfg: TrainConfig,
                    run: Run, evaluate) -> None:
    """Train replica s of ``model`` on minibatches of (inputs[s], targets[s]) (soft targets (N, C))."""

    def sampler(x: torch.Tensor, t: torch.Tensor):
        def draw(g: torch.Generator, n_batches: int):
            size = min(cfg.batch_size, len(x))
            index = torch.randint(0, len(x), (n_batches * size,), generator=g, device=g.device)
            return x[index].view(n_batches, size, *x.shape[1:]), t[index].view(n_batches, size, -1)
        return draw

    batches = ReplicaStream([sampler(x, t) for x, t in zip(inputs, targets)], seeds, run.device, block=16)
    fit(model, batches, _soft_cross_entropy, cfg, run, evaluate=evaluate)


# ----------------------------------------------------------------------------- runs


def run(cfg: Config, run: Run) -> None:
    seeds = replica_seeds(cfg.seed, 3)
    if "gaussian" in cfg.parts:
        part = cfg.gaussian
        for eta in part.noise_rates:
            for n_train in part.n_train:
                _gaussian(cfg, eta, n_train, seeds[0], run.scoped(f"eta{eta:g}_n{n_train}"))
    if "mnist1d" in cfg.parts:
        _mnist1d(cfg, seeds[1], run)
    if "data" in cfg.parts or cfg.data_path is not None:
        _user_data(cfg, seeds[2], run)


def _gaussian(cfg: Config, eta: float, n_train: int, seed: int, run: Run) -> None:
    part, device, n_classes = cfg.gaussian, run.device, 4
    kinds = [k for k in part.teachers if k == "knn" or n_train <= part.extra_max_train]
    per_seed = [replica_seeds(s, 5) for s in replica_seeds(seed, cfg.n_seeds)]
    teacher_metrics: dict[str, list] = {}
    confusion: dict[str, list] = {}
    student_inputs, student_targets, student_seeds, labels = [], [], [], []
    x_tests, y_tests = [], []
    for task_seed, data_seed, unlabelled_seed, label_seed, student_seed in per_seed:
        pi = class_permutation(n_classes, generator=generator(task_seed, device))
        x_test, y_test = sample_gaussian_mixture(part.n_test, generator=generator(task_seed + 1, device))
        pool = _teacher_sets(part.pool_data, n_train, cfg.pool_size, eta, pi, data_seed, device)
        max_unlabelled = max(part.n_unlabelled)
        x_unlabelled, _ = sample_gaussian_mixture(max_unlabelled, generator=generator(unlabelled_seed, device))
        for kind in kinds:
            pool_proba = _gaussian_teachers(kind, pool, n_classes, part, seed=student_seed, run=run)
            test_proba = pool_proba(x_test)  # (M, N_test, C)
            first = test_proba[0].argmax(1)
            vote = teacher_targets(test_proba, "ensemble", soft=False, generator=generator(label_seed, device)).argmax(1)
            fitted = float((pool_proba(pool[0][0])[0].argmax(1) == pool[0][1]).float().mean())
            for name, value in (("teacher_acc", float((first == y_test).float().mean())),
                                ("flip_rate", flip_rate(first, y_test, pi)), ("train_acc", fitted),
                                ("vote_acc", float((vote == y_test).float().mean()))):
                teacher_metrics.setdefault(f"{kind}_{name}", []).append(value)
            if task_seed == per_seed[0][0] and kind == "knn":  # confusion matrices of the paper's Figure 1
                confusion["teacher"] = _confusion(first, y_test, n_classes)
                confusion["vote of the pool"] = _confusion(vote, y_test, n_classes)
            unlabelled_proba = pool_proba(x_unlabelled)
            for mode_index, mode in enumerate(MODES):
                targets = teacher_targets(unlabelled_proba, mode, soft=False, generator=generator(label_seed, device))
                for size in part.n_unlabelled:
                    student_inputs.append(x_unlabelled[:size])
                    student_targets.append(targets[:size])
                    student_seeds.append(student_seed + 7 * len(student_seeds))
                    labels.append((kinds.index(kind), mode_index, size))
                    x_tests.append(x_test)
                    y_tests.append(y_test)
    # Every student of this (eta, n_train): teacher kinds x modes x sizes x seeds, one ensemble.
    model = DeepMLP(2, n_classes, DeepMLPConfig(width=part.student_width, depth=1), student_seeds, device)
    evaluate = _accuracy(torch.stack(x_tests), torch.stack(y_tests), "student_acc")
    _train_replicas(model, student_inputs, student_targets, student_seeds, part.student, run, evaluate)
    # After fit, which on a fresh start clears what this scope logged before.
    for name, values in teacher_metrics.items():
        run.log(0, **{name: torch.tensor(values)})
    run.log(0, replica_teacher=torch.tensor([float(k) for k, _, _ in labels]),
            replica_mode=torch.tensor([float(m) for _, m, _ in labels]),
            replica_unlabelled=torch.tensor([float(s) for _, _, s in labels]))
    run.artifact("teacher_kinds", kinds)
    # The first seed's student of one 1-NN teacher on the fewest unlabelled inputs: its
    # confusion matrix and its decision regions on a grid, for the figures.
    replica = labels.index((kinds.index("knn"), MODES.index("single"), min(part.n_unlabelled)))
    confusion["student"] = _confusion(_logits(model, x_tests[replica])[replica].argmax(1), y_tests[replica], n_classes)
    axis = torch.linspace(-5, 5, _GRID, device=device)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    regions = _logits(model, grid)[replica].argmax(1).reshape(_GRID, _GRID)
    run.artifact("student_regions", regions.cpu().numpy().astype(np.int8))
    run.artifact("confusion", confusion)


_GRID = 150  # decision-region grid over [-5, 5]^2


def _confusion(predictions: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[list[int]]:
    """counts[true][predicted]"""
    counts = torch.bincount(labels * n_classes + predictions, minlength=n_classes**2)
    return counts.view(n_classes, n_classes).tolist()


def _teacher_sets(pool_data: str, n_train: int, pool_size: int, eta: float, pi: torch.Tensor, seed: int, device):
    """The noisy training set of each teacher of a pool.

    ``disjoint``: every teacher its own fresh sample; ``overlapping``: random n_train-subsets
    of one shared sample of 2 n_train (two teachers share about half their examples);
    ``same``: one set for all (teachers then differ only by their own randomness).
    """
    if pool_data == "disjoint":
        seeds = replica_seeds(seed, pool_size)
        sets = [sample_gaussian_mixture(n_train, generator=generator(s, device)) for s in seeds]
        return [(x, corrupt_labels(y, rate=eta, permutation=pi, generator=generator(s + 1, device))[0])
                for (x, y), s in zip(sets, seeds)]
    x, y = sample_gaussian_mixture(n_train if pool_data == "same" else 2 * n_train, generator=generator(seed, device))
    # One noisy label per shared example: the label noise is part of the data, not of the teacher.
    noisy, _ = corrupt_labels(y, rate=eta, permutation=pi, generator=generator(seed + 2, device))
    g = generator(seed + 1, device)
    picks = [torch.arange(n_train, device=device) if pool_data == "same"
             else torch.randperm(2 * n_train, generator=g, device=device)[:n_train] for _ in range(pool_size)]
    return [(x[i], noisy[i]) for i in picks]


def _gaussian_teachers(kind: str, pool, n_classes: int, part: GaussianPartConfig, *, seed: int, run: Run):
    """Fit a pool of teachers of ``kind``; return ``pool_proba(x) -> (M, N, C)``."""
    if kind in ("knn", "kernel"):
        teachers = [NearestNeighbourTeacher(x, y, n_classes, k=1) if kind == "knn"
                    else KernelTeacher(x, y, n_classes, bandwidth=part.kernel_bandwidth) for x, y in pool]
        return lambda x: torch.stack([t.predict_proba(x) for t in teachers])
    # Overparameterised two-hidden-layer networks fitted to the noisy labels, the pool as one ensemble.
    seeds = replica_seeds(seed, len(pool))
    model = DeepMLP(2, n_classes, DeepMLPConfig(width=part.network_width, depth=2), seeds, run.device)
    xs, ys = torch.stack([x for x, _ in pool]), torch.stack([y for _, y in pool])
    _train_replicas(model, list(xs), [F.one_hot(y, n_classes).float() for y in ys], seeds, part.network_teacher,
                    run.scoped("network_teachers"), _accuracy(xs, ys, "teacher_train_acc"))
    return lambda x: F.softmax(_logits(model, x), dim=-1)


def _logits(model: nn.Module, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Every replica of a stacked model on the same inputs x (N, ...): logits (S, N, C), in chunks."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(part.expand(model.n_replicas, *part.shape)) for part in x.split(chunk)], dim=1)


# ----------------------------------------------------------------------------- mnist1d


class CNN1d(nn.Module):
    """A small 1-D CNN for mnist1d (40 samples, 10 classes): three convolutions and a linear readout."""

    def __init__(self, channels: int = 32, length: int = 40, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
        self.readout = nn.Linear(channels * (length // 4), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 40) -> (B, 10)
        h = self.features(x.unsqueeze(1))  # (B, channels, 10)
        return self.readout(h.flatten(1))


def _mnist1d_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` freshly generated mnist1d examples (the package's generator, run offline)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = int(np.ceil(n / 10) * 10), 1.0, seed
    data = make_dataset(args)
    return torch.tensor(data["x"][:n], dtype=torch.float32), torch.tensor(data["y"][:n], dtype=torch.long)


def _mnist1d(cfg: Config, seed: int, run: Run) -> None:
    part, device, n_classes = cfg.mnist1d, run.device, 10
    task_seed, data_seed, unlabelled_seed, test_seed, init_seed = replica_seeds(seed, 5)
    pi = class_permutation(n_classes, generator=generator(task_seed, device))
    x_test, y_test = (t.to(device) for t in _mnist1d_samples(part.n_test, test_seed % 2**31))
    x_unlabelled, _ = (t.to(device) for t in _mnist1d_samples(part.n_unlabelled, unlabelled_seed % 2**31))
    # The pool: M x seeds teachers, each fitted to its own 4,000 noisy examples; plus as many
    # CNNs on clean labels (the reference a student should approach).
    n_teachers = cfg.pool_size * cfg.n_seeds
    sets = [_mnist1d_samples(part.n_train, s % 2**31) for s in replica_seeds(data_seed, n_teachers)]
    xs = torch.stack([x for x, _ in sets]).to(device)
    clean = torch.stack([y for _, y in sets]).to(device)
    noisy = torch.stack([corrupt_labels(y, rate=part.noise_rate, permutation=pi, generator=generator(i, device))[0]
                         for i, y in enumerate(clean)])
    targets = torch.cat([noisy, clean[: cfg.n_seeds]])  # teachers, then the clean-label models
    inputs = torch.cat([xs, xs[: cfg.n_seeds]])
    model_seeds = replica_seeds(init_seed, len(inputs))
    teachers = FunctionalEnsemble(lambda: CNN1d(part.channels), model_seeds, device)
    _train_replicas(teachers, list(inputs), [F.one_hot(t, n_classes).float() for t in targets], model_seeds,
                    part.teacher, run.scoped("mnist1d_teachers"), _accuracy(inputs, targets, "train_acc"))
    test_logits = _logits(teachers, x_test)  # (S, N_test, C)
    unlabelled_proba = F.softmax(_logits(teachers, x_unlabelled), dim=-1)
    accuracy = (test_logits.argmax(-1) == y_test).float().mean(dim=1)
    teacher_acc, clean_acc = accuracy[:n_teachers], accuracy[n_teachers:]
    first = test_logits[: n_teachers : cfg.pool_size].argmax(-1)  # each seed's first teacher
    run.log(0, mnist1d_teacher_acc=teacher_acc, mnist1d_clean_acc=clean_acc,
            mnist1d_flip_rate=torch.tensor([flip_rate(p, y_test, pi) for p in first]))

    # Students: for each seed, its pool labels the unlabelled inputs in each mode.
    student_targets, student_modes = [], []
    for s in range(cfg.n_seeds):
        pool = unlabelled_proba[s * cfg.pool_size : (s + 1) * cfg.pool_size]
        for mode_index, mode in enumerate(MODES):
            student_targets.append(teacher_targets(pool, mode, soft=False, generator=generator(s + 100, device)))
            student_modes.append(float(mode_index))
    student_seeds = replica_seeds(init_seed + 1, len(student_targets))
    students = FunctionalEnsemble(lambda: CNN1d(part.channels), student_seeds, device)
    tests = x_test.expand(len(student_targets), *x_test.shape)
    _train_replicas(students, [x_unlabelled] * len(student_targets), student_targets, student_seeds, part.student,
                    run.scoped("mnist1d_students"), _accuracy(tests, y_test.expand(len(student_targets), -1),
                                                              "student_acc"))
    run.log(0, mnist1d_student_mode=torch.tensor(student_modes))


# ----------------------------------------------------------------------------- user data


def _user_data(cfg: Config, seed: int, run: Run) -> None:
    """Teachers fitted to noisy labels of disjoint shares of the user's training set, students
    on its unlabelled inputs. Images (N, C, H, W) or (N, H, W, C) get ResNet-18s (the paper's
    CIFAR-10 / CIFAR-5m setting); anything else is flattened and gets two-hidden-layer MLPs."""
    with np.load(cfg.data_path) as arrays:  # names checked by the config
        x_train, y_train, x_unlabelled, x_test, y_test = (
            torch.tensor(arrays[k]) for k in ("x_train", "y_train", "x_unlabelled", "x_test", "y_test"))
    device = run.device
    images = x_train.dim() == 4
    prepare = _images if images else (lambda a: a.reshape(len(a), -1).float())
    x_train, x_unlabelled, x_test = (prepare(a).to(device) for a in (x_train, x_unlabelled, x_test))
    if images:  # per-channel standardisation by the training images' statistics
        mean, std = x_train.mean(dim=(0, 2, 3), keepdim=True), x_train.std(dim=(0, 2, 3), keepdim=True) + 1e-6
        x_train, x_unlabelled, x_test = ((a - mean) / std for a in (x_train, x_unlabelled, x_test))
    y_train, y_test = y_train.long().to(device), y_test.long().to(device)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    pi = class_permutation(n_classes, generator=generator(seed, device))
    # Each teacher sees a disjoint share of the training set (the pool of the paper's Section 6).
    shares = torch.randperm(len(x_train), generator=generator(seed + 1, device), device=device).chunk(cfg.pool_size)
    size = min(len(share) for share in shares)
    xs = torch.stack([x_train[share[:size]] for share in shares])
    ys = torch.stack([corrupt_labels(y_train[share[:size]], rate=cfg.data_noise_rate, permutation=pi,
                                     generator=generator(seed + 2 + i, device))[0] for i, share in enumerate(shares)])

    def models(seeds):
        if images:
            return ModuleStack(lambda: ResNet18(x_train.shape[1], n_classes, cfg.resnet_width), seeds, device)
        return DeepMLP(x_train.shape[1], n_classes, DeepMLPConfig(width=cfg.gaussian.network_width, depth=2),
                       seeds, device)

    seeds = replica_seeds(seed + 3, cfg.pool_size)
    teachers = models(seeds)
    _train_replicas(teachers, list(xs), [F.one_hot(y, n_classes).float() for y in ys], seeds,
                    cfg.gaussian.network_teacher, run.scoped("data_teachers"), _accuracy(xs, ys, "train_acc"))
    proba, test_logits = F.softmax(_logits(teachers, x_unlabelled, 1024), dim=-1), _logits(teachers, x_test, 1024)
    run.log(0, data_teacher_acc=(test_logits.argmax(-1) == y_test).float().mean(dim=1))
    targets = [teacher_targets(proba, mode, soft=False, generator=generator(seed + 9, device)) for mode in MODES]
    student_seeds = replica_seeds(seed + 4, len(MODES))
    students = models(student_seeds)
    tests = x_test.expand(len(MODES), *x_test.shape)
    _train_replicas(students, [x_unlabelled] * len(MODES), targets, student_seeds, cfg.gaussian.student,
                    run.scoped("data_students"), _accuracy(tests, y_test.expand(len(MODES), -1), "student_acc"))


def _images(a: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float images; (N, H, W, C) with C in {1, 3} is transposed; uint8 scaled to [0, 1]."""
    if a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.permute(0, 3, 1, 2)
    return a.float() / 255.0 if a.dtype == torch.uint8 else a.float()


# ----------------------------------------------------------------------------- reading results


def student_table(record: RunRecord, scope: str) -> dict[tuple[str, str, int], np.ndarray]:
    """(teacher kind, mode, unlabelled size) -> student accuracy per seed, of one (eta, n_train) scope."""
    accuracy = record.series(f"{scope}/student_acc")
    if not len(accuracy):
        return {}
    kinds = record.artifacts().get(f"{scope}.teacher_kinds")
    import json

    kinds = json.loads(kinds.read_text()) if kinds else []
    teacher, mode, size = (record.series(f"{scope}/replica_{n}").values[-1] for n in ("teacher", "mode", "unlabelled"))
    table: dict[tuple[str, str, int], list[float]] = {}
    for value, k, m, s in zip(accuracy.values[-1], teacher, mode, size):
        table.setdefault((kinds[int(k)], MODES[int(m)], int(s)), []).append(float(value))
    return {key: np.array(values) for key, values in table.items()}


def _mean(record: RunRecord, name: str) -> float:
    series = record.series(name)
    return float(np.mean(series.values[-1])) if len(series) else float("nan")


# ----------------------------------------------------------------------------- claims


def claims(record: RunRecord) -> list[Claim]:
    cfg, out = record.config, []
    bayes = bayes_accuracy()
    if "gaussian" in cfg["parts"]:
        part = cfg["gaussian"]
        n_big = max(part["n_train"])
        small_u, large_u = min(part["n_unlabelled"]), max(part["n_unlabelled"])
        rows_sampler, rows_student, rows_gain, rows_more, rows_pool = [], [], [], [], []
        ok_sampler = ok_student = ok_gain = ok_more = ok_pool = True
        for eta in part["noise_rates"]:
            scope = f"eta{eta:g}_n{n_big}"
            teacher, flips = _mean(record, f"{scope}/knn_teacher_acc"), _mean(record, f"{scope}/knn_flip_rate")
            fitted = _mean(record, f"{scope}/knn_train_acc")
            target = (1 - eta) * bayes
            rows_sampler.append(f"eta={eta:g}: train {fitted:.3f}, test {teacher:.3f} vs (1-eta) Bayes {target:.3f}, "
                                f"predicts pi(y) on {flips:.3f}")
            ok_sampler &= fitted == 1.0 and abs(teacher - target) <= 0.05 and flips >= 0.8 * eta
            table = student_table(record, scope)
            random_small = table.get(("knn", "random_per_example", small_u), np.array([np.nan])).mean()
            single_small = table.get(("knn", "single", small_u), np.array([np.nan])).mean()
            if eta == 0.2:
                rows_student.append(f"eta=0.2: student ({small_u} unlabelled, one 1-NN teacher) {single_small:.3f} vs "
                                    f"Bayes {bayes:.3f}")
                ok_student &= single_small >= bayes - 0.02
            needed = 0.15 if eta <= 0.2 else 0.25
            rows_gain.append(f"eta={eta:g}: student - teacher {single_small - teacher:+.3f} (needs +{needed})")
            ok_gain &= single_small - teacher >= needed
            for kind in {k for k, _, _ in table}:
                for mode in MODES:
                    few, many = table.get((kind, mode, small_u)), table.get((kind, mode, large_u))
                    if few is not None and many is not None and small_u != large_u:
                        ok_more &= many.mean() >= few.mean() - 0.01
                        if mode == "single":
                            rows_more.append(f"eta={eta:g} {kind}: {few.mean():.3f} -> {many.mean():.3f}")
            vote = _mean(record, f"{scope}/knn_vote_acc")
            ensemble_student = table.get(("knn", "ensemble", small_u), np.array([np.nan])).mean()
            rows_pool.append(f"eta={eta:g}: vote {vote:.3f} vs one teacher {teacher:.3f}; students: random teacher "
                             f"per example {random_small:.3f}, ensemble teacher {ensemble_student:.3f}")
            ok_pool &= vote - teacher >= 0.08 and abs(random_small - ensemble_student) <= 0.02
        m = cfg["pool_size"]
        out += [
            Claim("teacher-is-sampler", "An interpolating (1-NN) teacher fits its noisy labels and acts as a sampler "
                  "of the noisy conditional: test accuracy near (1 - eta) x Bayes, predicting pi(y) at about rate eta.",
                  "; ".join(rows_sampler), "train 1.0, |test - (1-eta) Bayes| <= 0.05, pi(y) rate >= 0.8 eta",
                  bool(ok_sampler)),
            Claim("student-near-bayes", "A student distilled from the sampler on fresh unlabelled inputs is near Bayes.",
                  "; ".join(rows_student) or "no eta = 0.2 run", "student >= Bayes - 0.02", bool(ok_student and rows_student)),
            Claim("student-beats-teacher", "The student beats its bad teacher by a wide margin (n_train = "
                  f"{n_big}).", "; ".join(rows_gain), "+0.15 at eta = 0.2, +0.25 at eta = 0.4", bool(ok_gain)),
            Claim("more-unlabelled-data", "More unlabelled data does not hurt the student.", "; ".join(rows_more) or "-",
                  f"{large_u} >= {small_u} - 0.01 for every teacher and mode", bool(ok_more and rows_more)),
            Claim("pool", f"A vote of {m} teachers beats one; the random-teacher-per-example student matches the "
                  "ensemble-teacher student.", "; ".join(rows_pool),
                  "vote - one >= 0.08; |random - ensemble student| <= 0.02", bool(ok_pool and m >= 5)),
        ]
    if "mnist1d" in cfg["parts"]:
        teacher, clean = _mean(record, "mnist1d_teacher_acc"), _mean(record, "mnist1d_clean_acc")
        fitted = _mean(record, "mnist1d_teachers/train_acc")
        students = record.series("mnist1d_students/student_acc")
        modes = record.series("mnist1d_student_mode")
        random_student = (float(np.mean(students.values[-1][modes.values[-1] == MODES.index("random_per_example")]))
                          if len(students) else float("nan"))
        out.append(Claim(
            "mnist1d", "On mnist1d, the student of randomly chosen noisy-label CNN teachers beats its teachers and "
            "comes close to a CNN trained on clean labels.",
            f"teachers {teacher:.3f} (training fit {fitted:.3f}), random-teacher student {random_student:.3f}, "
            f"clean-label CNN {clean:.3f}", "student - teacher >= 0.08 and clean - student <= 0.05",
            random_student - teacher >= 0.08 and clean - random_student <= 0.05))
    return out


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cfg, out = record.config, {}
    if "gaussian" in cfg["parts"]:
        part, bayes = cfg["gaussian"], bayes_accuracy()
        n_big = max(part["n_train"])
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for mode, marker in zip(MODES, "os^"):
            for eta, style in zip(part["noise_rates"], ("-", "--", ":")):
                table = student_table(record, f"eta{eta:g}_n{n_big}")
                sizes = sorted(s for k, m, s in table if k == "knn" and m == mode)
                if sizes:
                    ax.plot(sizes, [table["knn", mode, s].mean() for s in sizes], style, marker=marker,
                            label=f"{mode}, eta={eta:g}")
        ax.axhline(bayes, color="black", lw=0.8, label="Bayes")
        ax.set(xscale="log", xlabel="unlabelled inputs", ylabel="student test accuracy",
               title=f"1-NN teachers (n_train = {n_big})")
        ax.legend(fontsize=6)
        fig.tight_layout()
        out["student_vs_unlabelled"] = fig

        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        etas = list(part["noise_rates"])
        for label, name in (("teacher (1-NN)", "knn_teacher_acc"), ("vote of the pool", "knn_vote_acc")):
            ax.plot(etas, [_mean(record, f"eta{e:g}_n{n_big}/{name}") for e in etas], "o-", label=label)
        ax.plot(etas, [student_table(record, f"eta{e:g}_n{n_big}").get(
            ("knn", "single", min(part["n_unlabelled"])), np.array([np.nan])).mean() for e in etas], "s-",
            label="student")
        ax.plot(etas, [(1 - e) * bayes for e in etas], "k:", label="(1 - eta) Bayes")
        ax.axhline(bayes, color="black", lw=0.8, label="Bayes")
        ax.set(xlabel="noise rate eta", ylabel="test accuracy", title="accuracy vs label noise")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["accuracy_vs_noise"] = fig
        out["decision_regions"] = _decision_regions(record, n_big)
        confusion = _confusion_figure(record, f"eta{part['noise_rates'][0]:g}_n{n_big}")
        if confusion is not None:
            out["confusion"] = confusion
    return out


def _confusion_figure(record: RunRecord, scope: str):
    import json

    import matplotlib.pyplot as plt

    path = record.artifacts().get(f"{scope}.confusion")
    if path is None:
        return None
    matrices = json.loads(path.read_text())
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.3 * len(matrices), 3.2), squeeze=False)
    for ax, (name, counts) in zip(axes[0], matrices.items()):
        counts = np.array(counts, dtype=float)
        rates = counts / counts.sum(axis=1, keepdims=True)
        ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(rates):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
        ax.set(title=name, xlabel="predicted", ylabel="true class")
    fig.suptitle(scope.replace("_", ", "), fontsize=8)
    fig.tight_layout()
    return fig


def _decision_regions(record: RunRecord, n_train: int):
    """Bayes regions, a 1-NN teacher's (redrawn here from a fresh noisy sample: cheap and
    exact), and the stored student's regions."""
    import matplotlib.pyplot as plt

    from learnlab.tasks.gaussian_mixture import bayes_predict

    eta = record.config["gaussian"]["noise_rates"][0]
    grid = torch.stack(torch.meshgrid(torch.linspace(-5, 5, 200), torch.linspace(-5, 5, 200), indexing="xy"), -1)
    flat = grid.reshape(-1, 2)
    g = generator(0, "cpu")
    x, y = sample_gaussian_mixture(n_train, generator=g)
    noisy, _ = corrupt_labels(y, rate=eta, permutation=class_permutation(4, generator=g), generator=g)
    teacher = NearestNeighbourTeacher(x, noisy, 4).predict_proba(flat).argmax(1)
    panels = [(bayes_predict(flat).reshape(200, 200).numpy(), "Bayes"),
              (teacher.reshape(200, 200).numpy(), f"a 1-NN teacher (eta={eta:g}, n={n_train})")]
    stored = record.artifacts().get(f"eta{eta:g}_n{n_train}.student_regions")
    if stored is not None:
        panels.append((np.load(stored), "its student (stored run)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (labels, title) in zip(axes, panels):
        ax.imshow(labels, origin="lower", extent=(-5, 5, -5, 5), cmap="tab10", vmin=0, vmax=9,
                  interpolation="nearest")
        ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    return fig
