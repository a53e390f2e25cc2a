"""Mamba: the three scans agree (the compiled kernel, its pure-PyTorch fallback, the parallel scan); one
block equals transformers' MambaMixer, outputs and gradients."""

import shutil

import pytest
import torch

from learnlab.models import _scan
from learnlab.models.mamba import Mamba, MambaBlock, MambaConfig, _causal_depthwise_conv, resolve_scan, selective_scan



@pytest.fixture
def needs_kernel():
    """Skips where the compiled scan did not build (built or loaded from the cache on first use, not at import)."""
    if _scan.kernel() is None:
        pytest.skip("the compiled scan did not build here")


def _scan_inputs(b, T, c, n, *, extras: bool, dtype=torch.float32, seed=0):
    """x, delta, A, B, C and, with extras, D, z and delta_bias; all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    args = [torch.randn(b, T, c, generator=g, dtype=dtype), torch.rand(b, T, c, generator=g, dtype=dtype),
            -torch.rand(c, n, generator=g, dtype=dtype) - 0.1, torch.randn(b, T, n, generator=g, dtype=dtype),
            torch.randn(b, T, n, generator=g, dtype=dtype)]
    kwargs = {}
    if extras:  # delta around 0 through a softplus: both sides of its curve
        args[1] = torch.randn(b, T, c, generator=g, dtype=dtype)
        args += [torch.randn(c, generator=g, dtype=dtype), torch.randn(b, T, c, generator=g, dtype=dtype)]
        kwargs = {"delta_bias": torch.randn(c, generator=g, dtype=dtype), "delta_softplus": True}
    args = [a.requires_grad_(True) for a in args]
    kwargs = {k: v.requires_grad_(True) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    return args, kwargs


def _outputs_and_gradients(method, args, kwargs):
    y = selective_scan(*args, **kwargs, method=method)
    T = y.shape[1]
    inputs = [*args, *(v for v in kwargs.values() if isinstance(v, torch.Tensor))]
    weights = torch.linspace(-1, 1, T, dtype=y.dtype).view(1, T, 1)
    return y, torch.autograd.grad((y * weights).sum(), inputs)


@pytest.mark.parametrize("extras", [False, True], ids=["scan", "with-D-z-bias-softplus"])
def test_the_scans_agree_on_outputs_and_gradients(extras):
    # T not a power of two; 70 channels: two kernel blocks, the second partial; n = 5: no specialised size
    args, kwargs = _scan_inputs(2, 37, 70, 5, extras=extras)
    methods = ["sequential", "parallel"] + (["compiled"] if _scan.kernel() is not None else [])
    (y_ref, g_ref), *others = [_outputs_and_gradients(m, args, kwargs) for m in methods]
    for method, (y, grads) in zip(methods[1:], others):
        assert torch.allclose(y, y_ref, rtol=1e-5, atol=1e-5), method
        for a, b_ in zip(grads, g_ref):
            assert torch.allclose(a, b_, rtol=1e-4, atol=1e-4), method


@pytest.mark.parametrize("n", [16, 3])  # a state size the kernel specialises; one it does not
def test_the_compiled_scan_passes_gradcheck(n, needs_kernel):
    args, kwargs = _scan_inputs(1, 4, 66, n, extras=True, dtype=torch.float64, seed=1)  # two channel blocks
    tensors = [*args, kwargs["delta_bias"]]
    assert torch.autograd.gradcheck(
        lambda *t: selective_scan(*t[:7], delta_bias=t[7], delta_softplus=True, method="compiled"), tensors)
    plain, _ = _scan_inputs(1, 5, 3, n, extras=False, dtype=torch.float64, seed=2)
    assert torch.autograd.gradcheck(lambda *t: selective_scan(*t, method="compiled"), plain)


def test_the_compiled_scan_handles_softplus_past_its_threshold_and_bfloat16(needs_kernel):
    args, kwargs = _scan_inputs(2, 9, 8, 4, extras=True)
    with torch.no_grad():
        kwargs["delta_bias"][:4] += 25.0  # softplus(v) = v beyond 20, as in torch
    reference = _outputs_and_gradients("sequential", args, kwargs)
    compiled = _outputs_and_gradients("compiled", args, kwargs)
    for a, b_ in zip([reference[0], *reference[1]], [compiled[0], *compiled[1]]):
        assert torch.allclose(a, b_, rtol=1e-4, atol=1e-4)
    low = [a.detach().bfloat16() for a in args[:5]]  # as under bf16 autocast: computed in float32
    y = selective_scan(*low, method="compiled")
    assert y.dtype == torch.bfloat16
    reference = selective_scan(*(a.float() for a in low), method="sequential")
    assert torch.allclose(y.float(), reference, rtol=2e-2, atol=2e-2)


def test_the_vector_path_matches_torch_from_softplus_far_below_zero_to_past_its_threshold(needs_kernel):
    # 64 channels: one full block, the vector path (inlined exp and softplus); the biases spread the softplus
    # arguments over [-40, 40] (far below zero, where it is ~exp(v); past 20, where torch returns v itself)
    # and the gates over both sides of the sigmoid, with decays down to exp(-87) and below
    args, kwargs = _scan_inputs(2, 33, 64, 16, extras=True, seed=3)
    with torch.no_grad():
        kwargs["delta_bias"].copy_(torch.linspace(-40, 40, 64))
        args[2].mul_(4.0)  # A down to -4.4: Delta A below -87 for the largest Deltas
        args[6].mul_(8.0)  # z
    reference = _outputs_and_gradients("sequential", args, kwargs)
    compiled = _outputs_and_gradients("compiled", args, kwargs)
    for a, b_ in zip([reference[0], *reference[1]], [compiled[0], *compiled[1]]):
        assert torch.isfinite(b_).all()
        assert torch.allclose(a, b_, rtol=1e-4, atol=1e-4 * a.abs().max().item())
    v = torch.linspace(-40, 40, 64)  # the softplus itself, through delta with x = 1, B = C = 1, A -> 0
    ones = torch.ones(1, 1, 64)
    y = selective_scan(ones, torch.zeros(1, 1, 64), torch.full((64, 16), -1e-30), torch.ones(1, 1, 16),
                       torch.ones(1, 1, 16), delta_bias=v, delta_softplus=True, method="compiled")
    expected = 16 * torch.nn.functional.softplus(v)
    assert torch.allclose(y.flatten(), expected, rtol=2e-6, atol=0)


def test_auto_takes_the_kernel_when_it_builds_and_the_pure_pytorch_scan_when_not(monkeypatch):
    built = _scan.kernel() is not None
    assert resolve_scan("auto", torch.device("cpu")) == ("compiled" if built else "sequential")
    assert resolve_scan("auto", torch.device("meta")) == "parallel"  # any accelerator
    monkeypatch.setattr(_scan, "kernel", lambda: None)  # as where no compiler is installed
    assert resolve_scan("auto", torch.device("cpu")) == "sequential"
    args, kwargs = _scan_inputs(1, 4, 3, 2, extras=False)
    with pytest.raises(RuntimeError, match="compiled selective scan"):
        selective_scan(*args, method="compiled")
    with pytest.raises(RuntimeError, match="compiled selective scan"):
        MambaBlock(MambaConfig(d_model=4, d_state=2, scan="compiled"))(torch.randn(1, 3, 4))


def test_a_model_trained_through_the_fallback_gets_the_compiled_models_loss_and_gradients(monkeypatch, needs_kernel):
    torch.manual_seed(5)
    model = Mamba(MambaConfig(d_model=40, n_layer=2, d_state=16))  # scan="auto"; 80 channels: two kernel blocks
    idx = torch.randint(0, 30, (3, 21))

    def loss_and_grads():
        model.zero_grad()
        _, loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    compiled_loss, compiled_grads = loss_and_grads()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as train.precision=bf16 runs it
        compiled_bf16, _ = loss_and_grads()
    monkeypatch.setattr(_scan, "kernel", lambda: None)
    fallback_loss, fallback_grads = loss_and_grads()
    assert torch.allclose(compiled_loss, fallback_loss, rtol=1e-5, atol=1e-6)
    for name, grad in compiled_grads.items():
        assert torch.allclose(grad, fallback_grads[name], rtol=1e-4, atol=1e-6), name
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fallback_bf16, _ = loss_and_grads()
    assert torch.allclose(compiled_bf16, fallback_bf16, rtol=1e-2)


def test_a_failed_build_warns_and_falls_back(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension: c++: not found")

    monkeypatch.setattr(torch.utils.cpp_extension, "load_inline", no_compiler)
    with pytest.warns(RuntimeWarning, match="pure-PyTorch scan"):
        assert _scan.kernel.__wrapped__() is None
    monkeypatch.setenv("LEARNLAB_SCAN_KERNEL", "0")
    assert _scan.kernel.__wrapped__() is None  # switched off: no build tried, no warning


@pytest.mark.skipif(shutil.which("c++") is None or shutil.which("ninja") is None, reason="no c++ or ninja")
def test_the_kernel_builds_where_there_is_a_compiler():
    assert _scan.kernel() is not None


def test_the_channels_last_causal_conv_is_the_depthwise_conv1d():
    torch.manual_seed(6)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    xz = torch.randn(2, 11, 12, requires_grad=True)
    x = xz[..., :6]  # the x half of in_proj's output, a strided view, as in the block
    weights = torch.randn(2, 11, 6)
    ours = _causal_depthwise_conv(x, conv.weight, conv.bias)
    theirs = conv(x.transpose(1, 2))[..., :11].transpose(1, 2)
    assert torch.allclose(ours, theirs, atol=1e-6)
    g_ours = torch.autograd.grad((ours * weights).sum(), (xz, conv.weight, conv.bias))
    g_theirs = torch.autograd.grad((theirs * weights).sum(), (xz, conv.weight, conv.bias))
    for a, b_ in zip(g_ours, g_theirs):
        assert torch.allclose(a, b_, atol=1e-5)


def test_the_compiled_block_interior_passes_gradcheck(needs_kernel):
    """conv + SiLU, x_proj, dt_proj and the scan as one node with a hand-written backward (float64)."""
    torch.manual_seed(7)
    block = MambaBlock(MambaConfig(d_model=3, d_state=3, expand=2, dt_rank=2)).double()
    xz = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    params = [block.conv1d.weight, block.conv1d.bias, block.x_proj.weight, block.dt_proj.weight, block.dt_proj.bias,
              block.A_log, block.D]
    assert torch.autograd.gradcheck(_scan.compiled_mamba_inner, (xz, *params))


def test_the_compiled_block_interior_gives_the_same_gradients_on_one_and_two_threads(needs_kernel):
    """The backward's work items are batch rows, split over threads (3 rows: unevenly), with B and C read from
    and their gradients written into column slices of x_proj's output; 128 channels: the vector path. Every
    output and gradient is bit-equal but A_log's, a sum over batch rows of per-thread partials (rounding apart)."""
    torch.manual_seed(3)
    block = MambaBlock(MambaConfig(d_model=64, d_state=16))
    xz = torch.randn(3, 9, 256, requires_grad=True)
    params = [block.conv1d.weight, block.conv1d.bias, block.x_proj.weight, block.dt_proj.weight, block.dt_proj.bias,
              block.A_log, block.D]
    weights = torch.randn(3, 9, 128)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = _scan.compiled_mamba_inner(xz, *params)
            results.append([out, *torch.autograd.grad((out * weights).sum(), [xz, *params])])
    finally:
        torch.set_num_threads(threads)
    # results: the output, xz's gradient, then the params' gradients
    a_log = 2 + next(i for i, p in enumerate(params) if p is block.A_log)
    for i, (one, two) in enumerate(zip(*results)):
        assert torch.allclose(one, two, rtol=1e-5, atol=1e-6) if i == a_log else torch.equal(one, two), i


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


# d 16 (32 channels: the kernel's generic loops) and d 64 with state 16 (128 channels: two full blocks of its
# vector path, as the benchmark shape runs)
@pytest.mark.parametrize("d_model, d_state", [(16, 4), (64, 16)], ids=["d16", "d64"])
@pytest.mark.parametrize("scan", ["compiled", "sequential", "parallel"])
def test_block_gradients_match_transformers_mamba_mixer(scan, d_model, d_state, request):
    transformers = pytest.importorskip("transformers")
    from transformers.models.mamba.modeling_mamba import MambaMixer

    if scan == "compiled":
        request.getfixturevalue("needs_kernel")
    torch.manual_seed(4)
    cfg = MambaConfig(d_model=d_model, d_state=d_state, d_conv=4, expand=2, scan=scan)
    ours = MambaBlock(cfg)
    hf_config = transformers.MambaConfig(hidden_size=d_model, state_size=d_state, conv_kernel=4, expand=2,
                                         time_step_rank=ours.rank, use_conv_bias=True, use_bias=False)
    theirs = MambaMixer(hf_config, layer_idx=0)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 13, d_model)
    weights = torch.randn(2, 13, d_model)
    (ours(x) * weights).sum().backward()
    (theirs(x) * weights).sum().backward()
    theirs_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, theirs_grads[name].grad, rtol=1e-4, atol=1e-5), name
