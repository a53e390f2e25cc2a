from dataclasses import replace

import numpy as np
import pytest
import torch

from learnlab.experiments import sampler_distillation as sd
from learnlab.runner import execute
from learnlab.tasks.gaussian_mixture import sample_gaussian_mixture

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def _npz(path, **drop):
    g = torch.Generator().manual_seed(0)
    arrays = {}
    for name, n in (("train", 300), ("unlabelled", 600), ("test", 300)):
        x, y = sample_gaussian_mixture(n, generator=g)
        arrays[f"x_{name}"] = x.numpy()
        if name != "unlabelled":
            arrays[f"y_{name}"] = y.numpy()
    for key in drop:
        arrays.pop(key)
    np.savez(path, **arrays)
    return path


def test_user_data_part_runs_teachers_and_students_on_a_supplied_npz(store, tmp_path):
    cfg = replace(sd.presets()["smoke"], parts=("data",), data_path=str(_npz(tmp_path / "mine.npz")))
    record = store.get_run(execute(sd, cfg, store=store, device="cpu", quiet=True).run_id)
    assert record.series("data_teacher_acc").values.shape == (1, cfg.pool_size)
    students = record.series("data_students/student_acc").values[-1]
    assert students.shape == (3,) and (students > 0.25).all()  # above chance on 4 classes


def test_a_bad_data_file_is_one_clear_error(tmp_path, capsys):
    from learnlab.cli import main

    path = _npz(tmp_path / "broken.npz", x_unlabelled=None)
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "sampler-distillation", "--preset", "smoke", "parts=data", f"data_path={path}",
                 "--store", store, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "missing array 'x_unlabelled'" in error and "\n" not in error
    assert main(["run", "sampler-distillation", "--preset", "smoke", "parts=data", "--store", store]) == 2
    assert "needs data_path" in capsys.readouterr().err


def test_teacher_pools_on_disjoint_overlapping_and_same_data():
    pi = torch.tensor([1, 2, 3, 0])
    sets = {kind: sd._teacher_sets(kind, 400, 3, 0.2, pi, seed=5, device="cpu")
            for kind in ("disjoint", "overlapping", "same")}

    def shared(a, b):  # examples two teachers have in common
        rows = {tuple(row) for row in a[0].tolist()}
        return sum(tuple(row) in rows for row in b[0].tolist())

    assert shared(*sets["disjoint"][:2]) == 0
    assert 120 <= shared(*sets["overlapping"][:2]) <= 280  # about half of 400
    assert shared(*sets["same"][:2]) == 400 and torch.equal(sets["same"][0][1], sets["same"][2][1])
    for x, noisy in sets["overlapping"]:
        assert x.shape == (400, 2) and noisy.shape == (400,)


def test_image_data_trains_resnet18_teachers_and_students(store, tmp_path):
    # A tiny stand-in for CIFAR-10 / CIFAR-5m: 8x8 RGB uint8 images (NHWC) whose class sets the mean colour.
    rng = np.random.default_rng(0)

    def images(n):
        y = rng.integers(0, 3, n)
        x = rng.normal(80 + 60 * y[:, None, None, None], 30, size=(n, 8, 8, 3)).clip(0, 255).astype(np.uint8)
        return x, y

    (x_train, y_train), (x_unlabelled, _), (x_test, y_test) = images(120), images(90), images(60)
    path = tmp_path / "cifar_standin.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_unlabelled=x_unlabelled, x_test=x_test, y_test=y_test)
    cfg = replace(sd.presets()["smoke"], parts=("data",), data_path=str(path), resnet_width=4, pool_size=2)
    record = store.get_run(execute(sd, cfg, store=store, device="cpu", quiet=True).run_id)
    assert record.series("data_teacher_acc").values.shape == (1, 2)
    assert record.series("data_students/student_acc").values[-1].shape == (3,)


def test_resnet18_has_the_standard_size():
    from learnlab.models.resnet import ResNet18

    model = ResNet18(3, 10, width=64)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962  # ResNet-18, CIFAR variant
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_data_flag_sets_the_data_path(tmp_path, capsys):
    from learnlab.cli import main

    path = _npz(tmp_path / "mine.npz")
    store = str(tmp_path / "s.sqlite")
    assert main(["run", "sampler-distillation", "--preset", "smoke", "parts=data", "--data", str(path),
                 "--store", store, "--quiet"]) == 0
    assert main(["run", "sampler-distillation", "--preset", "smoke", "--data", str(tmp_path / "none.npz"),
                 "--store", store]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_mnist1d_part_trains_teachers_clean_models_and_the_regularised_control(store):
    from learnlab.experiments.sampler_distillation import schema as m

    cfg = replace(sd.presets()["smoke"], parts=("mnist1d",))
    record = store.get_run(execute(sd, cfg, store=store, device="cpu", quiet=True).run_id)
    n_teachers = cfg.pool_size * cfg.n_seeds
    fits = record.series(f"{m.MNIST1D_TEACHERS}/{m.TRAIN_ACC}").values[-1]
    assert fits.shape == (n_teachers + 2 * cfg.n_seeds,)  # teachers, clean-label CNNs, controls
    assert record.series(m.MNIST1D_CONTROL_ACC).values[-1].shape == (cfg.n_seeds,)
    assert record.series(m.MNIST1D_TEACHER_ACC).values[-1].shape == (n_teachers,)
