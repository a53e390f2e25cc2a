"""learnlab.finetune: exact freezing, cached training, greedy selection, multi-task inference, adapters."""

import copy
import itertools

import pytest
import torch
import torch.nn as nn

from learnlab.finetune import (FitConfig, MultiTaskSubTuned, SubTuned, accuracy, add_lora, fit, flops, from_resnet,
                               greedy_subtuning)
from learnlab.models.resnet1d import resnet1d


def _pretrained(seed=0):
    torch.manual_seed(seed)
    backbone = resnet1d(n_classes=4, channels=4)
    x = torch.randn(64, 40)
    backbone.train()
    with torch.no_grad():  # move the BatchNorm statistics away from their init
        for _ in range(3):
            backbone(x + torch.randn_like(x))
    return backbone.eval()


def _data(n=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 40, generator=g)
    return x, (x[:, :20].sum(1) > 0).long() + 2 * (x[:, 20:].sum(1) > 0).long()


def test_frozen_parameters_and_batchnorm_buffers_stay_bit_identical():
    backbone = _pretrained()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    x, y = _data()
    model = fit(SubTuned(backbone, [5, 7], 4, example=x), x, y, FitConfig(epochs=3, batch_size=16, cache=False))
    after = model.backbone.state_dict()
    for name, value in before.items():
        if name.startswith("head"):
            continue
        tuned = name.startswith("blocks.5.") or name.startswith("blocks.7.")
        assert torch.equal(after[name], value) != tuned or "num_batches" in name, name
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())  # the pretrained model untouched


def test_training_on_cached_prefix_activations_equals_training_through_the_prefix():
    backbone = _pretrained()
    x, y = _data()
    cfg = FitConfig(epochs=2, batch_size=16)
    start = SubTuned(backbone, [6], 4, example=x)
    twin = copy.deepcopy(start)
    cached = fit(start, x, y, cfg, seed=3)
    direct = fit(twin, x, y, FitConfig(epochs=2, batch_size=16, cache=False), seed=3)
    for p, q in zip(cached.parameters(), direct.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
    assert accuracy(cached, x, y) == accuracy(direct, x, y)


def test_linear_probe_full_finetune_and_siamese_heads():
    backbone = _pretrained()
    x, _ = _data()
    probe = SubTuned(backbone, [], 4, example=x)
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    full = SubTuned(backbone, range(len(backbone)), 4, example=x, tune_stem=True)
    assert all(p.requires_grad for n, p in full.named_parameters())
    siamese = SubTuned(backbone, [7], 4, example=x, siamese=True)
    assert siamese.head.in_features == 2 * probe.head.in_features
    with pytest.raises(ValueError, match="not all in"):
        SubTuned(backbone, [8], 4, example=x)


def _oracle(values, interaction=0.0):
    """A mocked accuracy with a known optimum: additive block values, diminishing by ``interaction``."""
    def score(blocks):
        total = sum(values[b] for b in blocks)
        return 0.5 + total - interaction * len(blocks) ** 2
    return score


def test_greedy_forward_finds_the_known_optimum_within_the_call_budget():
    values = [0.0, 0.001, 0.02, 0.0, 0.05, 0.003, 0.08, 0.0]
    result = greedy_subtuning(_oracle(values), 8, epsilon=0.005)
    assert result["blocks"] == (2, 4, 6)  # every block worth more than epsilon, nothing else
    rounds = len(result["history"])  # the empty start plus one row per added block
    assert result["calls"] <= 1 + 8 * rounds
    exhaustive = max((frozenset(c) for r in range(9) for c in itertools.combinations(range(8), r)),
                     key=_oracle(values))
    assert set(result["blocks"]) <= exhaustive
    capped = greedy_subtuning(_oracle(values), 8, epsilon=0.005, max_blocks=1)
    assert capped["blocks"] == (6,) and capped["calls"] == 1 + 8


def test_stop_rules_backward_and_best_of_both():
    values = [0.0, 0.001, 0.02, 0.0, 0.05, 0.003, 0.08, 0.0]
    drop = greedy_subtuning(_oracle(values), 8, epsilon=0.005, stop="drop")
    assert set(drop["blocks"]) >= {1, 2, 4, 5, 6}  # keeps adding while nothing drops (the official rule)
    backward = greedy_subtuning(_oracle(values, interaction=0.002), 8, epsilon=0.0, direction="backward")
    assert set(backward["blocks"]) <= {2, 4, 6} and backward["history"][0][0] == tuple(range(8))
    oracle = _oracle(values, interaction=0.002)
    forward = greedy_subtuning(oracle, 8, epsilon=0.001)
    backward = greedy_subtuning(oracle, 8, epsilon=0.001, direction="backward")
    best = greedy_subtuning(oracle, 8, epsilon=0.001, direction="best")
    assert best["score"] == max(forward["score"], backward["score"])
    assert best["blocks"] in (forward["blocks"], backward["blocks"])
    assert best["calls"] == forward["calls"] + backward["calls"]


def test_multitask_inference_equals_separate_models_and_shares_the_trunk():
    backbone = _pretrained()
    x, y = _data()
    cfg = FitConfig(epochs=1, batch_size=16)
    tasks = [fit(SubTuned(backbone, blocks, 4, example=x), x, y, cfg, seed=s) for s, blocks in
             enumerate(([7], [7], [6, 7], [3]))]
    merged = MultiTaskSubTuned(tasks)
    for separate, together in zip(tasks, merged(x)):
        assert torch.allclose(separate(x), together, atol=1e-5)
    one = flops(backbone, x)
    last_block = flops(backbone.blocks[7], backbone.run_blocks(backbone.stem(x), 0, 7))
    head = flops(tasks[1].head, backbone.features(x))
    # Two tasks tuning the last block: one model plus one more last block and head, exactly.
    assert flops(MultiTaskSubTuned(tasks[:2]), x) == one + last_block + head
    assert flops(MultiTaskSubTuned(tasks), x) < 4 * one  # four separate models
    other = SubTuned(_pretrained(seed=5), [7], 4, example=x)
    with pytest.raises(ValueError, match="not SubTuned from one backbone"):
        MultiTaskSubTuned([tasks[0], other])


class _TorchvisionStyleResNet(nn.Module):
    """torchvision's attribute names, two stages of one block each (torchvision is not installed)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))
        self.layer2 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
        self.layer3, self.layer4 = nn.Sequential(), nn.Sequential(nn.Conv2d(8, 8, 1))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 3)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_resnet_adapter_exposes_residual_blocks_in_order():
    model = _TorchvisionStyleResNet().eval()
    blockwise = from_resnet(model)
    assert blockwise.block_names == ["layer1.0", "layer2.0", "layer2.1", "layer4.0"]
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(blockwise(x), model(x))
    assert blockwise.blocks[1] is model.layer2[0]  # shared, not copied


def test_hf_encoder_adapter_on_a_tiny_random_bert():
    transformers = pytest.importorskip("transformers")
    from learnlab.finetune import from_hf_encoder

    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                     intermediate_size=32)
    model = transformers.BertModel(config).eval()
    blockwise = from_hf_encoder(model, pooling="cls")
    ids = torch.randint(0, 50, (2, 7))
    assert len(blockwise) == 3
    assert torch.allclose(blockwise.features(ids), model(ids).last_hidden_state[:, 0], atol=1e-5)


def test_lora_starts_at_the_base_model_and_trains_only_its_factors():
    block = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    reference = [m.weight.clone() for m in block if isinstance(m, nn.Linear)]
    x = torch.randn(4, 6)
    before = block(x)
    add_lora(block, rank=2)
    assert torch.allclose(block(x), before)
    trainable = sorted(n for n, p in block.named_parameters() if p.requires_grad)
    assert trainable == ["0.lora_a", "0.lora_b", "2.lora_a", "2.lora_b"]
    block(x).sum().backward()
    assert torch.equal(block[0].base.weight, reference[0])


def test_vit_adapter_matches_the_model_and_counts_torchvision_parameters():
    from learnlab.finetune import from_vit
    from learnlab.models.resnet50 import ResNet50
    from learnlab.models.vit import VisionTransformer

    model = VisionTransformer(image_size=16, patch_size=4, layers=3, heads=2, dim=8, mlp_dim=16, n_classes=3).eval()
    blockwise = from_vit(model)
    x = torch.randn(2, 3, 16, 16)
    assert len(blockwise) == 3 and torch.allclose(blockwise(x), model(x), atol=1e-6)
    # torchvision's vit_b_16 and resnet50, parameter for parameter
    assert sum(p.numel() for p in VisionTransformer().parameters()) == 86_567_656
    assert sum(p.numel() for p in ResNet50().parameters()) == 25_557_032
    assert len(from_resnet(ResNet50())) == 16


def test_stacked_replicas_train_exactly_as_separate_fits():
    """Replica s of a SubTunedStack (entering at its own first tuned block from cached prefix
    activations) ends where fit(SubTuned(...)) ends on its own: parameters, BatchNorm buffers, outputs."""
    from learnlab.finetune import Prefixes, Replica, SubTunedStack, fit_many
    from learnlab.runtime import seed_everything

    backbone = _pretrained()
    x, y = _data(n=60)
    g = torch.Generator().manual_seed(2)
    cfg = FitConfig(epochs=3, batch_size=16)
    specs = [((5, 7), False, 3), ((), False, 4), (tuple(range(8)), True, 5), ((2,), False, 6), ((7,), False, 7)]
    replicas = [Replica(blocks, torch.randperm(60, generator=g)[:40], seed, tune_stem=stem)
                for blocks, stem, seed in specs]
    pool = (Prefixes(backbone, x), y)
    accuracies, kept = fit_many(backbone, pool, pool, replicas, 4, cfg, max_replicas=3, keep=range(5))
    for r, replica in enumerate(replicas):
        seed_everything(replica.seed)  # the stack builds replica s's head after seeding s
        alone = fit(SubTuned(backbone, replica.blocks, 4, example=x, tune_stem=replica.tune_stem),
                    x[replica.train], y[replica.train], cfg, seed=replica.seed)
        if replica.tune_stem:  # full finetuning: AdamW turns rounding-level gradients into lr-sized steps
            assert torch.allclose(alone(x), kept[r](x), atol=0.05)
            continue
        for (name, a), b in zip(alone.state_dict().items(), kept[r].state_dict().values()):
            assert torch.allclose(a.float(), b.float(), atol=1e-5), (r, name)
        assert accuracies[r] == accuracy(alone, x, y)
    stack = SubTunedStack(backbone, [[7], []], 4, seeds=[0, 1], example=x)
    assert stack((pool[0], torch.arange(6).expand(2, 6))).shape == (2, 6, 4)


def test_greedy_in_lockstep_equals_greedy_one_at_a_time():
    from learnlab.finetune import greedy_many

    oracles = [_oracle([0.0, 0.001, 0.02, 0.0, 0.05, 0.003, 0.08, 0.0]), _oracle([0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1], 0.002)]
    batches = []

    def score_many(requests):
        batches.append(len(requests))
        return [oracles[p](blocks) for p, blocks in requests]

    together = greedy_many(score_many, 2, 8, epsilon=0.005)
    for oracle, result in zip(oracles, together):
        assert result == greedy_subtuning(oracle, 8, epsilon=0.005)
    assert len(batches) == max(len(r["history"]) for r in together)  # one batched call a round
