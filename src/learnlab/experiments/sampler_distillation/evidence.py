"""sampler-distillation's claims (declared from the config) and figures (from the stored run)."""

from __future__ import annotations

import json

import numpy as np
import torch

from learnlab.claims import Measurement, NotMeasured, Reproduction, Sanity
from learnlab.experiments.sampler_distillation import schema as m
from learnlab.figures import Figure, mean_with_interval, new_figure, paper_points
from learnlab.results import StoredRun
from learnlab.tasks.gaussian_mixture import bayes_accuracy

__all__ = ["claims", "figures", "student_table"]

PAPER = "Kaplun et al. 2022 (arXiv 2203.14649)"
PAPER_VOTE = (0.813, 0.878)  # paper, CIFAR-10 at 20% noise: one teacher 81.3%, the vote of the pool 87.8%


def student_table(run: StoredRun, scope: str) -> dict[tuple[str, str, int], np.ndarray]:
    """(teacher kind, mode, unlabelled size) -> student accuracy per seed, of one (eta, n_train) scope."""
    accuracy = run.last(f"{scope}/{m.STUDENT_ACC}")
    path = run.artifact_path(f"{scope}.{m.TEACHER_KINDS}")
    if path is None:
        raise NotMeasured(f"no teacher kinds stored for {scope}")
    kinds = json.loads(path.read_text())
    teacher, mode, size = (run.last(f"{scope}/{n}") for n in (m.REPLICA_TEACHER, m.REPLICA_MODE, m.REPLICA_UNLABELLED))
    table: dict[tuple[str, str, int], list[float]] = {}
    for value, k, j, s in zip(np.atleast_1d(accuracy), np.atleast_1d(teacher), np.atleast_1d(mode), np.atleast_1d(size)):
        table.setdefault((kinds[int(k)], m.MODES[int(j)], int(s)), []).append(float(value))
    return {key: np.array(values) for key, values in table.items()}


def _entry(table, key) -> np.ndarray:
    if key not in table:
        raise NotMeasured(f"no student for teacher {key[0]}, mode {key[1]}, {key[2]} unlabelled inputs")
    return table[key]


# ----------------------------------------------------------------------------- claims


def _gaussian_claims(cfg) -> list:
    part, bayes, out = cfg.gaussian, bayes_accuracy(), []
    n_big, small_u, large_u = max(part.n_train), min(part.n_unlabelled), max(part.n_unlabelled)
    for eta in part.noise_rates:
        scope = m.gaussian_scope(eta, n_big)
        sampler, midpoint = (1 - eta) * bayes, (1 - eta / 2) * bayes

        def teacher(run, scope=scope, eta=eta):
            acc = run.over_seeds(f"{scope}/{m.teacher_metric('knn', m.TEACHER_ACC)}")
            flips = run.over_seeds(f"{scope}/{m.teacher_metric('knn', m.FLIP_RATE)}")
            return Measurement(acc, f"1-NN teacher accuracy {acc.mean():.3f} ((1 - eta) Bayes {(1 - eta) * bayes:.3f}, "
                                    f"Bayes {bayes:.3f}); predicts pi(y) on {flips.mean():.3f} (eta = {eta:g})")

        def gain(run, scope=scope, fraction=False, bayes_gap=False):
            table = student_table(run, scope)
            student = _entry(table, ("knn", "single", large_u))
            acc = run.over_seeds(f"{scope}/{m.teacher_metric('knn', m.TEACHER_ACC)}")
            direct = table.get((m.DIRECT, "single", n_big))
            control = ""
            if direct is not None:
                fit = run.over_seeds(f"{scope}/{m.CONTROL_TRAIN_ACC}")
                control = (f"; control (the student's model trained on a teacher's noisy labels directly, fitting "
                           f"{fit.mean():.3f} of them) {direct.mean():.3f}")
            detail = f"student {student.mean():.3f}, teacher {acc.mean():.3f}, Bayes {bayes:.3f}{control}"
            return Measurement((student - acc) / (bayes - acc) if fraction else student - acc, detail)

        def vote(run, scope=scope):
            one = run.over_seeds(f"{scope}/{m.teacher_metric('knn', m.TEACHER_ACC)}")
            votes = run.over_seeds(f"{scope}/{m.teacher_metric('knn', m.VOTE_ACC)}")
            return Measurement(votes - one, f"vote of {cfg.pool_size} {votes.mean():.3f} vs one teacher {one.mean():.3f}: "
                                            f"+{100 * (votes - one).mean():.1f} points (paper, CIFAR-10 at 20% noise: "
                                            f"+{100 * (PAPER_VOTE[1] - PAPER_VOTE[0]):.1f})")

        out += [
            Reproduction(f"teacher-is-a-sampler-eta{eta:g}", f"An interpolating 1-NN teacher (noise rate {eta:g}) is a bad "
                         "classifier, as a sampler of the noisy labels is: its accuracy is nearer (1 - eta) x Bayes "
                         "than Bayes.", source=f"{PAPER}, abstract and theory (1-NN in the overparameterised regime is a "
                         f"sampler; section number not verified here); Fig. 1 (CIFAR-10 teachers replicate the noise)",
                         statistic="1-NN teacher test accuracy per seed", threshold=midpoint, side="<=",
                         threshold_source=f"theory: a sampler scores about (1 - eta) Bayes = {sampler:.3f}, a classifier "
                         f"Bayes = {bayes:.3f}; the midpoint (1 - eta/2) Bayes", unit="seeds", measure=teacher),
            Reproduction(f"student-beats-teacher-eta{eta:g}", f"The student distilled from one 1-NN teacher on "
                         f"{large_u} fresh unlabelled inputs is more accurate than its teacher (noise rate {eta:g}).",
                         source=f"{PAPER}, theory (distillation from a sampler approximates Bayes; section not "
                         "verified here); Sec. 5, Table 1 and Fig. 1 (CIFAR-10)", statistic="student minus teacher test "
                         "accuracy per seed", threshold=0.0, side=">=", threshold_source="paper: the student beats its "
                         "teacher (Table 1; 0 = no gain)", unit="seeds", measure=gain),
            Reproduction(f"student-near-bayes-eta{eta:g}", "The student closes most of its teacher's gap to Bayes: it "
                         f"is nearer Bayes than its teacher (noise rate {eta:g}).", source=f"{PAPER}, theory (the "
                         "student of a sampler approaches the Bayes classifier; section not verified here)",
                         statistic="(student - teacher) / "
                         "(Bayes - teacher) per seed", threshold=0.5, side=">=", threshold_source="theory: the student "
                         "tends to Bayes (fraction 1); 0.5 = nearer Bayes than the teacher", unit="seeds",
                         measure=lambda run, scope=scope: gain(run, scope, fraction=True)),
        ]
        if cfg.pool_size >= 2:
            out.append(Reproduction(
                f"vote-beats-one-teacher-eta{eta:g}", f"The majority vote of a pool of {cfg.pool_size} 1-NN teachers "
                "(each on its own noisy training set) is more accurate than one teacher.",
                source=f"{PAPER}, Sec. 5, Table 1 (test-time ensemble)", statistic="vote minus one teacher test accuracy "
                "per seed", threshold=0.0, side=">=", threshold_source="paper Sec. 5, Table 1: the ensemble beats one "
                "teacher (81.3% -> 87.8% on CIFAR-10 at 20% noise); 0 = no gain", unit="seeds", measure=vote))
    if small_u != large_u:
        def more(run):
            rows = [(_entry(t, ("knn", "single", large_u)) - _entry(t, ("knn", "single", small_u)))
                    for t in (student_table(run, m.gaussian_scope(eta, n_big)) for eta in part.noise_rates)]
            values = np.concatenate(rows)
            return Measurement(values, f"student with {large_u} minus {small_u} unlabelled inputs, one 1-NN teacher, "
                                       f"over noise rates and seeds: mean {values.mean():+.4f}")

        out.append(Reproduction("more-unlabelled-data-helps", "A student taught by one 1-NN teacher on more unlabelled "
                                f"inputs ({large_u} vs {small_u}) is more accurate.", source=f"{PAPER}, theory (the "
                                "student's error bound falls with the unlabelled sample size; section not verified "
                                "here)", statistic="accuracy gain per "
                                "(noise rate, seed)", threshold=0.0, side=">=", threshold_source="theory: the student's "
                                "excess error decreases with the unlabelled sample size (0 = no gain)",
                                unit="noise rates x seeds", measure=more))

    def fitted(run):
        values = np.concatenate([run.over_seeds(f"{m.gaussian_scope(eta, n_big)}/{m.teacher_metric('knn', m.TRAIN_ACC)}")
                                 for eta in part.noise_rates])
        return Measurement(values, f"lowest training fit {values.min():.4f}")

    out.append(Sanity("knn-interpolates", "A 1-NN teacher fits every one of its noisy training labels.",
                      "training accuracy of the 1-NN teachers", 1.0, ">=", fitted))
    return out


def _mnist1d_claims(cfg) -> list:
    pool = cfg.pool_size

    def measured(run):
        teachers = run.over_seeds(m.MNIST1D_TEACHER_ACC).reshape(cfg.n_seeds, pool).mean(axis=1)
        clean = run.over_seeds(m.MNIST1D_CLEAN_ACC)
        students = run.over_seeds(f"{m.MNIST1D_STUDENTS}/{m.STUDENT_ACC}")
        modes = run.over_seeds(m.MNIST1D_STUDENT_MODE)
        random = students[modes == m.MODES.index("random_per_example")]
        return teachers, clean, random, _mnist1d_control(run, cfg)

    def beats(run):
        teachers, clean, random, control = measured(run)
        return Measurement(random - teachers, f"random-teacher students {random.mean():.3f}, teachers "
                                              f"{teachers.mean():.3f}, clean-label CNNs {clean.mean():.3f}{control}")

    def near(run):
        teachers, clean, random, control = measured(run)
        return Measurement((random - teachers) / (clean - teachers), f"student {random.mean():.3f}, teacher "
                                                                     f"{teachers.mean():.3f}, clean {clean.mean():.3f}"
                                                                     f"{control}")

    def vote(run):
        teachers = run.over_seeds(m.MNIST1D_TEACHER_ACC).reshape(cfg.n_seeds, pool).mean(axis=1)
        votes = run.over_seeds(m.MNIST1D_VOTE_ACC)
        return Measurement(votes - teachers, f"vote {votes.mean():.3f} vs one teacher {teachers.mean():.3f}: "
                                             f"+{100 * (votes - teachers).mean():.1f} points (paper, CIFAR-10: "
                                             f"+{100 * (PAPER_VOTE[1] - PAPER_VOTE[0]):.1f})")

    def fitted(run):
        values = run.over_seeds(f"{m.MNIST1D_TEACHERS}/{m.TRAIN_ACC}")[: pool * cfg.n_seeds]
        return Measurement(values, f"lowest training fit of a teacher {values.min():.4f}")

    source = f"{PAPER}, Sec. 5, Table 1 (CIFAR-10 with 20% noise; here mnist1d with {cfg.mnist1d.noise_rate:g})"
    out = [
        Reproduction("mnist1d-student-beats-teachers", "On mnist1d, a student labelled by a random noisy-label CNN "
                     "teacher per example is more accurate than the teachers.", source=source,
                     statistic="student minus mean teacher test accuracy per seed", threshold=0.0, side=">=",
                     threshold_source="paper Sec. 5, Table 1: students of interpolating teachers beat them (0 = no gain)",
                     unit="seeds", measure=beats),
        Reproduction("mnist1d-student-near-clean", "The mnist1d student is nearer a CNN trained on the clean labels "
                     "than its teachers are.", source=source, statistic="(student - teacher) / (clean-label CNN - "
                     "teacher) per seed", threshold=0.5, side=">=", threshold_source="theory: the student tends to the "
                     "clean-label (Bayes) predictor, fraction 1; 0.5 = nearer it than the teacher", unit="seeds",
                     measure=near),
        Sanity("mnist1d-teachers-interpolate", "Every mnist1d teacher fits all of its noisy training labels (a "
               "sampler, not a denoiser).", "training accuracy of the noisy-label teachers", 1.0, ">=", fitted),
    ]
    if pool >= 2:
        out.insert(2, Reproduction("mnist1d-vote-beats-one-teacher", f"The majority vote of {pool} mnist1d teachers is "
                                   "more accurate than one.", source=f"{PAPER}, Sec. 5, Table 1 (test-time ensemble)",
                                   statistic="vote minus mean teacher test accuracy per seed", threshold=0.0, side=">=",
                                   threshold_source="paper Sec. 5, Table 1: the ensemble beats one teacher (81.3% -> 87.8% on "
                                   "CIFAR-10 at 20% noise); 0 = no gain", unit="seeds", measure=vote))
    return out


def _mnist1d_control(run, cfg) -> str:
    """The control in words: the L2-regularised CNN on a teacher's noisy labels, its test accuracy and its fit."""
    try:
        control = run.over_seeds(m.MNIST1D_CONTROL_ACC)
    except NotMeasured:
        return ""
    fit = run.over_seeds(f"{m.MNIST1D_TEACHERS}/{m.TRAIN_ACC}")[-cfg.n_seeds:]
    return (f"; control (a CNN with L2 penalty {cfg.mnist1d.control_l2:g} on a teacher's noisy labels, fitting "
            f"{fit.mean():.3f} of them) {control.mean():.3f}")


def claims(cfg) -> list:
    return ((_gaussian_claims(cfg) if "gaussian" in cfg.parts else [])
            + (_mnist1d_claims(cfg) if "mnist1d" in cfg.parts else []))


# ----------------------------------------------------------------------------- figures


def figures(run: StoredRun) -> dict[str, Figure]:
    cfg, out = run.config, {}
    if "gaussian" in cfg.parts:
        for name, draw in (("student_vs_unlabelled", _student_vs_unlabelled), ("accuracy_vs_noise", _accuracy_vs_noise),
                           ("confusion", _confusion_figure), ("decision_regions", _decision_regions)):
            try:
                out[name] = draw(run)
            except NotMeasured:
                continue
    if "mnist1d" in cfg.parts:
        try:
            out["mnist1d"] = _mnist1d_figure(run)
        except NotMeasured:
            pass
    return out


def _student_vs_unlabelled(run: StoredRun) -> Figure:
    part, bayes = run.config.gaussian, bayes_accuracy()
    n_big = max(part.n_train)
    fig, (ax,) = new_figure(width=5.6, height=3.8)
    for eta in part.noise_rates:
        table = student_table(run, m.gaussian_scope(eta, n_big))
        for mode, marker in zip(m.MODES, "os^"):
            sizes = sorted(s for k, j, s in table if k == "knn" and j == mode)
            if sizes:
                mean_with_interval(ax, sizes, [table["knn", mode, s] for s in sizes], marker=marker,
                                   label=f"{mode.replace('_', ' ')}, eta {eta:g}")
    ax.axhline(bayes, color="black", lw=0.8, label="Bayes")
    ax.set(xscale="log", xlabel="unlabelled inputs", ylabel="student test accuracy")
    ax.legend(fontsize=6)
    return Figure(f"Student test accuracy against the number of unlabelled inputs, 1-NN teachers on {n_big} noisy "
                  "examples, by labelling mode (one teacher, a random teacher per example, the vote of the pool); "
                  "mean over seeds with 95% bootstrap intervals; black line: Bayes accuracy.", fig)


def _accuracy_vs_noise(run: StoredRun) -> Figure:
    part, bayes = run.config.gaussian, bayes_accuracy()
    n_big, large_u = max(part.n_train), max(part.n_unlabelled)
    etas = list(part.noise_rates)
    scopes = [m.gaussian_scope(eta, n_big) for eta in etas]
    fig, (ax,) = new_figure(width=5.6, height=3.8)
    for label, name in (("teacher (1-NN)", m.TEACHER_ACC), ("vote of the pool", m.VOTE_ACC)):
        mean_with_interval(ax, etas, [run.over_seeds(f"{s}/{m.teacher_metric('knn', name)}") for s in scopes],
                           label=label)
    tables = [student_table(run, s) for s in scopes]
    mean_with_interval(ax, etas, [_entry(t, ("knn", "single", large_u)) for t in tables], marker="s",
                       label="student of one teacher")
    if all((m.DIRECT, "single", n_big) in t for t in tables):
        mean_with_interval(ax, etas, [t[m.DIRECT, "single", n_big] for t in tables], marker="x",
                           label="control: trained on the noisy labels")
    ax.plot(etas, [(1 - e) * bayes for e in etas], "k:", label="(1 - eta) Bayes")
    ax.axhline(bayes, color="black", lw=0.8, label="Bayes")
    ax.set(xlabel="noise rate eta", ylabel="test accuracy", xticks=etas)
    ax.legend(fontsize=6)
    return Figure("Test accuracy against the label-noise rate: a 1-NN teacher, the vote of its pool, the student of "
                  "one teacher, and the control model trained directly on the noisy labels; mean over seeds with "
                  "95% bootstrap intervals.", fig)


def _confusion_figure(run: StoredRun) -> Figure:
    part = run.config.gaussian
    scope = m.gaussian_scope(part.noise_rates[0], max(part.n_train))
    path = run.artifact_path(f"{scope}.{m.CONFUSION}")
    if path is None:
        raise NotMeasured("no confusion matrices stored")
    matrices = json.loads(path.read_text())
    fig, axes = new_figure(len(matrices), width=3.3, height=3.2)
    for ax, (name, counts) in zip(axes, matrices.items()):
        counts = np.array(counts, dtype=float)
        rates = counts / counts.sum(axis=1, keepdims=True)
        ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(rates):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
        ax.set(title=name, xlabel="predicted", ylabel="true class", xticks=range(4), yticks=range(4))
    return Figure(f"Confusion matrices (rows: true class) of a 1-NN teacher, the vote of its pool and a student, "
                  f"first seed, noise rate {part.noise_rates[0]:g}.", fig)


def _decision_regions(run: StoredRun) -> Figure:
    """Bayes regions, a 1-NN teacher's (redrawn from a fresh noisy sample: cheap and exact), the stored student's."""
    from learnlab.distill import NearestNeighbourTeacher, class_permutation, corrupt_labels
    from learnlab.runtime import generator
    from learnlab.tasks.gaussian_mixture import bayes_predict, sample_gaussian_mixture

    part = run.config.gaussian
    eta, n_train = part.noise_rates[0], max(part.n_train)
    grid = torch.stack(torch.meshgrid(torch.linspace(-5, 5, 200), torch.linspace(-5, 5, 200), indexing="xy"), -1)
    flat = grid.reshape(-1, 2)
    g = generator(0, "cpu")
    x, y = sample_gaussian_mixture(n_train, generator=g)
    noisy, _ = corrupt_labels(y, rate=eta, permutation=class_permutation(4, generator=g), generator=g)
    teacher = NearestNeighbourTeacher(x, noisy, 4).predict_proba(flat).argmax(1)
    panels = [(bayes_predict(flat).reshape(200, 200).numpy(), "Bayes"),
              (teacher.reshape(200, 200).numpy(), f"a 1-NN teacher (eta {eta:g}, n {n_train})")]
    stored = run.artifact_path(f"{m.gaussian_scope(eta, n_train)}.{m.STUDENT_REGIONS}")
    if stored is not None:
        panels.append((np.load(stored), "a student (stored run)"))
    fig, axes = new_figure(len(panels), width=3.6, height=3.6)
    for ax, (labels, title) in zip(axes, panels):
        ax.imshow(labels, origin="lower", extent=(-5, 5, -5, 5), cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
        ax.set(title=title, xticks=[], yticks=[])
    return Figure("Decision regions on [-5, 5]^2: the Bayes classifier, a 1-NN teacher on noisy labels (islands of "
                  "flipped labels) and the student distilled from one teacher.", fig)


def _mnist1d_figure(run: StoredRun) -> Figure:
    cfg = run.config
    teachers = run.over_seeds(m.MNIST1D_TEACHER_ACC).reshape(cfg.n_seeds, cfg.pool_size).mean(axis=1)
    students = run.over_seeds(f"{m.MNIST1D_STUDENTS}/{m.STUDENT_ACC}")
    modes = run.over_seeds(m.MNIST1D_STUDENT_MODE)
    rows = [("teacher", teachers), ("vote", run.over_seeds(m.MNIST1D_VOTE_ACC))]
    rows += [(f"student:\n{mode.replace('_', ' ')}", students[modes == i]) for i, mode in enumerate(m.MODES)]
    rows.append(("clean-label\nCNN", run.over_seeds(m.MNIST1D_CLEAN_ACC)))
    try:
        rows.append(("control: L2 CNN\non noisy labels", run.over_seeds(m.MNIST1D_CONTROL_ACC)))
    except NotMeasured:
        pass
    fig, (ax,) = new_figure(width=6.4, height=3.6)
    mean_with_interval(ax, range(len(rows)), [v for _, v in rows], label="ours (mnist1d)")
    paper_points(ax, [0, 1], list(PAPER_VOTE), label="paper (CIFAR-10, 20% noise)")
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], fontsize=7)
    ax.set(ylabel="test accuracy")
    ax.legend(fontsize=7)
    return Figure(f"mnist1d at noise rate {cfg.mnist1d.noise_rate:g}: a teacher, the vote of {cfg.pool_size}, students "
                  "by labelling mode, a CNN on clean labels and the control (an L2-regularised CNN trained on the noisy "
                  "labels directly), mean over seeds with 95% bootstrap intervals; stars: "
                  "the paper's one teacher and vote on CIFAR-10.", fig)
