import numpy as np
import pytest
import torch

from learnlab.probes import first_step, phase_transition, rank_correlation, support_gap, weight_movement


def test_support_gap_matches_a_hand_computation():
    weight = torch.zeros(2, 2, 4)
    weight[0] = torch.tensor([[1.0, -3.0, 0.5, 0.0], [1.0, 1.0, -0.5, 2.0]])  # column means 1, 2, .5, 1
    weight[1] = torch.tensor([[0.0, 0.0, 4.0, 2.0], [0.0, 2.0, 0.0, 0.0]])  # column means 0, 1, 2, 1
    supports = torch.tensor([[1, 2], [0, 3]])
    on, off = support_gap(weight, supports)
    assert on.tolist() == [1.25, 0.5]
    assert off.tolist() == [1.0, 2.0]


def test_weight_movement_is_the_largest_entry_change():
    w0 = torch.zeros(3, 2, 2)
    w = w0.clone()
    w[1, 0, 1] = -0.7
    w[2, 1, 1] = 0.2
    assert weight_movement(w, w0).tolist() == [0.0, 0.699999988079071, 0.20000000298023224]


def test_phase_transition_on_synthetic_curves():
    steps = np.arange(0, 1000, 10)
    abrupt = np.where(steps < 600, 1.0, np.maximum(0.0, 1.0 - (steps - 600) / 200))
    plateau_end, near_zero = phase_transition(steps, abrupt)
    assert plateau_end == 620 and near_zero == 780  # 1 - 20/200 = 0.9 still on; 0.1 reached at 780
    smooth = np.exp(-steps / 200)
    plateau_end, near_zero = phase_transition(steps, smooth)
    assert plateau_end == 20 and near_zero == 470
    assert np.isnan(phase_transition(steps, np.ones_like(steps, dtype=float))[0])


def test_first_step_and_rank_correlation():
    steps = np.array([0, 5, 10])
    assert first_step(steps, np.array([False, True, True])) == 5
    assert np.isnan(first_step(steps, np.array([False, False, False])))
    assert rank_correlation(np.arange(10), np.arange(10) ** 2) == pytest.approx(1.0)
    assert rank_correlation(np.arange(10), -np.arange(10.0)) == pytest.approx(-1.0)
