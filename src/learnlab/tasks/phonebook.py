"""Prompts for copying and retrieval with pretrained language models ("Repeat After Me", Section 5).

- ``phonebook_prompts``: a book of L entries "First Last: 10 digits" (first digit 6-9, names
  unique within a book, drawn from a small bundled list: nothing is downloaded), then two
  solved queries from the book and one to answer (2-shot). The answer is the number.
- ``text_copy_prompts``: a passage of English (Python's own ``pydoc_data`` help topics, or the
  same words shuffled, which removes the help of language), the passage again up to its
  first ``shown`` words, and the rest of the passage as the answer.

Pure functions of a seed (NumPy's generator); strings in, strings out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FIRST_NAMES", "LAST_NAMES", "phonebook_prompts", "text_copy_prompts"]

FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Betty Anthony Margaret Mark Sandra "
    "Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa "
    "George Deborah Timothy Stephanie Ronald Rebecca Edward Sharon Jason Laura Jeffrey Cynthia Ryan Kathleen").split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson "
    "Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell "
    "Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes").split()


def _numbers(rng: np.random.Generator, count: int) -> list[str]:
    first = rng.integers(6, 10, count)
    rest = rng.integers(0, 10, (count, 9))
    return [str(f) + "".join(map(str, r)) for f, r in zip(first, rest)]


def phonebook_prompts(book_size: int, n_queries: int, *, seed: int) -> tuple[list[str], list[str]]:
    """(prompts, answers): one fresh book per query; each prompt is the book, two solved
    queries from it and a third name; the answer is that name's 10-digit number."""
    if book_size < 3:
        raise ValueError(f"a 2-shot phone-book prompt needs at least 3 entries; got {book_size}")
    if book_size > len(FIRST_NAMES) * len(LAST_NAMES):
        raise ValueError(f"at most {len(FIRST_NAMES) * len(LAST_NAMES)} unique names; got {book_size}")
    rng = np.random.default_rng(seed)
    prompts, answers = [], []
    for _ in range(n_queries):  # strings: one book at a time is the natural unit here
        picks = rng.choice(len(FIRST_NAMES) * len(LAST_NAMES), book_size, replace=False)
        names = [f"{FIRST_NAMES[p // len(LAST_NAMES)]} {LAST_NAMES[p % len(LAST_NAMES)]}" for p in picks]
        numbers = _numbers(rng, book_size)
        book = "".join(f"{name}: {number}\n" for name, number in zip(names, numbers))
        shots = rng.choice(book_size, 3, replace=False)
        solved = "".join(f"{names[i]}: {numbers[i]}\n" for i in shots[:2])
        prompts.append(f"{book}\n{solved}{names[shots[2]]}:")
        answers.append(numbers[shots[2]])
    return prompts, answers


def _passages(n_words: int, count: int, rng: np.random.Generator) -> list[list[str]]:
    from pydoc_data.topics import topics

    words = " ".join(topics[key] for key in sorted(topics)).split()
    starts = rng.integers(0, len(words) - n_words, count)
    return [words[s:s + n_words] for s in starts]


def text_copy_prompts(n_words: int, n_prompts: int, *, shown: int = 5, shuffle: bool = False,
                      seed: int) -> tuple[list[str], list[str]]:
    """(prompts, answers): ``passage\\n\\npassage[:shown]`` and the rest of the passage (with its
    leading space). ``shuffle``: the passage's words in a random order."""
    if not 0 < shown < n_words:
        raise ValueError(f"need 0 < shown < n_words; got shown={shown}, n_words={n_words}")
    rng = np.random.default_rng(seed)
    prompts, answers = [], []
    for passage in _passages(n_words, n_prompts, rng):
        if shuffle:
            passage = [passage[i] for i in rng.permutation(len(passage))]
        text = " ".join(passage)
        prompts.append(f"{text}\n\n{' '.join(passage[:shown])}")
        answers.append(" " + " ".join(passage[shown:]))
    return prompts, answers
