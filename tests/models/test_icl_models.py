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


# --- the compiled kernel (models._icl_kernel) against the PyTorch path ---------------------------

from learnlab.models import _icl_kernel  # noqa: E402


@pytest.fixture
def needs_kernel():
    if _icl_kernel.library() is None:
        pytest.skip("no C compiler: the compiled ICL attention is unavailable")


def _pytorch_path(monkeypatch):
    monkeypatch.setattr(_icl_kernel, "available", lambda *tensors: False)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cfg, k, seeds", [
    (ICLTransformerConfig(), 2, [0]),
    (ICLTransformerConfig(heads=(2, 1), d_model=32, max_len=50), 3, [0, 1]),
    (ICLTransformerConfig(n_layers=3, heads=(1, 2, 1), mlp=True, rel_dropout="per_row", max_len=37), 4, [0, 1])])
def test_the_kernel_and_the_pytorch_path_draw_the_same_masks_and_give_the_same_gradients(
        cfg, k, seeds, threads, needs_kernel, monkeypatch):
    # Training mode, dropout on: the same key draws the same masks on both paths (a keyed hash of
    # each element's index), so logits and gradients agree to float rounding.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _compare_paths(cfg, k, seeds, monkeypatch)
    finally:
        torch.set_num_threads(before)


def _compare_paths(cfg, k, seeds, monkeypatch):
    model = ICLTransformer(k, cfg, seeds=seeds).train()
    T = min(cfg.max_len, 45)
    x, weights = torch.randint(0, k, (len(seeds), 5, T)), torch.randn(len(seeds), 5, T, k)
    results = []
    for token_tables in (True, False):
        model.token_tables = token_tables
        for pytorch in (False, True):
            with monkeypatch.context() as patch:
                if pytorch:
                    _pytorch_path(patch)
                torch.manual_seed(3)
                logits = model(x)
                (logits * weights).sum().backward()
            results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
            model.zero_grad()
    reference_logits, reference_grads = results[-1]  # the plain PyTorch computation
    for logits, grads in results[:-1]:
        assert torch.allclose(logits, reference_logits, atol=1e-6)
        for got, want in zip(grads, reference_grads):
            assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


def test_dropout_masks_are_the_same_bits_in_c_and_torch_and_drop_at_rate_p(needs_kernel):
    level, scale = _icl_kernel.drop_scale(0.1)
    for key in (12345, 2**62 + 987654321, 2**63 - 1):
        for first in (0, 7, 2**32 - 1000, 2**40 + 3):  # across the 32-bit boundary of the index
            compiled = _icl_kernel.keep_mask((5000,), 0.1, key, "cpu", first=first)
            bits = _icl_kernel.keep_bits(key, torch.arange(first, first + 5000))
            assert torch.equal(compiled, (bits >= level).float() * scale)
    mask = _icl_kernel.keep_mask((200_000,), 0.1, 99, "cpu")
    assert abs(float((mask == 0).float().mean()) - 0.1) < 0.004  # 4 standard errors
    assert abs(float(mask.mean()) - 1.0) < 0.01  # inverted dropout keeps the expectation
    other = _icl_kernel.keep_mask((200_000,), 0.1, _icl_kernel.site_key(99, 1), "cpu")
    assert abs(float(((mask == 0) & (other == 0)).float().mean()) - 0.01) < 0.002  # sites independent


def test_the_kernel_layer_norm_and_cross_entropy_equal_pytorch(needs_kernel):
    x = torch.randn(2, 5, 7, 16, requires_grad=True)
    weight, bias = torch.randn(2, 16, requires_grad=True), torch.randn(2, 16, requires_grad=True)
    got = _icl_kernel.LayerNorm.apply(x, weight, bias)
    want = torch.nn.functional.layer_norm(x, (16,)) * weight[:, None, None] + bias[:, None, None]
    assert torch.allclose(got, want, atol=1e-5)
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, [x, weight, bias], g), torch.autograd.grad(want, [x, weight, bias], g)):
        assert torch.allclose(a, b, atol=1e-4)
    logits, targets = torch.randn(2, 6, 9, 3, requires_grad=True), torch.randint(0, 3, (2, 6, 9))
    got = _icl_kernel.CrossEntropy.apply(logits, targets)
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), targets.reshape(-1), reduction="none").view(2, -1)
    want = want.mean(1)
    assert torch.allclose(got, want, atol=1e-6)
    g = torch.randn(2)
    assert torch.allclose(torch.autograd.grad(got, logits, g)[0], torch.autograd.grad(want, logits, g)[0], atol=1e-6)


def test_the_kernel_token_rows_equal_the_batched_matmul(needs_kernel):
    # Layer 1's rows[r, i, a] = q[r, a] @ table[r, i] (TokenRows) against torch.matmul, values and gradients
    q, table = torch.randn(3, 4, 16, requires_grad=True), torch.randn(3, 21, 16, 32, requires_grad=True)
    got, want = _icl_kernel.TokenRows.apply(q, table), torch.matmul(q.unsqueeze(1), table)
    assert torch.allclose(got, want, atol=1e-5)
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, [q, table], g), torch.autograd.grad(want, [q, table], g)):
        assert torch.allclose(a, b, atol=1e-4)


def test_without_a_compiler_the_model_takes_the_pytorch_path_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNLAB_ICL_KERNEL", raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # nothing cached there
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    _icl_kernel.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="compiled ICL attention is unavailable"):
            assert _icl_kernel.library() is None
        model = ICLTransformer(2, ICLTransformerConfig(max_len=20), seeds=[0]).train()
        model(torch.randint(0, 2, (1, 3, 20))).sum().backward()  # the PyTorch path, masks from torch ops
        _icl_kernel.library.cache_clear()
        monkeypatch.setenv("LEARNLAB_ICL_KERNEL", "0")
        assert _icl_kernel.library() is None  # switched off: no build tried
    finally:
        _icl_kernel.library.cache_clear()


def test_the_fused_residual_dropout_is_the_add_of_the_dropout_bit_for_bit(needs_kernel):
    x, y = torch.randn(2, 3, 1500, 16, requires_grad=True), torch.randn(2, 3, 1500, 16, requires_grad=True)
    got = _icl_kernel.DropoutAdd.apply(x, y, 0.1, 4242)
    want = x + _icl_kernel.Dropout.apply(y, 0.1, 4242)
    assert torch.equal(got, want)
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, [x, y], g), torch.autograd.grad(want, [x, y], g)):
        assert torch.equal(a, b)


def test_the_kernel_layer_norm_takes_many_rows_and_other_widths(needs_kernel):
    for d, rows in ((16, 2500), (12, 1100)):  # several 1,024-row work units a replica
        x = torch.randn(2, rows, d)
        weight, bias = torch.randn(2, d), torch.randn(2, d)
        want = torch.nn.functional.layer_norm(x, (d,)) * weight[:, None] + bias[:, None]
        assert torch.allclose(_icl_kernel.LayerNorm.apply(x, weight, bias), want, atol=1e-5)


@pytest.mark.parametrize("cfg, k, seeds", [
    (ICLTransformerConfig(), 2, [0]),
    (ICLTransformerConfig(heads=(2, 1), d_model=32, max_len=50), 3, [0, 1]),
    (ICLTransformerConfig(n_layers=3, heads=(1, 2, 1), max_len=37), 4, [0, 1, 2])])
def test_the_one_node_model_is_the_module_graph_bit_for_bit(cfg, k, seeds, needs_kernel):
    # _KernelModel (the whole forward one autograd node) runs the module path's kernel code and
    # autograd's matmul gradients: the same logits and gradients to the bit, with dropout and without.
    model = ICLTransformer(k, cfg, seeds=seeds)
    T = min(cfg.max_len, 45)
    x, weights = torch.randint(0, k, (len(seeds), 5, T)), torch.randn(len(seeds), 5, T, k)
    for training in (True, False):
        model.train(training)
        results = []
        for fused in (True, False):
            model.fused = fused
            assert model._fusable() == fused
            torch.manual_seed(3)
            logits = model(x)
            (logits * weights).sum().backward()
            results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
            model.zero_grad()
        (fused_logits, fused_grads), (graph_logits, graph_grads) = results
        assert torch.equal(fused_logits, graph_logits)
        assert all(torch.equal(a, b) for a, b in zip(fused_grads, graph_grads))
    model.fused = True
    with torch.no_grad():
        assert torch.equal(model(x), results[1][0])  # no graph: the forward alone
    with capture(model, ["layers.0.attn.hook_pattern"]):
        assert not model._fusable()  # a hook may keep a pattern: the module path
