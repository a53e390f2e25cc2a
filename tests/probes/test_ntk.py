"""Tangent kernels: three computations agree; kernel predictors; the linearised model; edges."""

import pytest
import torch

from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.probes.ntk import (LinearisedModel, classifier_edge, empirical_ntk, first_step_edge, kernel_ridge,
                                 kernel_svm_accuracy, normalised_edge, select_ridge, tangent_features)
from learnlab.tasks.boolean import sample_boolean_task
from learnlab.train.ensemble import FunctionalEnsemble


@pytest.mark.parametrize("bias,output_bias", [(True, True), (False, False)])
def test_closed_form_jacobian_and_vjp_jvp_kernels_agree(bias, output_bias):
    model = TwoLayerMLP(7, MLPConfig(width=9, bias=bias, output_bias=output_bias), seeds=[0, 1, 2])
    x1, x2 = torch.randn(6, 7), torch.randn(5, 7)
    for replica in (0, 2):
        closed = empirical_ntk(model, x1, x2, replica=replica, method="closed_form")
        for method in ("jacobian", "vjp_jvp"):
            other = empirical_ntk(model, x1, x2, replica=replica, method=method, chunk=4)
            assert torch.allclose(closed, other, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(empirical_ntk(model, x1, x2, replica=0), empirical_ntk(model, x1, x2, replica=1))
    assert torch.allclose(empirical_ntk(model, x1), empirical_ntk(model, x1).T)  # symmetric


def test_the_general_kernel_serves_any_stacked_model():
    ensemble = FunctionalEnsemble(lambda: torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                                              torch.nn.Linear(4, 1), torch.nn.Flatten(0)), seeds=[0, 1])
    x = torch.randn(5, 3)
    features = tangent_features(ensemble, x, replica=1)
    assert features.shape == (5, sum(p[1].numel() for p in ensemble.parameters()))
    assert torch.allclose(empirical_ntk(ensemble, x, replica=1, method="vjp_jvp"), (features @ features.T).double(),
                          atol=1e-5)


def test_kernel_ridge_interpolates_with_a_tiny_ridge_and_selection_picks_from_the_grid():
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.sign(torch.randn(30, dtype=torch.float64))
    kernel = torch.exp(-torch.cdist(x, x) ** 2)
    assert torch.allclose(kernel_ridge(kernel, y, kernel, 1e-9), y, atol=1e-3)
    ridge, scores = select_ridge(kernel, y, (1e-3, 1e-1, 1.0))
    assert ridge in (1e-3, 1e-1, 1.0) and set(scores) == {1e-3, 1e-1, 1.0}


def test_ntk_ridge_and_svm_learn_an_easy_target_and_not_a_high_degree_parity():
    g = torch.Generator().manual_seed(0)
    model = TwoLayerMLP(24, MLPConfig(width=256), seeds=[0])
    results = {}
    for k in (1, 4):
        support = torch.arange(k)
        x, y = sample_boolean_task(600, n_bits=24, support=support, generator=g)
        xt, yt = sample_boolean_task(1000, n_bits=24, support=support, generator=g)
        train, test = empirical_ntk(model, x), empirical_ntk(model, xt, x)
        ridge, _ = select_ridge(train, y)
        results[k] = (float((torch.sign(kernel_ridge(train, y, test, ridge)) == yt).double().mean()),
                      kernel_svm_accuracy(train, y, test, yt))
    assert min(results[1]) >= 0.95  # a dictator
    assert max(results[4]) <= 0.62  # C(24, 4) = 10,626 parities, 600 samples


def test_the_linearised_model_is_the_first_order_taylor_model():
    base = TwoLayerMLP(5, MLPConfig(width=6, output_bias=True), seeds=[0, 1])
    lazy = LinearisedModel(base)
    x = torch.randn(2, 4, 5)
    assert torch.allclose(lazy(x), base(x))
    with torch.no_grad():
        for p in lazy.parameters():
            p.normal_(std=0.1)
    features = tangent_features(base, x[1], replica=1)
    delta = torch.cat([p[1].flatten() for p in lazy.parameters()])
    assert torch.allclose(lazy(x)[1], base(x)[1] + features @ delta, atol=1e-5)
    assert [p.shape for p in lazy.parameters()] == [p.shape for p in base.parameters()]
    lazy(x).sum().backward()  # trainable: gradients reach the displacements only
    assert all(p.grad is not None for p in lazy.parameters()) and all(p.grad is None for p in base.parameters())


def test_edges():
    y = torch.tensor([1.0, 1.0, 1.0, -1.0])
    assert classifier_edge(torch.ones(4), y) == pytest.approx(0.0)  # the best constant has no edge
    assert classifier_edge(y, y) == pytest.approx(0.5)
    assert normalised_edge(2 * y, y) == pytest.approx(1.0)
    assert normalised_edge(-y, y) == pytest.approx(-1.0)


def test_first_step_edge_is_the_kernel_mean_predictor_and_separates_signal_from_noise():
    g = torch.Generator().manual_seed(0)
    model = TwoLayerMLP(12, MLPConfig(width=64), seeds=[0])
    support = torch.arange(2)
    x, y = sample_boolean_task(3000, n_bits=12, support=support, generator=g)
    xt, yt = sample_boolean_task(2000, n_bits=12, support=support, generator=g)
    edge, floor = first_step_edge(model, x, y, xt, yt, generator=g)
    centred, centred_t = y - y.mean(), yt - yt.mean()
    by_kernel = normalised_edge(empirical_ntk(model, xt, x) @ centred.double() / len(y), centred_t)
    assert edge == pytest.approx(by_kernel, abs=1e-4)
    assert edge > 5 * floor  # a 2-parity has a first-step edge
    noise = torch.where(torch.rand(3000, generator=g) < 0.5, 1.0, -1.0)
    edge_noise, floor_noise = first_step_edge(model, x, noise, xt, yt, generator=g)
    assert abs(edge_noise) < 4 * floor_noise


def test_closed_forms_are_chosen_by_protocol_not_by_class():
    from learnlab.models.two_layer import StackedTwoLayer, is_relu_two_layer

    relu = TwoLayerMLP(5, MLPConfig(width=4), seeds=[0, 1])
    assert isinstance(relu, StackedTwoLayer) and is_relu_two_layer(relu)
    assert not is_relu_two_layer(TwoLayerMLP(5, MLPConfig(width=4, activation="tanh"), seeds=[0]))
    assert not is_relu_two_layer(LinearisedModel(relu))  # the linearised model takes the generic path
    x = torch.randn(6, 5)
    assert torch.equal(empirical_ntk(relu, x), empirical_ntk(relu, x, method="closed_form"))


@pytest.mark.parametrize("cfg", [MLPConfig(width=6, output_bias=True), MLPConfig(width=6, bias=False)])
def test_closed_form_linearisation_and_edge_match_the_functional_jvp(cfg):
    base = TwoLayerMLP(7, cfg, seeds=[0, 1, 2], widths=[6, 3, 5])  # padded neurons too
    closed, generic = LinearisedModel(base, method="closed_form"), LinearisedModel(base, method="jvp")
    with torch.no_grad():
        for a, b in zip(closed.parameters(), generic.parameters()):
            a.normal_(std=0.3)
            b.copy_(a)
    x = torch.randn(3, 9, 7)
    assert torch.allclose(closed(x), generic(x), atol=1e-5)
    closed(x).square().sum().backward()
    generic(x).square().sum().backward()
    for a, b in zip(closed.parameters(), generic.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-4)
    assert all(p.grad is None for p in base.parameters())

    g = torch.Generator().manual_seed(1)
    xs, ys = sample_boolean_task(500, n_bits=7, support=torch.arange(2), generator=g)
    xt, yt = sample_boolean_task(300, n_bits=7, support=torch.arange(2), generator=g)
    by_method = [first_step_edge(base, xs, ys, xt, yt, replica=1, null_draws=3, chunk=128, method=method,
                                 generator=torch.Generator().manual_seed(5)) for method in ("closed_form", "jvp")]
    assert by_method[0] == pytest.approx(by_method[1], abs=1e-5)
    with pytest.raises(ValueError, match="ReLU two-layer"):
        LinearisedModel(TwoLayerMLP(7, MLPConfig(width=4, activation="tanh"), seeds=[0]), method="closed_form")
