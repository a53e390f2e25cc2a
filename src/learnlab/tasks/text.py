"""Small English corpora available offline, a word-level vocabulary and n-gram baselines.

- ``pydoc``: the help topics that ship with Python (``pydoc_data.topics``), one document a
  topic (79 topics, ~120 k words).
- ``stories``: seeded synthetic stories from a small grammar with names, places, objects
  and pronoun agreement, so that sampled text can be scored: ``grammar_parse_rate`` counts
  the sampled sentences the grammar derives (with the pronoun agreeing with the last name).

Words are lower-cased runs of letters/digits, or single punctuation marks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

__all__ = ["load_corpus", "generate_stories", "split_documents", "WordVocabulary", "ngram_perplexities",
           "grammar_parse_rate", "tokenize"]

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
END_OF_DOCUMENT = "<eod>"


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# ----------------------------------------------------------------------------- the story grammar

NAMES = {"she": ("anna", "lily", "mia", "sara", "emma"), "he": ("tom", "ben", "max", "sam", "leo")}
PLACES = ("park", "shop", "lake", "forest", "school", "beach")
OBJECTS = ("ball", "kite", "book", "cake", "dog", "box", "hat")
ADJECTIVES = ("red", "big", "small", "old", "new", "happy")
FEELINGS = ("happy", "sad", "tired", "angry", "calm")
_NAME_TO_PRONOUN = {name: pronoun for pronoun, names in NAMES.items() for name in names}
_OPENING, _CHILD = ("once", "upon", "a", "time", "there", "was", "a"), {"she": "girl", "he": "boy"}

# Sentence templates: a word in capitals is a word class.
TEMPLATES = (
    ("NAME", "went", "to", "the", "PLACE"),
    ("PRONOUN", "saw", "a", "ADJECTIVE", "OBJECT"),
    ("NAME", "gave", "the", "OBJECT", "to", "NAME"),
    ("PRONOUN", "was", "very", "FEELING"),
    ("PRONOUN", "liked", "the", "ADJECTIVE", "OBJECT"),
    ("then", "NAME", "and", "NAME", "played", "at", "the", "PLACE"),
)
_CLASSES = {"NAME": set(_NAME_TO_PRONOUN), "PRONOUN": {"he", "she"}, "PLACE": set(PLACES), "OBJECT": set(OBJECTS),
            "ADJECTIVE": set(ADJECTIVES), "FEELING": set(FEELINGS)}


def generate_stories(n_stories: int, *, seed: int) -> list[list[str]]:
    """``n_stories`` stories, each a list of words: an opening naming the hero, then 3-7
    sentences from ``TEMPLATES`` whose pronouns refer to the last name mentioned."""
    rng = np.random.default_rng(seed)
    all_names = list(_NAME_TO_PRONOUN)
    stories = []
    for _ in range(n_stories):
        hero = str(rng.choice(all_names))
        words = [*_OPENING, _CHILD[_NAME_TO_PRONOUN[hero]], "named", hero, "."]
        last_name = hero
        for _ in range(int(rng.integers(3, 8))):
            template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
            sentence = []
            for slot in template:
                if slot == "NAME":
                    name = hero if rng.random() < 0.5 else str(rng.choice(all_names))
                    sentence.append(name)
                    last_name = name
                elif slot == "PRONOUN":
                    sentence.append(_NAME_TO_PRONOUN[last_name])
                elif slot in _CLASSES:
                    sentence.append(str(rng.choice(sorted(_CLASSES[slot]))))
                else:
                    sentence.append(slot)
            words += sentence + ["."]
        stories.append(words)
    return stories


def _parses(sentence: list[str], last_name: str | None) -> tuple[bool, str | None]:
    """Whether ``sentence`` (no final ".") is derived by a template with an agreeing pronoun;
    and the last name it leaves for the next sentence."""
    for template in TEMPLATES:
        if len(template) != len(sentence):
            continue
        name, ok = last_name, True
        for slot, word in zip(template, sentence):
            if slot == "NAME" and word in _CLASSES["NAME"]:
                name = word
            elif slot == "PRONOUN" and word in _CLASSES["PRONOUN"]:
                ok &= name is None or _NAME_TO_PRONOUN[name] == word
            elif slot in _CLASSES:
                ok &= word in _CLASSES[slot]
            else:
                ok &= word == slot
            if not ok:
                break
        if ok:
            return True, name
    if len(sentence) == 10 and sentence[:7] == list(_OPENING) and sentence[8] == "named" \
            and sentence[9] in _CLASSES["NAME"] and sentence[7] == _CHILD[_NAME_TO_PRONOUN[sentence[9]]]:
        return True, sentence[9]
    names = [w for w in sentence if w in _CLASSES["NAME"]]
    return False, names[-1] if names else last_name


def grammar_parse_rate(texts: list[str]) -> tuple[int, int]:
    """(parsed, total) complete sentences of sampled ``texts``; a text's words before its
    first "." are skipped (the sample may start mid-sentence), as is an unfinished tail."""
    parsed = total = 0
    for text in texts:
        pieces = " ".join(text.split()).split(" . ")
        if text.strip().endswith("."):
            pieces[-1] = pieces[-1].removesuffix(" .").removesuffix(".")
        else:
            pieces = pieces[:-1]  # unfinished
        last_name = None
        for sentence in [p.split() for p in pieces[1:]]:
            ok, last_name = _parses(sentence, last_name)
            parsed, total = parsed + ok, total + 1
    return parsed, total


# ----------------------------------------------------------------------------- corpora


def load_corpus(name: str, *, seed: int = 0, n_stories: int = 20_000) -> list[list[str]]:
    """Documents (lists of words) of corpus ``name``: ``pydoc`` or ``stories``."""
    if name == "pydoc":
        from pydoc_data.topics import topics

        return [tokenize(topics[key]) for key in sorted(topics)]
    if name == "stories":
        return generate_stories(n_stories, seed=seed)
    raise ValueError(f"unknown corpus {name!r}; use pydoc or stories")


def split_documents(documents: list[list[str]], *, validation_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle documents, hold out the last ``validation_fraction`` of them; each side is one
    word stream with an end-of-document marker between documents."""
    order = np.random.default_rng(seed).permutation(len(documents))
    n_val = max(1, int(round(validation_fraction * len(documents))))

    def stream(indices) -> list[str]:
        words: list[str] = []
        for i in indices:
            words += documents[i] + [END_OF_DOCUMENT]
        return words
    return stream(order[:-n_val]), stream(order[-n_val:])


@dataclass(frozen=True)
class WordVocabulary:
    words: tuple[str, ...]  # id -> word; id 0 is [UNK]

    @classmethod
    def fit(cls, words: list[str], *, size: int) -> WordVocabulary:
        """The ``size - 1`` most frequent words (ties by first appearance) and [UNK]."""
        return cls(("[UNK]", *(w for w, _ in Counter(words).most_common(size - 1))))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: list[str]) -> list[int]:
        index = {w: i for i, w in enumerate(self.words)}
        return [index.get(w, 0) for w in words]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.words[i] for i in ids]


def ngram_perplexities(train_ids: list[int], val_ids: list[int], vocab_size: int,
                       k_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)) -> dict[str, float]:
    """Validation perplexity of the add-one unigram model and of the add-k bigram model,
    scoring validation tokens 1.. (each given the previous one). k is the grid value with
    the lowest validation perplexity, which favours the baseline."""
    train, val = np.asarray(train_ids), np.asarray(val_ids)
    unigram = (np.bincount(train, minlength=vocab_size) + 1.0) / (len(train) + vocab_size)
    pairs = np.bincount(train[:-1] * vocab_size + train[1:], minlength=vocab_size**2).reshape(vocab_size, vocab_size)
    previous = pairs.sum(axis=1)
    prev_val, next_val = val[:-1], val[1:]
    seen = pairs[prev_val, next_val]
    best_k, best = None, np.inf
    for k in k_grid:
        nll = -np.mean(np.log((seen + k) / (previous[prev_val] + k * vocab_size)))
        if nll < best:
            best_k, best = k, nll
    return {"unigram": float(np.exp(-np.mean(np.log(unigram[next_val])))), "bigram": float(np.exp(best)),
            "add_k": float(best_k)}


def bigram_token_nll(train_ids: list[int], val_ids: list[int], vocab_size: int, k: float) -> np.ndarray:
    """Per-token negative log-likelihood of validation tokens 1.. under the add-k bigram model
    of ``train_ids`` (token t given token t - 1): the baseline scored token by token, so it
    can be paired with a model's loss on the same tokens."""
    train, val = np.asarray(train_ids), np.asarray(val_ids)
    pairs = np.bincount(train[:-1] * vocab_size + train[1:], minlength=vocab_size**2).reshape(vocab_size, vocab_size)
    previous = pairs.sum(axis=1)
    return -np.log((pairs[val[:-1], val[1:]] + k) / (previous[val[:-1]] + k * vocab_size))
