import pytest
import torch

from learnlab.distill import (KernelTeacher, NearestNeighbourTeacher, class_permutation, corrupt_labels, flip_rate,
                              teacher_targets)
from learnlab.tasks.gaussian_mixture import bayes_accuracy, bayes_predict, sample_gaussian_mixture


def test_label_noise_flips_an_exact_share_of_every_class_to_its_image():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20 + [3] * 7)
    pi = class_permutation(4, generator=g)
    assert sorted(pi.tolist()) == [0, 1, 2, 3] and (pi != torch.arange(4)).all()  # a derangement
    noisy, flipped = corrupt_labels(labels, rate=0.2, permutation=pi, generator=g)
    for c, n_c in ((0, 50), (1, 30), (2, 20), (3, 7)):
        members = labels == c
        assert int(flipped[members].sum()) == round(0.2 * n_c)
        assert (noisy[members & flipped] == pi[c]).all() and (noisy[members & ~flipped] == c).all()
    with pytest.raises(ValueError, match="noise rate"):
        corrupt_labels(labels, rate=1.5, permutation=pi, generator=g)


def test_bayes_accuracy_matches_monte_carlo():
    x, y = sample_gaussian_mixture(400_000, generator=torch.Generator().manual_seed(1))
    monte_carlo = float((bayes_predict(x) == y).float().mean())
    assert bayes_accuracy() == pytest.approx(0.8489, abs=2e-4)
    assert monte_carlo == pytest.approx(bayes_accuracy(), abs=3 * (0.85 * 0.15 / 400_000) ** 0.5)


@pytest.mark.parametrize("teacher_class", [NearestNeighbourTeacher, KernelTeacher])
def test_interpolating_teachers_fit_noisy_labels_and_sample_the_noise(teacher_class):
    g = torch.Generator().manual_seed(2)
    x, y = sample_gaussian_mixture(2000, generator=g)
    pi = class_permutation(4, generator=g)
    noisy, _ = corrupt_labels(y, rate=0.3, permutation=pi, generator=g)
    teacher = teacher_class(x, noisy, 4)
    assert (teacher.predict_proba(x).argmax(1) == noisy).all()  # interpolates
    x_test, y_test = sample_gaussian_mixture(4000, generator=g)
    rate = flip_rate(teacher.predict_proba(x_test).argmax(1), y_test, pi)
    assert 0.15 <= rate <= 0.45  # about the noise rate, far from a good classifier's ~0


def test_student_targets_per_mode():
    g = torch.Generator().manual_seed(3)
    # Three teachers, four examples, two classes, one-hot predictions.
    labels = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0]])
    proba = torch.nn.functional.one_hot(labels, 2).float()
    assert torch.equal(teacher_targets(proba, "single", soft=False, generator=g).argmax(1), labels[0])
    assert torch.equal(teacher_targets(proba, "ensemble", soft=False, generator=g).argmax(1), torch.tensor([0, 1, 1, 0]))
    torch.testing.assert_close(teacher_targets(proba, "ensemble", soft=True, generator=g)[:, 1],
                               torch.tensor([0.0, 2 / 3, 2 / 3, 1 / 3]))
    # One random teacher per example: over many examples every teacher is used, each label is one of the pool's.
    many = torch.nn.functional.one_hot(torch.randint(0, 2, (3, 3000), generator=g), 2).float()
    picked = teacher_targets(many, "random_per_example", soft=False, generator=g).argmax(1)
    agrees = (picked[None] == many.argmax(2))  # (3, N)
    assert agrees.any(dim=0).all()
    only_teacher = [float(((agrees[t]) & ~agrees[[u for u in range(3) if u != t]].any(0)).float().mean()) for t in range(3)]
    assert all(share > 0.05 for share in only_teacher)  # each teacher alone explains some labels


def test_a_network_teacher_gives_its_models_probabilities():
    from learnlab.distill import NetworkTeacher

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 4)
    x = torch.randn(5000, 2)
    proba = NetworkTeacher(model, 4).predict_proba(x)
    torch.testing.assert_close(proba, torch.softmax(model(x), dim=-1))
    assert not model.training  # predicted in eval mode
