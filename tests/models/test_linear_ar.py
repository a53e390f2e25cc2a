import pytest
import torch

from learnlab.models.linear_ar import CausalBlockLinear, LinearAR, LinearARConfig


def test_effective_parameters_match_the_papers_models():
    with torch.device("meta"):  # counts only: nothing allocated
        tinystories = LinearAR(LinearARConfig(vocab_size=50_258, context=64, d=256))
        multiplication = LinearAR(LinearARConfig(vocab_size=117, context=307, d=128, activation="relu", groups=8))
    assert tinystories.effective_parameters() == 162_113_618
    assert multiplication.effective_parameters() == 774_688_629


@pytest.mark.parametrize("activation", ["none", "relu"])
@pytest.mark.parametrize("groups", [1, 4])
def test_logits_at_t_ignore_tokens_after_t(activation, groups):
    torch.manual_seed(0)
    model = LinearAR(LinearARConfig(vocab_size=13, context=10, d=6, activation=activation, groups=groups))
    x = torch.randint(0, 13, (4, 10))
    changed = x.clone()
    changed[:, 6:] = torch.randint(0, 13, (4, 4))
    before, after = model(x)[0], model(changed)[0]
    torch.testing.assert_close(before[:, :6], after[:, :6], rtol=0, atol=0)
    assert not torch.allclose(before[:, 6], after[:, 6])  # position 6 does see itself


def test_grouped_storage_computes_the_same_map_as_the_masked_dense_matrix():
    torch.manual_seed(1)
    dense = CausalBlockLinear(9, 3, 5, groups=1)
    grouped = CausalBlockLinear(9, 3, 5, groups=4)
    grouped.load_dense(dense.weights[0].detach())
    with torch.no_grad():
        grouped.bias.copy_(dense.bias)
    x = torch.randn(2, 9, 3)
    torch.testing.assert_close(grouped(x), dense(x))
    torch.testing.assert_close(grouped.dense_weight(), dense.dense_weight())
    # The masked matrix is block lower triangular, diagonal blocks included.
    blocks = dense.dense_weight().view(9, 5, 9, 3).abs().sum(dim=(1, 3)) > 0
    assert torch.equal(blocks, torch.tril(torch.ones(9, 9, dtype=torch.bool)))
    assert grouped.effective_parameters() == 9 * 10 // 2 * 15 + 45


@pytest.mark.parametrize("groups", [1, 3])
def test_row_only_decoding_equals_decoding_with_full_forward_passes(groups):
    torch.manual_seed(2)
    model = LinearAR(LinearARConfig(vocab_size=11, context=12, d=8, activation="relu", groups=groups))
    prompt = torch.randint(0, 11, (5, 4))
    fast = model.generate(prompt, 9)
    slow = prompt
    for _ in range(9):
        logits, _ = model(slow)
        slow = torch.cat([slow, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(fast, slow)
    sampled = model.generate(prompt, 9, temperature=0.5, generator=torch.Generator().manual_seed(0))
    again = model.generate(prompt, 9, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, again) and sampled.shape == (5, 13)


def test_too_long_inputs_are_refused():
    model = LinearAR(LinearARConfig(vocab_size=5, context=4, d=2))
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 5, dtype=torch.long))
