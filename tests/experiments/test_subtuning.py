from dataclasses import replace

import numpy as np
import pytest

from learnlab.experiments import subtuning
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def test_smoke_run_stores_a_reusable_backbone_and_checks_every_claim(store, smoke_run):
    cfg = subtuning.presets()["smoke"]
    shared, run_id = smoke_run(subtuning.NAME)  # the session's smoke run, shared with the contract test
    record = shared.get_run(run_id)
    assert record.status == "completed", record.error
    claims = {c.name: c for c in record.claims()}
    assert {"later-blocks-matter-more", "low-data-greedy-vs-ft-shift", "more-blocks-with-more-data-shift",
            "greedy-cap-did-not-bind", "multitask-outputs-equal", "multitask-flops"} <= set(claims)
    assert "more-blocks-with-more-data-new_classes" not in claims  # greedy runs on greedy_targets only
    assert claims["multitask-outputs-equal"].passed and claims["multitask-flops"].passed
    assert claims["later-blocks-matter-more"].kind == "reproduction" and claims["multitask-flops"].kind == "sanity"
    profile = [record.series(f"shift/profile_block{b}").values[-1] for b in range(4)]
    assert all(len(v) == cfg.n_seeds for v in profile)
    weights = record.artifacts()["backbone.pt"]
    again = replace(cfg, weights_path=str(weights), targets=("new_classes",), greedy_targets=(), sizes=(5,),
                    greedy_sizes=())
    reused = store.get_run(execute(subtuning, again, store=store, device="cpu", quiet=True).run_id)
    assert reused.status == "completed" and np.isnan(reused.series("pretrain/source_acc").values[-1])


def test_new_classes_come_from_new_templates():
    from mnist1d.data import get_templates

    from learnlab.experiments.subtuning.data import target
    from learnlab.tasks.mnist1d import new_templates

    new = new_templates(1234)
    assert new["x"].shape == np.asarray(get_templates()["x"]).shape
    assert not np.allclose(new["x"], get_templates()["x"])
    x, y = target("new_classes", 100, seed=3)
    assert x.shape == (100, 40) and sorted(set(y.tolist())) == list(range(10))


def test_config_errors_are_one_line(tmp_path, capsys):
    from learnlab.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["run", "subtuning", "--preset", "smoke", f"weights_path={tmp_path / 'none.pt'}", "--store", store]) == 2
    assert "is not a file" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"nonsense")
    assert main(["run", "subtuning", "--preset", "smoke", f"weights_path={tmp_path / 'bad.pt'}", "--store", store,
                 "--quiet"]) == 2
    assert "not a resnet1d(channels=4, blocks_per_stage=1) state dict" in capsys.readouterr().err
    assert main(["run", "subtuning", "--preset", "smoke", "targets=new_classes", "--store", store]) == 2
    assert "'greedy_targets' ['shift'] must be among 'targets' ['new_classes']" in capsys.readouterr().err


def test_paper_preset_runs_on_tiny_random_resnet50_weights_and_images(store, tmp_path, capsys):
    import torch

    from learnlab.cli import main
    from learnlab.models.resnet50 import ResNet50

    torch.save(ResNet50(n_classes=1000, width=4, layers=(1, 1, 1, 1)).state_dict(), tmp_path / "r50.pth")
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    images = rng.integers(0, 256, (60, 16, 16, 3)).astype(np.uint8)
    images[labels == 1, :8] = 255  # a learnable difference
    np.savez(tmp_path / "images.npz", x_train=images, y_train=labels, x_test=images[::2], y_test=labels[::2])
    args = ["run", "subtuning", "--preset", "paper", "--weights", str(tmp_path / "r50.pth"), "--data",
            str(tmp_path / "images.npz"), "resnet_width=4", "resnet_layers=1,1,1,1", "n_seeds=2", "sizes=5",
            "profile_size=5", "greedy_sizes=5", "greedy_max_blocks=1", "steps=3", "batch_size=8", "n_test=30",
            "--store", str(tmp_path / "s.sqlite"), "--quiet"]
    assert main(args) == 0
    from learnlab.store import Store

    record = Store(tmp_path / "s.sqlite").list_runs()[0]
    assert record.series("data/n_blocks").values[-1] == 4  # layer1.0 ... layer4.0
    assert record.series("data/profile_block3").values.shape == (1, 2)
    names = [c.name for c in record.claims()]
    assert names == ["later-blocks-matter-more-data", "low-data-greedy-vs-ft-data", "low-data-greedy-vs-lp-data",
                     "greedy-cap-did-not-bind"]
    capsys.readouterr()
    assert main(args + ["resnet_width=8"]) == 2  # weights of another width
    assert "not a ResNet-50 (width 8" in capsys.readouterr().err


def test_paper_preset_with_a_tiny_random_vit(tmp_path):
    import torch

    from learnlab.cli import main
    from learnlab.models.vit import VisionTransformer
    from learnlab.store import Store

    torch.save(VisionTransformer(16, 4, 2, 2, 8, 16).state_dict(), tmp_path / "vit.pth")
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 20)
    images = rng.normal(size=(40, 3, 12, 12)).astype(np.float32)  # resized to the ViT's 16 x 16
    np.savez(tmp_path / "images.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    assert main(["run", "subtuning", "--preset", "paper", "arch=vit_b16", "vit=16,4,2,2,8,16", "--weights",
                 str(tmp_path / "vit.pth"), "--data", str(tmp_path / "images.npz"), "n_seeds=1", "sizes=5",
                 "profile_size=5", "greedy_sizes=5", "greedy_max_blocks=1", "steps=2", "batch_size=8", "n_test=40",
                 "--store", str(tmp_path / "s.sqlite"), "--quiet"]) == 0
    record = Store(tmp_path / "s.sqlite").list_runs()[0]
    assert record.series("data/n_blocks").values[-1] == 2
