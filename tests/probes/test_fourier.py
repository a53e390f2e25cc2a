import pytest
import torch

from learnlab.probes.curves import loglog_slope
from learnlab.probes.fourier import correlation_gradient, fourier_gap, hypercube


@pytest.mark.parametrize("n, k", [(10, 3), (12, 2), (14, 4), (14, 3)])
def test_the_gap_is_positive_at_the_majority_init(n, k):
    # All first-layer weights equal: sigma'(w . x) = 1[sum(x) > 0], a majority function.
    gap = fourier_gap(torch.ones(1, n), torch.zeros(1), torch.arange(k))
    assert gap.item() > 0


def test_odd_n_and_odd_k_give_a_zero_gap_by_symmetry():
    # Majority of an odd number of bits is an odd function: its even-order coefficients,
    # here of orders k - 1 and k + 1, vanish.
    assert fourier_gap(torch.ones(1, 15), torch.zeros(1), torch.arange(3)).item() == 0.0


def test_gradient_matches_autograd_of_the_correlation_loss():
    torch.manual_seed(0)
    n, support = 8, torch.tensor([1, 5])
    w = torch.randn(3, n, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    cube = hypercube(n)
    chi = cube[:, support].prod(1)
    loss = -(chi * torch.tanh(w @ cube.T + b[:, None])).mean(dim=1).sum()
    loss.backward()
    assert torch.allclose(-w.grad, correlation_gradient(w.detach(), b.detach(), support, "tanh"))


def test_stacked_replicas_with_their_own_supports():
    w, b = torch.randn(2, 4, 9), torch.randn(2, 4)
    supports = torch.tensor([[0, 3, 7], [1, 2, 8]])
    stacked = fourier_gap(w, b, supports)
    for s in range(2):
        assert torch.allclose(stacked[s], fourier_gap(w[s], b[s], supports[s]))


def test_loglog_slope_reads_growth_exponents():
    t = torch.arange(1, 200).double().numpy()
    assert loglog_slope(t, 3 * t) == pytest.approx(1.0)
    assert loglog_slope(t, t**0.5) == pytest.approx(0.5)
