import math

import pytest

from learnlab.probes.curves import binomial_interval
from learnlab.tasks.sparse_parity import sq_frontier_samples, sq_success_bound


def test_wilson_interval_matches_the_closed_form():
    successes, trials, z = 3, 10, 1.959963984540054
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z / (1 + z**2 / trials) * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2))
    low, high = binomial_interval(successes, trials)
    assert low == pytest.approx(centre - half, abs=1e-9) and high == pytest.approx(centre + half, abs=1e-9)
    assert binomial_interval(0, 16)[0] == 0.0 and binomial_interval(16, 16)[1] == pytest.approx(1.0)


def test_sq_bound_trades_width_time_and_data_against_the_number_of_parities():
    kwargs = dict(n_bits=100, k=3)
    base = sq_success_bound(**kwargs, n_samples=10, steps=10, n_params=10)
    assert base == pytest.approx(1000 / math.comb(100, 3))
    for doubled in ("n_samples", "steps", "n_params"):  # each resource enters linearly
        args = {**dict(n_samples=10, steps=10, n_params=10), doubled: 20}
        assert sq_success_bound(**kwargs, **args) == pytest.approx(2 * base)
    assert sq_success_bound(**kwargs, n_samples=10**6, steps=10**6, n_params=10**6) == 1.0
    m = sq_frontier_samples(**kwargs, steps=10, n_params=10, success=0.5)
    assert sq_success_bound(**kwargs, n_samples=m, steps=10, n_params=10) == pytest.approx(0.5)
