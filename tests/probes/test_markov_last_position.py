import pytest
import torch

from learnlab.models.icl_transformer import ICLTransformer, ICLTransformerConfig
from learnlab.probes.hooks import capture
from learnlab.probes.markov import transformer_last_position


@pytest.mark.parametrize("cfg, k", [(ICLTransformerConfig(max_len=60), 2),
                                    (ICLTransformerConfig(heads=(2, 1), d_model=32, max_len=60), 3),
                                    (ICLTransformerConfig(n_layers=3, heads=(2, 1, 2), d_model=32, mlp=True, max_len=60), 3),
                                    (ICLTransformerConfig(n_layers=1, heads=(1,), max_len=60), 2)])
def test_the_factored_evaluation_equals_the_model_with_hooks(cfg, k):
    # Layer 1 through its k x T x T tables (and layer 2 on the stream's coordinates)
    # gives what the model's own last-position forward and its hooks give.
    model = ICLTransformer(k, cfg, seeds=[0, 1]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0 if p.dim() >= 3 else 1.0)  # sharper attention than at init
    tokens = torch.randint(0, k, (70, 60))
    follows = (torch.rand(70, 60) < 0.3).float()
    fast = transformer_last_position(model, tokens, follows, rows_per_pass=64)  # several passes
    hooks = ["layers.0.attn.hook_pattern", f"layers.{len(model.layers) - 1}.attn.hook_pattern"]
    with torch.no_grad(), capture(model, hooks) as seen:
        logits = model(tokens.expand(2, -1, -1), last_position_only=True)[:, :, -1]
    assert torch.allclose(fast["logits"], logits, atol=1e-4, rtol=1e-4)
    if len(model.layers) == 1:
        assert set(fast) == {"logits"}
        return
    first, last = seen[hooks[0]], seen[hooks[1]][:, :, :, -1]
    previous = first.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=3).amax(dim=2).mean(dim=1)
    induction = (last * follows[None, :, None]).sum(-1).mean(dim=2).mean(dim=1)
    assert torch.allclose(fast["l1_prev_attention"], previous, atol=1e-6)
    assert torch.allclose(fast["l2_induction_mass"], induction, atol=1e-6)
    assert torch.allclose(fast["layer1_first"], first[:, 0, 0], atol=1e-6)
    assert torch.allclose(fast["layer2_first"], last[:, 0, 0], atol=1e-5)
    assert model.training is False


def test_the_exact_first_layer_fallback_gives_the_same_numbers(monkeypatch):
    import learnlab.probes.markov as markov

    model = ICLTransformer(3, ICLTransformerConfig(heads=(2, 1), d_model=32, max_len=50), seeds=[0, 1])
    tokens, follows = torch.randint(0, 3, (30, 50)), (torch.rand(30, 50) < 0.3).float()
    factored = transformer_last_position(model, tokens, follows)
    monkeypatch.setattr(markov, "_factored_first_layer", markov._exact_first_layer)
    exact = transformer_last_position(model, tokens, follows)
    for name in factored:
        assert torch.allclose(factored[name], exact[name], atol=1e-5)
    assert model.training  # restored


def test_the_compiled_evaluation_equals_the_pytorch_factored_path(monkeypatch):
    from learnlab.models import _icl_kernel

    if _icl_kernel.library() is None:
        pytest.skip("no C compiler")
    model = ICLTransformer(3, ICLTransformerConfig(heads=(2, 2), d_model=32, max_len=50), seeds=[0, 1])
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10.0 if p.dim() >= 3 else 1.0)
    tokens, follows = torch.randint(0, 3, (40, 50)), (torch.rand(40, 50) < 0.3).float()
    compiled = transformer_last_position(model, tokens, follows)
    monkeypatch.setattr(_icl_kernel, "available", lambda *tensors: False)
    plain = transformer_last_position(model, tokens, follows)
    assert set(compiled) == set(plain)
    for name in plain:
        assert torch.allclose(compiled[name], plain[name], atol=1e-5), name
