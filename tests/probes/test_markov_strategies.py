import torch

from learnlab.probes.markov import ngram_strategy


def test_unigram_and_bigram_closed_forms_on_a_hand_sequence():
    tokens = torch.tensor([[0, 1, 1, 0, 1]])
    unigram = ngram_strategy(tokens, k=2, order=1, alpha=1.0)
    # after 0 1 1 0 1: counts (2, 3) over 5 tokens -> (3/7, 4/7)
    assert torch.allclose(unigram[0, -1], torch.tensor([3 / 7, 4 / 7]))
    assert torch.allclose(unigram[0, 0], torch.tensor([2 / 3, 1 / 3]))
    bigram = ngram_strategy(tokens, k=2, order=2, alpha=1.0)
    # current token 1; transitions from 1 seen so far: 1->1, 1->0 -> (1+1, 1+1)/(2+2)
    assert torch.allclose(bigram[0, -1], torch.tensor([0.5, 0.5]))
    # at position 2 (token 1): transitions from 1 so far: none completed except 1->1? (x1=1 -> x2=1) yes
    assert torch.allclose(bigram[0, 2], torch.tensor([1 / 3, 2 / 3]))
    # at position 3 (token 0): transitions from 0: 0->1 -> (1, 2)/3
    assert torch.allclose(bigram[0, 3], torch.tensor([1 / 3, 2 / 3]))


def test_trigram_counts_the_previous_two_tokens():
    tokens = torch.tensor([[0, 1, 0, 1, 0, 1]])
    trigram = ngram_strategy(tokens, k=2, order=3, alpha=1.0)
    assert torch.allclose(trigram[0, 0], torch.tensor([0.5, 0.5]))  # no full context yet
    # context (0, 1) at the end; seen after (0, 1): 0 twice (positions 2 and 4) -> (3, 1)/4
    assert torch.allclose(trigram[0, -1], torch.tensor([0.75, 0.25]))
    uniform = ngram_strategy(tokens, k=3, order=0)
    assert torch.allclose(uniform, torch.full((1, 6, 3), 1 / 3))
