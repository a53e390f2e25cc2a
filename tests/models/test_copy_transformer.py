"""The Repeat After Me transformer: the paper's parameter count, causality and the position biases."""

import pytest
import torch

from learnlab.models.copy_transformer import (CopyTransformer, CopyTransformerConfig, alibi_slopes, count_parameters,
                                              paper_config, position_bias)


def test_the_paper_model_has_exactly_151_218_176_parameters():
    with torch.device("meta"):  # no memory for 151M weights
        model = CopyTransformer(paper_config())
    assert count_parameters(model) == 151_218_176


@pytest.mark.parametrize("pos", ["rope", "nope", "alibi", "hard_alibi"])
def test_every_position_scheme_is_causal_and_trains(pos):
    torch.manual_seed(0)
    model = CopyTransformer(CopyTransformerConfig(n_layer=2, d_model=32, n_head=4, pos=pos, hard_alibi_heads=2))
    idx = torch.randint(0, 30, (2, 12))
    changed = idx.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 30
    with torch.no_grad():
        assert torch.allclose(model(idx)[0][:, :8], model(changed)[0][:, :8], atol=1e-5)
    mask = torch.zeros_like(idx, dtype=torch.bool)
    mask[:, 5:] = True
    _, loss = model(idx[:, :-1], idx[:, 1:], mask[:, :-1])
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())


def test_position_biases():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** (-i) for i in range(1, 9)]))
    bias = position_bias("hard_alibi", 4, 6, 2, None)
    visible = torch.isfinite(bias)
    assert visible[0].sum(1).tolist() == [1] * 6  # head 1: the current token only
    assert visible[1].sum(1).tolist() == [1, 2, 2, 2, 2, 2]  # head 2: the last two
    assert visible[2].sum(1).tolist() == [1, 2, 3, 4, 5, 6]  # other heads: all past tokens, no position
    assert torch.equal(bias[2][visible[2]], torch.zeros(21))
    alibi = position_bias("alibi", 2, 4, 0, None)
    assert alibi[0, 3, 0] == pytest.approx(-3 * 2.0 ** -4) and alibi[1, 3, 1] == pytest.approx(-2 * 2.0 ** -8)
    rope = CopyTransformer(CopyTransformerConfig(d_model=128, n_head=8, pos="rope"))
    assert rope.layers[0].attention.rotary_dim == 4  # 25% of 16 dimensions


def test_lstm_baseline_init_and_causality():
    from learnlab.models.lstm import LSTMConfig, LSTMModel

    torch.manual_seed(0)
    model = LSTMModel(LSTMConfig(n_layer=2, hidden=16, d_embed=8, dropout=0.65)).eval()
    bias = model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0
    assert torch.equal(bias[16:32], torch.ones(16)) and not bias[:16].any()  # forget gates at 1
    w = model.lstm.weight_hh_l0[16:32]
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)  # orthogonal recurrent block
    idx = torch.randint(0, 30, (2, 10))
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 30
    with torch.no_grad():
        assert torch.allclose(model(idx)[0][:, :6], model(changed)[0][:, :6])
    model.train()
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert torch.isfinite(loss)
