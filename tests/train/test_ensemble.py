import pytest
import torch

from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.models.parity_transformer import ParityTransformer, ParityTransformerConfig
from learnlab.runtime import seed_everything
from learnlab.train.ensemble import FunctionalEnsemble, fused_gradient
from learnlab.train.losses import hinge_loss, logistic_loss, square_loss


def test_a_functional_ensemble_replica_is_the_model_of_its_seed_and_gets_its_own_gradient():
    cfg = ParityTransformerConfig(d_model=16, n_heads=2, n_layers=1)
    ensemble = FunctionalEnsemble(lambda: ParityTransformer(6, cfg), seeds=[3, 4])
    seed_everything(4)
    alone = ParityTransformer(6, cfg)
    x = torch.randint(0, 2, (2, 5, 6)).float() * 2 - 1
    out = ensemble(x)
    assert out.shape == (2, 5)
    assert torch.allclose(out[1], alone(x[1]), atol=1e-5)
    # Summing the replicas' losses gives replica 1 exactly the gradient it has alone.
    out.square().mean(dim=1).sum().backward()
    alone(x[1]).square().mean().backward()
    assert torch.allclose(ensemble.replica_params["readout_weight"].grad[1], alone.readout.weight.grad, atol=1e-6)
    assert torch.allclose(ensemble.replica_state(1)["readout.weight"], alone.readout.weight.detach())


@pytest.mark.parametrize("loss_fn", [hinge_loss, square_loss, logistic_loss])
@pytest.mark.parametrize("cfg", [MLPConfig(width=16), MLPConfig(width=16, activation="tanh", output_bias=True),
                                 MLPConfig(width=16, activation="power", power=3, bias=False),
                                 MLPConfig(width=16, activation="power", power=1)])
def test_the_fused_mlp_gradient_is_autograds(loss_fn, cfg):
    # Three replicas, two of them narrower (padded neurons masked off), the hinge's kink hit
    # exactly (f = y) on some examples: the same per-replica losses and gradients.
    model = TwoLayerMLP(7, cfg, seeds=[0, 1, 2], widths=[16, 9, 12])
    x = torch.randint(0, 2, (3, 20, 7)).float() * 2 - 1
    y = x[..., :3].prod(-1)
    gradient = fused_gradient(model, loss_fn)
    assert gradient is not None
    loss = gradient(model, x, y)
    fused = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    expected = loss_fn(model(x), y)
    expected.sum().backward()
    assert torch.allclose(loss, expected, atol=1e-6)
    for name, p in model.named_parameters():
        assert torch.allclose(fused[name], p.grad, atol=1e-6), name


def test_the_hinge_kink_takes_autograds_side():
    model = TwoLayerMLP(2, MLPConfig(width=4), seeds=[0])
    with torch.no_grad():  # f(x) = 1 exactly for every x: the margin 1 - y f is 0 at y = 1
        model.weight.zero_()
        model.bias.fill_(0.5)
        model.readout.fill_(0.5)
    x, y = torch.ones(1, 3, 2), torch.ones(1, 3)
    fused_gradient(model, hinge_loss)(model, x, y)
    fused = model.readout.grad.clone()
    model.zero_grad()
    hinge_loss(model(x), y).sum().backward()
    assert torch.equal(fused, model.readout.grad) and fused.abs().sum() > 0


def test_no_fused_gradient_where_autograd_must_run():
    model = TwoLayerMLP(5, MLPConfig(width=4, activation="gelu"), seeds=[0])
    assert fused_gradient(model, hinge_loss) is None
    model = TwoLayerMLP(5, MLPConfig(width=4), seeds=[0])
    assert fused_gradient(model, lambda f, y: (f - y).abs().mean(-1)) is None
    handle = model.register_forward_hook(lambda *args: None)
    assert fused_gradient(model, hinge_loss) is None
    handle.remove()
