"""Pure-PyTorch Mamba: the chunked scan equals the sequential one; one block equals transformers' MambaMixer."""

import pytest
import torch

from learnlab.models.mamba import Mamba, MambaBlock, MambaConfig, selective_scan


def test_parallel_and_sequential_scans_agree_on_outputs_and_gradients():
    torch.manual_seed(0)
    b, T, c, n = 2, 37, 6, 4  # T not a power of two
    x, delta = torch.randn(b, T, c, requires_grad=True), torch.rand(b, T, c, requires_grad=True)
    A = -torch.rand(c, n).requires_grad_(True)
    B, C = torch.randn(b, T, n, requires_grad=True), torch.randn(b, T, n, requires_grad=True)
    results = []
    for method in ("sequential", "parallel"):
        y = selective_scan(x, delta, A, B, C, method=method)
        grads = torch.autograd.grad((y * torch.linspace(-1, 1, T).view(1, T, 1)).sum(), (x, delta, A, B, C))
        results.append((y, grads))
    (y_seq, g_seq), (y_par, g_par) = results
    assert torch.allclose(y_par, y_seq, rtol=1e-5, atol=1e-5)
    for a, b_ in zip(g_par, g_seq):
        assert torch.allclose(a, b_, rtol=1e-5, atol=1e-4)


def test_one_block_matches_transformers_mamba_mixer_with_the_same_weights():
    transformers = pytest.importorskip("transformers")
    from transformers.models.mamba.modeling_mamba import MambaMixer

    torch.manual_seed(1)
    cfg = MambaConfig(d_model=16, d_state=4, d_conv=4, expand=2)
    ours = MambaBlock(cfg).eval()
    hf_config = transformers.MambaConfig(hidden_size=16, state_size=4, conv_kernel=4, expand=2,
                                         time_step_rank=ours.rank, use_conv_bias=True, use_bias=False)
    theirs = MambaMixer(hf_config, layer_idx=0).eval()
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and not missing
    x = torch.randn(2, 11, 16)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=1e-4, atol=1e-5)


def test_the_language_model_is_causal():
    torch.manual_seed(2)
    model = Mamba(MambaConfig(d_model=16, n_layer=2, d_state=4)).eval()
    idx = torch.randint(0, 30, (2, 20))
    changed = idx.clone()
    changed[:, 12:] = (changed[:, 12:] + 3) % 30
    with torch.no_grad():
        assert torch.allclose(model(idx)[0][:, :12], model(changed)[0][:, :12], atol=1e-5)
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert torch.isfinite(loss)


def test_the_hand_written_scan_backward_passes_gradcheck():
    torch.manual_seed(3)
    b, T, c, n = 2, 9, 3, 2
    x = torch.randn(b, T, c, dtype=torch.float64, requires_grad=True)
    delta = torch.rand(b, T, c, dtype=torch.float64, requires_grad=True)
    A = (-torch.rand(c, n, dtype=torch.float64)).requires_grad_(True)
    B = torch.randn(b, T, n, dtype=torch.float64, requires_grad=True)
    C = torch.randn(b, T, n, dtype=torch.float64, requires_grad=True)
    for chunk in (None, 1, 4):  # one chunk; every step a chunk; chunks that do not divide T
        assert torch.autograd.gradcheck(lambda *args: selective_scan(*args, method="sequential", chunk=chunk),
                                        (x, delta, A, B, C))


def test_block_gradients_match_transformers_mamba_mixer():
    transformers = pytest.importorskip("transformers")
    from transformers.models.mamba.modeling_mamba import MambaMixer

    torch.manual_seed(4)
    cfg = MambaConfig(d_model=16, d_state=4, d_conv=4, expand=2, scan="sequential")
    ours = MambaBlock(cfg)
    hf_config = transformers.MambaConfig(hidden_size=16, state_size=4, conv_kernel=4, expand=2,
                                         time_step_rank=ours.rank, use_conv_bias=True, use_bias=False)
    theirs = MambaMixer(hf_config, layer_idx=0)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 13, 16)
    weights = torch.randn(2, 13, 16)
    (ours(x) * weights).sum().backward()
    (theirs(x) * weights).sum().backward()
    theirs_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, theirs_grads[name].grad, rtol=1e-4, atol=1e-5), name
