import itertools

import pytest
import torch

from learnlab.runtime import generator
from learnlab.tasks import parity_labels, sample_sparse_parity, sparse_parity_support


def test_label_is_the_product_of_exactly_the_support_bits():
    support = torch.tensor([1, 4, 6])
    x, y = sample_sparse_parity(4096, n_bits=8, support=support, generator=generator(0))
    assert x.shape == (4096, 8) and y.shape == (4096,)
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    expected = x[:, 1] * x[:, 4] * x[:, 6]
    assert torch.equal(y, expected)
    # Flipping a bit outside the support never changes the label; flipping one inside always does.
    for coordinate in range(8):
        flipped = x.clone()
        flipped[:, coordinate] *= -1
        changed = parity_labels(flipped, support) != y
        assert bool(changed.all()) == (coordinate in support.tolist())
        assert bool(changed.any()) == (coordinate in support.tolist())


def test_labels_on_the_whole_cube_are_balanced_for_every_k():
    cube = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=5)))
    for k in range(1, 6):
        y = parity_labels(cube, torch.arange(k))
        assert y.sum() == 0  # a nonconstant character has mean zero on the cube


def test_support_is_reproducible_from_the_seed_and_valid():
    a = sparse_parity_support(n_bits=50, k=3, generator=generator(7))
    b = sparse_parity_support(n_bits=50, k=3, generator=generator(7))
    c = sparse_parity_support(n_bits=50, k=3, generator=generator(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert len(set(a.tolist())) == 3 and all(0 <= i < 50 for i in a.tolist())
    assert a.tolist() == sorted(a.tolist())


def test_samples_are_reproducible_and_fresh():
    support = torch.tensor([0, 2])
    g1, g2 = generator(3), generator(3)
    first = sample_sparse_parity(16, n_bits=4, support=support, generator=g1)
    again = sample_sparse_parity(16, n_bits=4, support=support, generator=g2)
    assert torch.equal(first[0], again[0])
    fresh = sample_sparse_parity(16, n_bits=4, support=support, generator=g1)
    assert not torch.equal(first[0], fresh[0])


def test_impossible_k_is_rejected():
    with pytest.raises(ValueError, match="k must be in"):
        sparse_parity_support(n_bits=4, k=5, generator=generator(0))
