"""The ``data`` part: teachers and students on arrays you supply (images get ResNet-18s)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from learnlab.distill import class_permutation, corrupt_labels, teacher_targets
from learnlab.experiments.sampler_distillation import MODES, _accuracy, _logits, _train_replicas
from learnlab.models.deep_mlp import DeepMLP, DeepMLPConfig
from learnlab.models.resnet import ResNet18
from learnlab.runtime import generator
from learnlab.seeding import replica_seeds, streams
from learnlab.train.ensemble import ModuleStack


def user_data(cfg, seed: int, run) -> None:
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
    permutation_seed, share_seed, noise_seed, teacher_seed, label_seed, student_seed = streams(
        seed, "class-permutation", "shares", "label-noise", "teachers", "student-labels", "students")
    pi = class_permutation(n_classes, generator=generator(permutation_seed, device))
    # Each teacher sees a disjoint share of the training set (the pool of the paper's Section 6).
    shares = torch.randperm(len(x_train), generator=generator(share_seed, device), device=device).chunk(cfg.pool_size)
    size = min(len(share) for share in shares)
    xs = torch.stack([x_train[share[:size]] for share in shares])
    ys = torch.stack([corrupt_labels(y_train[share[:size]], rate=cfg.data_noise_rate, permutation=pi,
                                     generator=generator(s, device))[0]
                      for s, share in zip(replica_seeds(noise_seed, cfg.pool_size), shares)])

    def models(seeds):
        if images:
            return ModuleStack(lambda: ResNet18(x_train.shape[1], n_classes, cfg.resnet_width), seeds, device)
        return DeepMLP(x_train.shape[1], n_classes, DeepMLPConfig(width=cfg.gaussian.network_width, depth=2),
                       seeds, device)

    seeds = replica_seeds(teacher_seed, cfg.pool_size)
    teachers = models(seeds)
    _train_replicas(teachers, list(xs), [F.one_hot(y, n_classes).float() for y in ys], seeds,
                    cfg.gaussian.network_teacher, run.scoped("data_teachers"), _accuracy(xs, ys, "train_acc"))
    proba, test_logits = F.softmax(_logits(teachers, x_unlabelled, 1024), dim=-1), _logits(teachers, x_test, 1024)
    run.log(0, data_teacher_acc=(test_logits.argmax(-1) == y_test).float().mean(dim=1))
    targets = [teacher_targets(proba, mode, soft=False, generator=generator(label_seed, device))
               for mode in MODES]
    student_seeds = replica_seeds(student_seed, len(MODES))
    students = models(student_seeds)
    tests = x_test.expand(len(MODES), *x_test.shape)
    _train_replicas(students, [x_unlabelled] * len(MODES), targets, student_seeds, cfg.gaussian.student,
                    run.scoped("data_students"), _accuracy(tests, y_test.expand(len(MODES), -1), "student_acc"))


def _images(a: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float images; (N, H, W, C) with C in {1, 3} is transposed; uint8 scaled to [0, 1]."""
    if a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.permute(0, 3, 1, 2)
    return a.float() / 255.0 if a.dtype == torch.uint8 else a.float()
