import torch

from learnlab.models.deep_mlp import DeepMLP, DeepMLPConfig
from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.runtime import generator
from learnlab.models.mlp import sparse_mask


def test_sparse_init_keeps_s_entries_of_the_dense_init_per_neuron():
    dense = TwoLayerMLP(40, MLPConfig(width=50), seeds=[5])
    sparse = TwoLayerMLP(40, MLPConfig(width=50, init_sparsity=2), seeds=[5])
    nonzero = sparse.weight[0] != 0
    assert (nonzero.sum(dim=1) == 2).all()
    assert torch.equal(sparse.weight[0][nonzero], dense.weight[0][nonzero])  # same values, the rest zeroed
    # The chosen coordinates are spread over the inputs, not always the same pair.
    assert nonzero.any(dim=0).sum() > 20


def test_sparse_mask_rejects_more_nonzeros_than_inputs():
    import pytest

    with pytest.raises(ValueError, match="init_sparsity must be in"):
        sparse_mask(3, 4, 5, generator(0, "cpu"))


def test_deep_mlp_replicas_are_independent_models():
    cfg = DeepMLPConfig(width=16, depth=3)
    together = DeepMLP(6, 4, cfg, seeds=[1, 2, 3], sparsities=[None, 2, 4])
    alone = DeepMLP(6, 4, cfg, seeds=[2], sparsities=[2])
    x = torch.randn(3, 5, 6)
    assert together(x).shape == (3, 5, 4)
    torch.testing.assert_close(together(x)[1], alone(x[1:2])[0])
    assert ((together.weights[0][2] != 0).sum(dim=1) == 4).all()
    assert ((together.weights[0][0] != 0).sum(dim=1) == 6).all()  # dense
    # A replica's loss gradient reaches only its own parameters.
    together(x)[0].sum().backward()
    assert together.weights[1].grad[1:].abs().sum() == 0 and together.weights[1].grad[0].abs().sum() > 0
