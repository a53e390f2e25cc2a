"""Copying and lookup tasks (Repeat After Me): formats, masks, uniqueness, packing, bounds, the n-gram copier."""

import pytest
import torch

from learnlab.tasks.copying import (Vocab, answer_accuracy, gssm_error_bound, ngram_copier, ngram_repeat_bound,
                                    ngram_repeat_probability, pack_rows, sample_copy, sample_duplicate_ngram,
                                    sample_lookup)

V = Vocab()


def _answers(tokens, mask):
    return [V.decode(row[m.nonzero().flatten() + 1]) for row, m in zip(tokens, mask)]


def test_vocabulary_and_copy_format():
    assert (V.bos, V.sep, V.eos, V.pad, V.size) == (26, 27, 28, 29, 30)
    tokens, mask = sample_copy(200, min_len=3, max_len=9, generator=torch.Generator().manual_seed(0))
    lengths = []
    for row, answer in zip((V.decode(r) for r in tokens), _answers(tokens, mask)):
        text = row.rstrip("*")
        x = text[1:text.index("|")]
        assert text == f"${x}|{x}." and answer == f"{x}."
        lengths.append(len(x))
    assert min(lengths) == 3 and max(lengths) == 9


@pytest.mark.parametrize("key", ["prefix", "suffix"])
def test_lookup_keys_occur_exactly_once_and_answers_follow_them(key):
    tokens, mask = sample_lookup(300, min_len=8, max_len=20, n_gram=3, answer_len=3, key=key,
                                 generator=torch.Generator().manual_seed(1))
    for row, answer in zip((V.decode(r).rstrip("*") for r in tokens), _answers(tokens, mask)):
        if key == "prefix":  # $ g | x | a .
            gram, x, a = row[1:-1].split("|")
        else:  # $ x | g a .
            x = row[1:row.index("|")]
            rest = row[row.index("|") + 1:-1]
            gram, a = rest[:3], rest[3:]
        assert x.count(gram) == 1 and 1 <= len(a) <= 3
        assert x[x.index(gram) + 3:].startswith(a) and answer == a + "."


def test_duplicate_ngram_examples_repeat_an_ngram():
    tokens, mask = sample_duplicate_ngram(100, length=20, n_gram=4, generator=torch.Generator().manual_seed(2))
    for row in (V.decode(r) for r in tokens):
        x = row[1:row.index("|")]
        grams = [x[i:i + 4] for i in range(len(x) - 3)]
        assert len(x) == 20 and len(set(grams)) < len(grams)


def test_packing_starts_every_row_fresh_and_masks_the_cut_example():
    tokens, mask = sample_copy(40 * 6, min_len=3, max_len=12, generator=torch.Generator().manual_seed(3))
    rows, packed_mask = pack_rows(tokens.view(40, 6, -1), mask.view(40, 6, -1), 32)
    assert rows.shape == (40, 32) and not (rows == V.pad).any()
    assert bool((rows[:, 0] == V.bos).all())  # a fresh example at the start of every row
    cut = 0
    for row, m, examples, answers in zip(rows, packed_mask, tokens.view(40, 6, -1), mask.view(40, 6, -1)):
        text = V.decode(row)
        pieces = [V.decode(e[e != V.pad]) for e in examples]
        joined = "".join(pieces)
        assert joined.startswith(text)  # the row is the examples in order, cut at 32
        # scored positions: exactly the answers of the examples that fit whole
        offset, expected = 0, []
        for piece, a in zip(pieces, answers):
            if offset + len(piece) <= 32:
                expected += [offset + i for i in a[:len(piece)].nonzero().flatten().tolist()]
            elif offset < 32:
                cut += 1
            offset += len(piece)
        assert m.nonzero().flatten().tolist() == expected
    assert cut > 0
    with pytest.raises(ValueError, match="fill a row"):
        pack_rows(tokens.view(240, 1, -1), mask.view(240, 1, -1), 32)


def test_teacher_forced_argmax_equals_greedy_decoding_on_a_random_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(V.size, 16), torch.nn.GRU(16, 16, batch_first=True))
    head = torch.nn.Linear(16, V.size)

    def logits_of(tokens):
        return head(model(tokens)[0])

    tokens, mask = sample_copy(64, min_len=1, max_len=2, vocab=Vocab(2), generator=torch.Generator().manual_seed(4))
    tokens = torch.where(tokens >= 2, tokens + 24, tokens)  # the 2-letter vocabulary inside the 30 ids
    with torch.no_grad():
        string, characters = answer_accuracy(logits_of(tokens), tokens, mask)
        for i in range(len(tokens)):  # greedy decoding from the prompt
            first = int(mask[i].nonzero()[0])
            generated = tokens[i, :first + 1].tolist()
            while len(generated) <= int(mask[i].nonzero()[-1]) + 1:
                generated.append(int(logits_of(torch.tensor([generated]))[0, -1].argmax()))
            target = tokens[i, first + 1:int(mask[i].nonzero()[-1]) + 2].tolist()
            assert (generated[first + 1:] == target) == bool(string[i])
    assert 0 <= characters.min() and characters.max() <= 1


def test_bounds_and_the_handbuilt_copier():
    g = torch.Generator().manual_seed(5)
    measured = ngram_repeat_probability(300, 26, 5, samples=4000, generator=g)
    assert measured <= ngram_repeat_bound(300, 26, 5) == pytest.approx(300**2 / 26**5)
    assert gssm_error_bound(bits=64, n_letters=26, length=20) == pytest.approx(1 - 2**64 / 26**20)
    assert gssm_error_bound(bits=10_000, n_letters=26, length=20) == 0.0
    tokens, _ = sample_copy(300, min_len=10, max_len=30, generator=g)
    copied = ngram_copier(tokens, n_gram=4)
    for row, out in zip(tokens, copied):
        text = V.decode(row)
        x = text[1:text.index("|")]
        grams = [x[i:i + 4] for i in range(len(x) - 3)]
        if len(set(grams)) == len(grams):  # no repeated 4-gram: an exact copy
            assert V.decode(out).rstrip("*") == x
