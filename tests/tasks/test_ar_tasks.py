import math

import numpy as np
import pytest
import torch

from learnlab.tasks import multiplication as mult
from learnlab.tasks.parity_cot import EQUALS, chain_length, sample_parity_chain
from learnlab.tasks.text import WordVocabulary, generate_stories, grammar_parse_rate, ngram_perplexities


@pytest.mark.parametrize("digits, length", [(2, 77), (3, 166), (4, 307)])
def test_every_example_has_the_papers_length(digits, length):
    fmt = mult.multiplication_format(digits)
    assert fmt.length == length == 2 * digits**3 + 8 * digits**2 + 11 * digits + 7
    assert len(mult.VOCAB) == 117
    a, b = mult.sample_pairs(50, digits=digits, split="train", generator=torch.Generator().manual_seed(0))
    assert mult.encode_products(a, b, fmt).shape == (50, length)


def test_the_chain_reads_like_the_paper_and_checks_itself():
    fmt = mult.multiplication_format(2)
    tokens = mult.encode_products(torch.tensor([47]), torch.tensor([38]), fmt)
    assert mult.decode(tokens[0]) == (
        "[BOS] 4 7 x 3 8 = ( 7 x 1 + 4 x 1 0 ) x ( 8 x 1 + 3 x 1 0 ) = 7x8 x 1 x 1 + 7x3 x 1 x 1 0 + "
        "4x8 x 1 0 x 1 + 4x3 x 1 0 x 1 0 = 5 6 + 2 1 0 + 3 2 0 + 1 2 0 0 = 1 7 8 6")
    checks = mult.chain_checks(tokens, fmt)
    assert checks["well_formed"].all() and checks["consistent"].all() and checks["correct"].all()
    wrong_answer = tokens.clone()
    wrong_answer[0, -1] = mult.TOKEN_ID["7"]
    checks = mult.chain_checks(wrong_answer, fmt)
    assert checks["well_formed"].all() and not checks["consistent"].any() and not checks["correct"].any()
    broken = tokens.clone()
    broken[0, 8] = mult.TOKEN_ID["+"]  # where a digit belongs
    assert not mult.chain_checks(broken, fmt)["well_formed"].any()


def test_powers_of_ten_expand_correctly():
    # The official generator takes ceil(log10(n)) digits and drops the leading 1 of 10, 100, ...
    fmt = mult.multiplication_format(3)
    text = mult.decode(mult.encode_products(torch.tensor([100]), torch.tensor([100]), fmt)[0])
    assert "( 0 x 1 + 0 x 1 0 + 1 x 1 0 0 )" in text and text.endswith("0 1 0 0 0 0")


def test_the_split_is_three_quarters_train_and_fixed():
    a, b = torch.meshgrid(torch.arange(10, 100), torch.arange(10, 100), indexing="ij")
    train = mult.is_train_pair(a.flatten(), b.flatten(), 2)
    assert abs(float(train.float().mean()) - 0.75) <= 0.005
    g = torch.Generator().manual_seed(3)
    a_test, b_test = mult.sample_pairs(500, digits=2, split="test", generator=g)
    assert not mult.is_train_pair(a_test, b_test, 2).any()


def test_no_cot_variant_is_prompt_then_answer():
    fmt = mult.multiplication_format(2, cot=False)
    assert mult.decode(mult.encode_products(torch.tensor([12]), torch.tensor([34]), fmt)[0]) == \
        "[BOS] 1 2 x 3 4 = 0 4 0 8"


def test_parity_chains_end_in_the_parity():
    subset = torch.tensor([5, 0, 3, 9, 2, 7, 1, 4])
    g = torch.Generator().manual_seed(0)
    for chain, k in (("none", None), ("count", None), ("chunks", 1), ("chunks", 3), ("chunks", 8)):
        length = chain_length(chain, 8, k)
        seq = sample_parity_chain(300, subset=subset, n_bits=12, chain=chain, k=k, generator=g)
        assert seq.shape == (300, 12 + 1 + length) and (seq[:, 12] == EQUALS).all()
        parity = seq[:, subset].sum(dim=1) % 2
        assert torch.equal(seq[:, -1], parity)
    assert chain_length("count", 8) == math.ceil(math.log2(9)) == 4
    seq = sample_parity_chain(300, subset=subset, n_bits=12, chain="count", generator=g)
    total = (seq[:, 13:] * torch.tensor([8, 4, 2, 1])).sum(dim=1)
    assert torch.equal(total, seq[:, subset].sum(dim=1))  # the binary expansion of the count
    seq = sample_parity_chain(300, subset=subset, n_bits=12, chain="chunks", k=3, generator=g)
    assert torch.equal(seq[:, 13], seq[:, subset[:3]].sum(dim=1) % 2)  # running parity after 3 bits


def test_stories_parse_and_broken_grammar_does_not():
    stories = [" ".join(words) for words in generate_stories(20, seed=1)]
    parsed, total = grammar_parse_rate(stories)
    assert parsed == total > 40
    assert grammar_parse_rate(["x . tom went to the park . she was very happy . tom went the park ."]) == (1, 3)


def test_bigram_baseline_beats_unigram_on_structured_text_and_matches_a_closed_form():
    words = "a b a b a b a b".split()
    vocab = WordVocabulary.fit(words, size=3)
    ids = vocab.encode(words)
    result = ngram_perplexities(ids, ids, len(vocab), k_grid=(1.0,))
    # unigram add-one: counts a=4, b=4, [UNK]=0 -> probabilities 5/11, 5/11, 1/11.
    assert result["unigram"] == pytest.approx(11 / 5)
    # bigram add-1: after a, b seen 4 times of 4: (4 + 1) / (4 + 3); after b, a seen 3 of 3: 4 / 6.
    nll = -(4 * np.log(5 / 7) + 3 * np.log(4 / 6)) / 7
    assert result["bigram"] == pytest.approx(np.exp(nll))
