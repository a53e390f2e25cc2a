import math

import pytest
import torch

from learnlab.models.icl_transformer import ICLTransformer, ICLTransformerConfig
from learnlab.models.minimal_induction import MinimalInductionConfig, MinimalInductionModel
from learnlab.probes.hooks import capture


def test_parameter_count_is_the_papers_about_5440_for_k2():
    model = ICLTransformer(2, ICLTransformerConfig(), seeds=[0])
    # embedding 32 + 2 x (QKV 768 + O 256 + relative 100 x 16 + LayerNorm 32) + final LayerNorm 32 + head 32
    assert model.n_parameters() == 5408


@pytest.mark.parametrize("cfg", [ICLTransformerConfig(), ICLTransformerConfig(heads=(2, 1), d_model=32),
                                 ICLTransformerConfig(n_layers=1, heads=(1,), mlp=True, rel_dropout="per_row")])
def test_layer_one_token_tables_equal_the_plain_computation(cfg):
    model = ICLTransformer(3, cfg, seeds=[0, 1])
    x = torch.randint(0, 3, (2, 4, 100))
    for training in (False, True):
        model.train(training)
        torch.manual_seed(0)
        fast = model(x)
        model.token_tables = False
        torch.manual_seed(0)
        plain = model(x)
        model.token_tables = True
        assert torch.allclose(fast, plain, atol=1e-5)


def test_causal_and_last_position_only():
    model = ICLTransformer(2, ICLTransformerConfig(), seeds=[0]).eval()
    x = torch.randint(0, 2, (1, 8, 100))
    changed = x.clone()
    changed[..., 60:] = 1 - changed[..., 60:]
    with torch.no_grad():
        full = model(x)
        assert torch.allclose(model(changed)[:, :, :60], full[:, :, :60], atol=1e-6)
        assert torch.allclose(model(x, last_position_only=True)[:, :, -1], full[:, :, -1], atol=1e-5)


def test_a_replica_is_the_model_of_its_seed():
    together = ICLTransformer(2, ICLTransformerConfig(), seeds=[5, 6]).eval()
    alone = ICLTransformer(2, ICLTransformerConfig(), seeds=[6]).eval()
    x = torch.randint(0, 2, (1, 3, 50))
    with torch.no_grad():
        assert torch.allclose(together(x.expand(2, -1, -1))[1], alone(x)[0], atol=1e-6)


def test_hooks_capture_patterns_and_are_removed():
    model = ICLTransformer(2, ICLTransformerConfig(), seeds=[0]).eval()
    with torch.no_grad(), capture(model, ["layers.0.attn.hook_pattern"]) as seen:
        model(torch.randint(0, 2, (1, 2, 10)))
    pattern = seen["layers.0.attn.hook_pattern"]
    assert pattern.shape == (1, 2, 1, 10, 10)
    assert torch.allclose(pattern.sum(-1), torch.ones(1, 2, 1, 10))
    assert torch.all(pattern.triu(1) == 0)  # causal
    assert not model.layers[0].attn.hook_pattern._forward_hooks
    with pytest.raises(KeyError, match="no hook point"):
        with capture(model, ["layers.9.attn.hook_pattern"]):
            pass


def test_minimal_model_is_causal_and_counts_transitions():
    model = MinimalInductionModel(2, MinimalInductionConfig(max_len=20), seeds=[0])
    x = torch.randint(0, 2, (1, 3, 20))
    changed = x.clone()
    changed[..., 12:] = 1 - changed[..., 12:]
    assert torch.allclose(model(changed)[:, :, :12], model(x)[:, :, :12])
    # With v putting all weight on offset 1 and W = I, the logits count tokens that
    # followed earlier occurrences of the current token: the bigram counts.
    with torch.no_grad():
        model.v.zero_()
        model.v[0, 1] = 50.0
        model.w.copy_(torch.eye(2))
    seq = torch.tensor([[[0, 1, 0, 0, 1, 0]]])
    logits = model(seq)[0, 0, -1]
    # current token 0; followers of earlier 0s: 1, 0, 1; and position 0, which can only
    # attend to itself (h_0 = e_{x_0} = e_0), adds one count of token 0.
    assert torch.allclose(logits, torch.tensor([2.0, 2.0]), atol=1e-3)


def _reference_logits(model: ICLTransformer, idx: torch.Tensor) -> torch.Tensor:
    """The official code's attention written plainly: q . k_j + q . r_{i-j} over the gathered
    (T, T, d_head) encoding, -inf above the diagonal, softmax, @ v (no dropout)."""
    S, B, T = idx.shape
    x = model.wte[torch.arange(S)[:, None, None], idx]  # (S, B, T, d)
    offsets = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # i - j
    for layer in model.layers:
        attention = layer.attn
        nh, hs = attention.n_heads, attention.d_head
        d = nh * hs
        q, k, v = (layer.ln_attn(x) @ attention.w_qkv.unsqueeze(1)).split(d, dim=-1)
        q, k, v = (t.reshape(S, B, T, nh, hs).transpose(2, 3) for t in (q, k, v))  # (S, B, nh, T, hs)
        gathered = attention.rel[:, :, offsets.clamp_min(0)] * (offsets >= 0)[None, None, :, :, None]  # (S, nh, T, T, hs)
        scores = (q @ k.transpose(-2, -1) + torch.einsum("sbhid,shijd->sbhij", q, gathered)) / math.sqrt(hs)
        pattern = torch.softmax(scores.masked_fill(offsets < 0, float("-inf")), dim=-1)
        mixed = (pattern @ v).transpose(2, 3).reshape(S, B, T, d)
        x = x + mixed @ attention.w_out.unsqueeze(1)
        if layer.mlp is not None:
            x = x + layer.mlp(layer.ln_mlp(x))
    return model.ln_final(x) @ model.head.unsqueeze(1)


@pytest.mark.parametrize("cfg", [ICLTransformerConfig(max_len=40), ICLTransformerConfig(heads=(2, 1), d_model=32, max_len=40),
                                 ICLTransformerConfig(n_layers=1, heads=(1,), mlp=True, max_len=40)])
def test_logits_and_gradients_equal_the_plain_official_computation(cfg):
    # The fused attention (hand-written backward, batch-first buffers) against autograd
    # through the plain formula, for two seeds stacked; no dropout (eval mode).
    model = ICLTransformer(3, cfg, seeds=[0, 1]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0 if p.dim() >= 3 else 1.0)  # sharper attention than at init
    idx = torch.randint(0, 3, (2, 4, 40))
    weights = torch.randn(2, 4, 40, 3)
    for token_tables in (True, False):
        model.token_tables = token_tables
        fast = model(idx)
        (fast * weights).sum().backward()
        fast_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        plain = _reference_logits(model, idx)
        (plain * weights).sum().backward()
        assert torch.allclose(fast, plain, atol=1e-4, rtol=1e-4)
        for p, fast_grad in zip(model.parameters(), fast_grads):
            assert torch.allclose(fast_grad, p.grad, atol=1e-4, rtol=1e-3)
        model.zero_grad()


def test_a_captured_pattern_is_not_overwritten_by_the_next_forward():
    # Attention buffers are reused across steps, but never one a hook may still hold.
    model = ICLTransformer(2, ICLTransformerConfig(), seeds=[0])
    for training in (True, False):
        model.train(training)
        with capture(model, ["layers.0.attn.hook_pattern", "layers.1.attn.hook_pattern"]) as seen:
            model(torch.randint(0, 2, (1, 3, 100)))
            kept = {name: (tensor, tensor.clone()) for name, tensor in seen.items()}
            model(torch.randint(0, 2, (1, 3, 100)))
        for tensor, copy in kept.values():
            assert torch.equal(tensor, copy)


def test_minimal_model_running_sums_equal_the_linear_attention():
    # logits_t = sum_{j <= t} (e_{x_t}^T W h_j) e_{x_j}, written with the (T, T) attention matrix.
    model = MinimalInductionModel(3, MinimalInductionConfig(max_len=30), seeds=[0, 1])
    with torch.no_grad():
        model.v.copy_(torch.randn_like(model.v))
        model.w.copy_(torch.randn_like(model.w))
    idx = torch.randint(0, 3, (2, 5, 30))
    logits = model(idx)
    e = torch.nn.functional.one_hot(idx, 3).float()
    offsets = torch.arange(30)[:, None] - torch.arange(30)[None, :]
    mixing = torch.softmax(model.v[:, offsets.clamp_min(0)].masked_fill(offsets < 0, float("-inf")), dim=-1)
    h = mixing.unsqueeze(1) @ e
    attention = ((e @ model.w.unsqueeze(1)) @ h.transpose(-2, -1)).masked_fill(offsets < 0, 0.0)
    plain = attention @ e
    assert torch.allclose(logits, plain, atol=1e-5)
    grads = torch.autograd.grad(logits.square().sum(), [model.v, model.w])
    expected = torch.autograd.grad(plain.square().sum(), [model.v, model.w])
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
