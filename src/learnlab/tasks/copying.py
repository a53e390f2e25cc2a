"""Copying and lookup tasks of "Repeat After Me" (Jelassi et al. 2024, arXiv 2402.01032).

Vocabulary: V letters (ids 0..V-1) and four symbols: BOS ``$`` = V, separator ``|`` = V+1,
EOS ``.`` = V+2, pad ``*`` = V+3. One character is one token; letters are uniform i.i.d.
and lengths uniform in [min_len, max_len].

- ``copy``: ``$ x | x .``; the loss and the metric cover the answer x and the EOS.
- ``prefix_lookup``: ``$ g | x | a .`` with g an n-gram that occurs exactly once in x
  and a the text after it (cut to ``answer_len``); ``suffix_lookup``: ``$ x | g a .``.
  (The official sampler does not make g unique, so its answer can be ambiguous.)
- Training rows (``pack_rows``): examples concatenated from a fresh start in every row, the
  example cut by the row's end masked out (the official code's packing).
- ``duplicate_ngram``: a copy example in which one n-gram of x overwrites another, so an
  n-gram repeats (evaluation only).

Every sampler returns (tokens (N, T) padded with PAD, answer_mask (N, T)): position t of
the mask is True where token t + 1 is part of the answer (the positions a model predicts
it from). Rows are built with index arithmetic over the batch, not a loop per example.
Also here: the GSSM memory bound and the n-gram repeat probability of the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Vocab", "sample_copy", "has_repeated_ngram", "sample_lookup", "sample_duplicate_ngram", "pack_rows", "answer_accuracy",
           "gssm_error_bound", "state_bits", "ngram_repeat_probability", "ngram_repeat_bound", "ngram_copier"]


@dataclass(frozen=True)
class Vocab:
    n_letters: int = 26

    @property
    def bos(self) -> int:
        return self.n_letters

    @property
    def sep(self) -> int:
        return self.n_letters + 1

    @property
    def eos(self) -> int:
        return self.n_letters + 2

    @property
    def pad(self) -> int:
        return self.n_letters + 3

    @property
    def size(self) -> int:
        return self.n_letters + 4

    def decode(self, row: torch.Tensor) -> str:
        """Letters as a..z (then their ids), symbols as $ | . * ."""
        symbols = {self.bos: "$", self.sep: "|", self.eos: ".", self.pad: "*"}
        return "".join(symbols.get(int(t), chr(97 + int(t)) if int(t) < 26 else f"<{int(t)}>") for t in row)


def _strings(n: int, min_len: int, max_len: int, vocab: Vocab, generator: torch.Generator):
    """(letters (n, max_len), lengths (n,)); letters past a row's length are unused."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len; got {min_len}, {max_len}")
    device = generator.device
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator, device=device)
    letters = torch.randint(0, vocab.n_letters, (n, max_len), generator=generator, device=device)
    return letters, lengths


def _assemble(parts: list[tuple[torch.Tensor, torch.Tensor]], answer_from: int, vocab: Vocab):
    """Concatenate per-row variable-length parts [(values (N, W), lengths (N,)), ...] into
    padded rows. Parts from index ``answer_from`` on are the answer (mask set one position
    earlier, where they are predicted)."""
    n = parts[0][0].shape[0]
    device = parts[0][0].device
    total = sum(v.shape[1] for v, _ in parts)
    tokens = torch.full((n, total), vocab.pad, dtype=torch.long, device=device)
    answer = torch.zeros((n, total), dtype=torch.bool, device=device)
    offset = torch.zeros(n, dtype=torch.long, device=device)
    rows = torch.arange(n, device=device).unsqueeze(1)
    for index, (values, lengths) in enumerate(parts):
        width = values.shape[1]
        position = offset.unsqueeze(1) + torch.arange(width, device=device)  # (N, W)
        valid = torch.arange(width, device=device) < lengths.unsqueeze(1)
        tokens[rows.expand(-1, width)[valid], position[valid]] = values[valid]
        if index >= answer_from:
            answer[rows.expand(-1, width)[valid], (position - 1)[valid]] = True
        offset = offset + lengths
    used = int(offset.max())
    return tokens[:, :used], answer[:, :used]


def _symbol(n: int, token: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n, 1), token, dtype=torch.long, device=device), torch.ones(n, dtype=torch.long, device=device)


def sample_copy(n: int, *, min_len: int, max_len: int, vocab: Vocab = Vocab(), generator: torch.Generator):
    """``$ x | x .``: tokens (n, T), answer_mask (n, T) over x and the EOS."""
    letters, lengths = _strings(n, min_len, max_len, vocab, generator)
    d = generator.device
    return _assemble([_symbol(n, vocab.bos, d), (letters, lengths), _symbol(n, vocab.sep, d), (letters, lengths),
                      _symbol(n, vocab.eos, d)], 3, vocab)


def _unique_ngram_starts(letters: torch.Tensor, lengths: torch.Tensor, n_gram: int, vocab: Vocab) -> torch.Tensor:
    """(N, L - n + 1) bool: start i holds an n-gram that occurs exactly once in its row."""
    width = letters.shape[1] - n_gram + 1
    codes = torch.zeros(letters.shape[0], width, dtype=torch.long, device=letters.device)
    for k in range(n_gram):  # a base-V code of each n-gram (n is small)
        codes = codes * vocab.n_letters + letters[:, k:k + width]
    inside = torch.arange(width, device=letters.device) + n_gram <= lengths.unsqueeze(1)
    codes = torch.where(inside, codes, -1 - torch.arange(width, device=letters.device))  # padding never matches
    # An n-gram is repeated when a neighbour in its row's sorted codes equals it: N W log W,
    # not the N W^2 of comparing every pair (rows of a few hundred letters at evaluation).
    ordered, order = codes.sort(dim=1)
    same = ordered[:, 1:] == ordered[:, :-1]
    repeated_sorted = torch.zeros_like(ordered, dtype=torch.bool)
    repeated_sorted[:, 1:] |= same
    repeated_sorted[:, :-1] |= same
    repeated = torch.empty_like(repeated_sorted).scatter_(1, order, repeated_sorted)
    return inside & ~repeated


def sample_lookup(n: int, *, min_len: int, max_len: int, n_gram: int = 3, answer_len: int | None = 3,
                  key: str = "prefix", vocab: Vocab = Vocab(), generator: torch.Generator):
    """``prefix``: ``$ g | x | a .``; ``suffix``: ``$ x | g a .``. g occurs exactly once in x and
    has at least one letter after it; a is the text after it, cut to ``answer_len``. Rows
    without such an n-gram are redrawn."""
    if key not in ("prefix", "suffix"):
        raise ValueError(f"key must be prefix or suffix; got {key!r}")
    if min_len < n_gram + 1:
        raise ValueError(f"strings need at least n_gram + 1 = {n_gram + 1} letters; min_len is {min_len}")
    letters, lengths = _strings(n, min_len, max_len, vocab, generator)
    device = generator.device
    candidates = _unique_ngram_starts(letters, lengths, n_gram, vocab)
    candidates &= torch.arange(candidates.shape[1], device=device) + n_gram < lengths.unsqueeze(1)  # a letter after g
    missing = ~candidates.any(1)
    if missing.any():  # rare: redraw those rows
        again_x, again_len = _lookup_rows(int(missing.sum()), min_len, max_len, n_gram, vocab, generator)
        letters[missing], lengths[missing] = again_x, again_len
        candidates = _unique_ngram_starts(letters, lengths, n_gram, vocab)
        candidates &= torch.arange(candidates.shape[1], device=device) + n_gram < lengths.unsqueeze(1)
    weights = candidates.float()
    start = torch.multinomial(weights, 1, generator=generator).squeeze(1)  # uniform among valid starts
    rows = torch.arange(n, device=device)
    offsets = torch.arange(n_gram, device=device)
    gram = letters[rows.unsqueeze(1), start.unsqueeze(1) + offsets]  # (N, n)
    after = lengths - start - n_gram
    answer_length = after if answer_len is None else after.clamp(max=answer_len)
    span = torch.arange(letters.shape[1], device=device)
    index = (start.unsqueeze(1) + n_gram + span).clamp(max=letters.shape[1] - 1)
    answer = letters[rows.unsqueeze(1), index]
    full = torch.full((n,), n_gram, dtype=torch.long, device=device)
    bos, sep, eos = (_symbol(n, t, device) for t in (vocab.bos, vocab.sep, vocab.eos))
    if key == "prefix":
        parts = [bos, (gram, full), sep, (letters, lengths), sep, (answer, answer_length), eos]
        return _assemble(parts, 5, vocab)
    parts = [bos, (letters, lengths), sep, (gram, full), (answer, answer_length), eos]
    return _assemble(parts, 4, vocab)


def _lookup_rows(n, min_len, max_len, n_gram, vocab, generator):
    """Strings that hold at least one unique n-gram with a letter after it (rejection sampling)."""
    kept_x, kept_len, have = [], [], 0
    while have < n:
        letters, lengths = _strings(2 * n, min_len, max_len, vocab, generator)
        ok = _unique_ngram_starts(letters, lengths, n_gram, vocab)
        ok &= torch.arange(ok.shape[1], device=letters.device) + n_gram < lengths.unsqueeze(1)
        good = ok.any(1)
        kept_x.append(letters[good])
        kept_len.append(lengths[good])
        have += int(good.sum())
    return torch.cat(kept_x)[:n], torch.cat(kept_len)[:n]


def sample_duplicate_ngram(n: int, *, length: int, n_gram: int, vocab: Vocab = Vocab(),
                           generator: torch.Generator):
    """Copy examples of exactly ``length`` letters in which the n-gram at a random start j is
    overwritten by the one at another start i (non-overlapping), so an n-gram repeats."""
    if length < 2 * n_gram:
        raise ValueError(f"length must be >= 2 n_gram = {2 * n_gram}")
    letters, lengths = _strings(n, length, length, vocab, generator)
    device = generator.device
    # i < j without overlap: draw i, then j in [i + n, length - n].
    i = (torch.rand(n, generator=generator, device=device) * (length - 2 * n_gram + 1)).long()
    room = length - n_gram - (i + n_gram) + 1
    j = i + n_gram + (torch.rand(n, generator=generator, device=device) * room).long()
    swap = torch.rand(n, generator=generator, device=device) < 0.5  # which copy comes first
    source, target = torch.where(swap, j, i), torch.where(swap, i, j)
    rows = torch.arange(n, device=device).unsqueeze(1)
    offsets = torch.arange(n_gram, device=device)
    letters[rows, target.unsqueeze(1) + offsets] = letters[rows, source.unsqueeze(1) + offsets]
    bos, sep, eos = (_symbol(n, t, device) for t in (vocab.bos, vocab.sep, vocab.eos))
    return _assemble([bos, (letters, lengths), sep, (letters, lengths), eos], 3, vocab)


def pack_rows(tokens: torch.Tensor, answer: torch.Tensor, context_len: int, vocab: Vocab = Vocab()):
    """Training rows as the official code builds them: each row starts with a fresh example and
    takes the next ones while they fit; the example that does not fit is cut at the row's end,
    its tokens kept and its answer masked out.

    ``tokens``, ``answer``: (R, K, T) - K candidate examples for each of R rows, padded; K
    examples must be enough to fill a row (raises otherwise). Returns (R, context_len) tokens
    and answer mask. Vectorised over rows and examples.
    """
    n_rows, per_row, width = tokens.shape
    lengths = (tokens != vocab.pad).sum(2)  # (R, K)
    offsets = torch.cumsum(lengths, 1) - lengths  # where each example starts in its row
    if bool((offsets[:, -1] + lengths[:, -1] < context_len).any()):
        raise ValueError(f"{per_row} examples do not fill a row of {context_len} tokens: draw more per row")
    position = offsets.unsqueeze(2) + torch.arange(width, device=tokens.device)  # (R, K, T)
    inside = (torch.arange(width, device=tokens.device) < lengths.unsqueeze(2)) & (position < context_len)
    complete = (offsets + lengths <= context_len).unsqueeze(2)
    rows = torch.arange(n_rows, device=tokens.device).view(-1, 1, 1).expand_as(position)
    packed = torch.full((n_rows, context_len), vocab.pad, dtype=tokens.dtype, device=tokens.device)
    mask = torch.zeros((n_rows, context_len), dtype=torch.bool, device=tokens.device)
    packed[rows[inside], position[inside]] = tokens[inside]
    mask[rows[inside], position[inside]] = (answer & complete)[inside]
    return packed, mask


def answer_accuracy(logits: torch.Tensor, tokens: torch.Tensor, answer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced argmax over the answer: (string accuracy (N,) 0/1, character accuracy (N,)).
    logits (N, T, V) predict token t + 1 at position t; ``answer`` marks those positions."""
    predicted = logits[:, :-1].argmax(-1)
    correct = (predicted == tokens[:, 1:]) | ~answer[:, :-1]
    counted = answer[:, :-1]
    characters = ((predicted == tokens[:, 1:]) & counted).sum(1) / counted.sum(1).clamp_min(1)
    return correct.all(1).float(), characters.float()


# ----------------------------------------------------------------------------- the paper's bounds


def state_bits(n_floats: int, bits_per_float: int = 32) -> int:
    """The state size of a generalized state-space model in bits."""
    return n_floats * bits_per_float


def gssm_error_bound(bits: int, n_letters: int, length: int) -> float:
    """A GSSM with |S| = 2^bits states errs on length-L strings over D letters with
    probability > 1 - |S| / D^L (Theorem 2.7): it cannot tell more strings apart than it has states."""
    log_ratio = bits * math.log(2) - length * math.log(n_letters)
    return 1.0 - math.exp(min(0.0, log_ratio))


def has_repeated_ngram(letters: torch.Tensor, n_gram: int, vocab: Vocab = Vocab()) -> torch.Tensor:
    """(N,) bool: some n-gram occurs twice in the row (rows of equal length, no padding)."""
    lengths = torch.full((len(letters),), letters.shape[1], device=letters.device)
    return ~_unique_ngram_starts(letters, lengths, n_gram, vocab).all(1)


def ngram_repeat_bound(length: int, n_letters: int, n_gram: int) -> float:
    """The paper's union bound on the probability that some n-gram repeats: L^2 D^(-n)."""
    return length**2 * float(n_letters) ** (-n_gram)


def ngram_repeat_probability(length: int, n_letters: int, n_gram: int, *, samples: int, generator: torch.Generator,
                             chunk: int = 1000) -> float:
    """Monte Carlo: the fraction of uniform strings in which some n-gram occurs twice."""
    repeats, done = 0, 0
    vocab = Vocab(n_letters)
    while done < samples:
        count = min(chunk, samples - done)
        letters, lengths = _strings(count, length, length, vocab, generator)
        unique = _unique_ngram_starts(letters, lengths, n_gram, vocab)
        repeats += int((~unique).any(1).sum())
        done += count
    return repeats / samples


def ngram_copier(tokens: torch.Tensor, n_gram: int, vocab: Vocab = Vocab()) -> torch.Tensor:
    """A hand-built copier (the paper's Section 3 mechanism, not learned): after ``$ x |`` it
    emits the letter that followed the last n emitted letters in x (the first n letters are
    copied by position). It copies x exactly whenever no n-gram of x repeats.

    ``tokens``: (N, T) copy examples (``sample_copy``); returns the emitted answers (N, L_max)
    padded with PAD. Vectorised over the batch; one step per output letter.
    """
    separator = (tokens == vocab.sep).float().argmax(1)  # (N,) position of '|'
    lengths = separator - 1
    width = int(lengths.max())
    rows = torch.arange(len(tokens), device=tokens.device)
    source = torch.full((len(tokens), width + 1), vocab.pad, dtype=torch.long, device=tokens.device)
    span = torch.arange(width, device=tokens.device)
    inside = span < lengths.unsqueeze(1)
    source[:, :width] = torch.where(inside, tokens[rows.unsqueeze(1), (1 + span).clamp(max=tokens.shape[1] - 1)],
                                    vocab.pad)
    out = torch.full((len(tokens), width), vocab.pad, dtype=torch.long, device=tokens.device)
    out[:, :n_gram] = source[:, :n_gram]
    starts = torch.arange(width - n_gram + 1, device=tokens.device)
    windows = torch.stack([source[:, k:k + width - n_gram + 1] for k in range(n_gram)], dim=2)  # (N, W, n)
    for t in range(n_gram, width):
        key = out[:, t - n_gram:t]  # the last n emitted letters
        match = (windows == key.unsqueeze(1)).all(2) & (starts + n_gram < lengths.unsqueeze(1))
        first = torch.where(match.any(1), match.float().argmax(1), torch.zeros_like(lengths))
        out[:, t] = torch.where(match.any(1), source[rows, first + n_gram], vocab.eos)
    return torch.where(inside, out, vocab.pad)
