import torch

from learnlab.models.parity_transformer import ParityTransformer, ParityTransformerConfig
from learnlab.runtime import seed_everything
from learnlab.train.ensemble import FunctionalEnsemble


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
