"""The ``mnist1d`` part: a pool of interpolating noisy-label CNN teachers per seed, clean-label
CNNs and an L2-regularised control, and students distilled on freshly generated inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnlab.distill import class_permutation, corrupt_labels, flip_rate, teacher_targets
from learnlab.experiments.sampler_distillation import MODES, _accuracy, _logits, _train_replicas
from learnlab.experiments.sampler_distillation import schema as m
from learnlab.models.cnn1d import CNN1d
from learnlab.runtime import generator
from learnlab.seeding import replica_seeds, streams
from learnlab.tasks.mnist1d import sample_mnist1d
from learnlab.train.ensemble import FunctionalEnsemble


def mnist1d_part(cfg, seed: int, run) -> None:
    """Noisy-label CNN teachers that interpolate, their pool's vote, students on fresh inputs."""
    part, device, n_classes = cfg.mnist1d, run.device, 10
    task_seed, data_seed, unlabelled_seed, test_seed, init_seed = replica_seeds(seed, 5)
    noise_seed, vote_seed, label_seed, student_seed = streams(seed, "label-noise", "votes", "student-labels",
                                                              "students")
    pi = class_permutation(n_classes, generator=generator(task_seed, device))
    x_test, y_test = (t.to(device) for t in sample_mnist1d(part.n_test, seed=test_seed % 2**31))
    x_unlabelled, _ = (t.to(device) for t in sample_mnist1d(part.n_unlabelled, seed=unlabelled_seed % 2**31))
    # The pool: M x seeds teachers, each fitted to its own n_train noisy examples; then, per
    # seed, a CNN on clean labels (the reference a student should approach) and the control:
    # an L2-regularised CNN on the seed's first teacher's noisy labels. One stacked fit.
    n_teachers, pool = cfg.pool_size * cfg.n_seeds, cfg.pool_size
    sets = [sample_mnist1d(part.n_train, seed=s % 2**31) for s in replica_seeds(data_seed, n_teachers)]
    xs = torch.stack([x for x, _ in sets]).to(device)
    clean = torch.stack([y for _, y in sets]).to(device)
    noisy = torch.stack([corrupt_labels(y, rate=part.noise_rate, permutation=pi, generator=generator(s, device))[0]
                         for s, y in zip(replica_seeds(noise_seed, n_teachers), clean)])
    targets = torch.cat([noisy, clean[::pool], noisy[::pool]])  # teachers, clean-label CNNs, controls
    inputs = torch.cat([xs, xs[::pool], xs[::pool]])
    l2 = torch.zeros(len(inputs), device=device)
    l2[n_teachers + cfg.n_seeds:] = part.control_l2
    model_seeds = replica_seeds(init_seed, len(inputs))
    teachers = FunctionalEnsemble(lambda: CNN1d(part.channels), model_seeds, device)
    _train_replicas(teachers, list(inputs), [F.one_hot(t, n_classes).float() for t in targets], model_seeds,
                    part.teacher, run.scoped(m.MNIST1D_TEACHERS), _accuracy(inputs, targets, m.TRAIN_ACC), l2=l2)
    test_logits = _logits(teachers, x_test)  # (S, N_test, C)
    unlabelled_proba = F.softmax(_logits(teachers, x_unlabelled), dim=-1)
    accuracy = (test_logits.argmax(-1) == y_test).float().mean(dim=1)
    teacher_acc, clean_acc = accuracy[:n_teachers], accuracy[n_teachers : n_teachers + cfg.n_seeds]
    first = test_logits[: n_teachers : cfg.pool_size].argmax(-1)  # each seed's first teacher
    pools = F.softmax(test_logits[:n_teachers], dim=-1).view(cfg.n_seeds, cfg.pool_size, *test_logits.shape[1:])
    votes = [teacher_targets(p, "ensemble", soft=False, generator=generator(vote_seed, device)).argmax(1)
             for p in pools]
    run.log(0, **{m.MNIST1D_TEACHER_ACC: teacher_acc, m.MNIST1D_CLEAN_ACC: clean_acc,
                  m.MNIST1D_CONTROL_ACC: accuracy[n_teachers + cfg.n_seeds:],
                  m.MNIST1D_VOTE_ACC: torch.stack([(v == y_test).float().mean() for v in votes]),
                  m.MNIST1D_FLIP_RATE: torch.tensor([flip_rate(p, y_test, pi) for p in first])})

    # Students: for each seed, its pool labels the unlabelled inputs in each mode.
    student_targets, student_modes = [], []
    for s, labels in enumerate(replica_seeds(label_seed, cfg.n_seeds)):
        pool = unlabelled_proba[s * cfg.pool_size : (s + 1) * cfg.pool_size]
        for mode_index, mode in enumerate(MODES):
            student_targets.append(teacher_targets(pool, mode, soft=False, generator=generator(labels, device)))
            student_modes.append(float(mode_index))
    student_seeds = replica_seeds(student_seed, len(student_targets))
    students = FunctionalEnsemble(lambda: CNN1d(part.channels), student_seeds, device)
    tests = x_test.expand(len(student_targets), *x_test.shape)
    _train_replicas(students, [x_unlabelled] * len(student_targets), student_targets, student_seeds, part.student,
                    run.scoped(m.MNIST1D_STUDENTS), _accuracy(tests, y_test.expand(len(student_targets), -1),
                                                                m.STUDENT_ACC))
    run.log(0, **{m.MNIST1D_STUDENT_MODE: torch.tensor(student_modes)})


