import itertools

import pytest
import torch

from learnlab.models.neuron import NeuronConfig, SingleNeuron, parity_activation
from learnlab.models.polynet import PolyNet, PolyNetConfig
from learnlab.tasks import parity_labels


@pytest.mark.parametrize("name", ["zigzag", "zigzag_inf", "poly"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_activations_interpolate_the_parity_of_the_support_sum(name, k):
    cube = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k)))
    sigma = parity_activation(name, k)
    assert torch.allclose(sigma(cube.sum(dim=1)), cube.prod(dim=1), atol=1e-5)


def test_a_sine_neuron_with_the_closed_form_weights_computes_the_parity():
    n, support = 8, torch.tensor([1, 4, 6])
    model = SingleNeuron(n, 3, NeuronConfig(activation="sin"), seeds=[0])
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0, support] = -torch.pi / 2
        model.bias.fill_(torch.pi * (3 + 1) / 2)
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)))
    assert torch.allclose(model(x.unsqueeze(0))[0], parity_labels(x, support), atol=1e-5)


def test_polynet_with_unit_vectors_computes_the_parity_and_disjoint_blocks_partition():
    n, support = 9, torch.tensor([0, 4, 8])
    model = PolyNet(n, 3, PolyNetConfig(), seeds=[0])
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, torch.arange(3), support] = 1.0
        model.bias.zero_()
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)))
    assert torch.allclose(model(x.unsqueeze(0))[0], parity_labels(x, support))
    disjoint = PolyNet(n, 3, PolyNetConfig(disjoint=True), seeds=[0])
    assert torch.equal(disjoint.mask.sum(dim=0), torch.ones(n)) and disjoint.mask.sum(dim=1).tolist() == [3, 3, 3]
