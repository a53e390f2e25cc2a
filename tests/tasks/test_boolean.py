"""Boolean targets under product distributions."""

import pytest
import torch

from learnlab.tasks.boolean import label_bias, sample_boolean_task, sample_hypercube


def test_biased_inputs_have_the_requested_mean_and_the_parity_its_exact_correlations():
    g = torch.Generator().manual_seed(0)
    support = torch.tensor([1, 4, 6])
    x, y = sample_boolean_task(200_000, n_bits=8, support=support, alpha=0.5, generator=g)
    assert x.mean().item() == pytest.approx(0.5, abs=0.01)
    assert y.mean().item() == pytest.approx(label_bias(k=3, alpha=0.5), abs=0.01)  # alpha^k
    assert (y * x[:, 1]).mean().item() == pytest.approx(0.5**2, abs=0.01)  # E[y x_i] = alpha^(k-1) on S
    assert (y * x[:, 0]).mean().item() == pytest.approx(0.5 * 0.5**3, abs=0.01)  # off S: alpha * alpha^k
    assert set(sample_hypercube(100, n_bits=3, alpha=-1.0, generator=g).unique().tolist()) == {-1.0}


def test_majority_and_parity_mixture():
    g = torch.Generator().manual_seed(1)
    support = torch.tensor([0, 2, 3])
    x, y = sample_boolean_task(50_000, n_bits=5, support=support, target="majority", generator=g)
    assert torch.equal(y, torch.sign(x[:, support].sum(1)))
    assert (y * x[:, 0]).mean().item() == pytest.approx(0.5, abs=0.02)  # every bit correlates with it
    x, y = sample_boolean_task(50_000, n_bits=5, support=support, target="parity_mixture", generator=g)
    relevant = x[:, support]
    equal = (relevant == relevant[:, :1]).all(1).float().mean().item()
    assert equal == pytest.approx(0.5 + 0.5 * 0.25, abs=0.02)  # half forced, plus chance agreement
    assert torch.equal(y, relevant.prod(1))
    assert (y * x[:, 0]).mean().item() == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="odd number"):
        sample_boolean_task(10, n_bits=5, support=torch.tensor([0, 1]), target="majority", generator=g)


def test_sampling_is_seeded():
    a = sample_boolean_task(100, n_bits=6, support=torch.tensor([0, 1]), alpha=0.3,
                            generator=torch.Generator().manual_seed(3))
    b = sample_boolean_task(100, n_bits=6, support=torch.tensor([0, 1]), alpha=0.3,
                            generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
