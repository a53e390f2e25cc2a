"""Multi-digit multiplication with a chain of thought, in the format of Malach (2023).

Malach, "Auto-Regressive Next-Token Predictors are Universal Learners" (arXiv
2309.06979), Section 5 and the official ``LinearLM`` data set. For p-digit a and b the
sequence is, one token a word (example 2 x 2, 47 x 38)::

    [BOS] 4 7 x 3 8 =                                  the prompt
    ( 7 x 1 + 4 x 1 0 ) x ( 8 x 1 + 3 x 1 0 ) =        each number by place value, least significant first
    7x8 x 1 x 1 + 7x3 x 1 x 1 0 + 4x8 x 1 0 x 1 + 4x3 x 1 0 x 1 0 =    digit pairs as joined tokens
    5 6 + 2 1 0 + 3 2 0 + 1 2 0 0 =                    partial products, zero-padded to i + j + 2 digits
    1 7 8 6                                            the product, zero-padded to 2p digits

2p^3 + 8p^2 + 11p + 7 tokens: 77 for 2 x 2, 166 for 3 x 3, 307 for 4 x 4. The vocabulary
is [UNK], [BOS], the digits, ( ) + x = and the 100 joined tokens ixj: 117 ids. Unlike
the official generator, the place-value expansion is right for every number (it takes
the digits of ``str``; the official ``ceil(log10(n))`` drops the leading digit of 10,
100, ...). The no-chain-of-thought variant is ``[BOS] a x b = answer``.

Sequences are built column by column from a fixed template, for all examples at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["VOCAB", "TOKEN_ID", "MultiplicationFormat", "multiplication_format", "encode_products",
           "is_train_pair", "sample_pairs", "chain_checks", "decode"]

VOCAB = ("[UNK]", "[BOS]", *(str(i) for i in range(10)), "(", ")", "+", "x", "=",
         *(f"{i}x{j}" for i in range(10) for j in range(10)))
TOKEN_ID = {token: i for i, token in enumerate(VOCAB)}
_DIGIT0, _JOINED0 = TOKEN_ID["0"], TOKEN_ID["0x0"]


@dataclass(frozen=True)
class Slot:
    """One position of the template: a constant token, a digit of a quantity, or a joined pair."""

    kind: str  # "const" | "digit" | "joined"
    token: int = 0  # const
    quantity: str = ""  # digit: "a", "b", "answer", "a_i" (digit i of a), "prod_i_j"
    place: int = 0  # digit: which decimal place (0 = units)
    i: int = 0  # joined: digit i of a, digit j of b
    j: int = 0


@dataclass(frozen=True)
class MultiplicationFormat:
    digits: int
    cot: bool
    slots: tuple[Slot, ...]
    prompt_length: int

    @property
    def length(self) -> int:
        return len(self.slots)

    @property
    def answer_slice(self) -> slice:
        return slice(self.length - 2 * self.digits, self.length)


@lru_cache(maxsize=None)
def multiplication_format(digits: int, cot: bool = True) -> MultiplicationFormat:
    """The template of a ``digits`` x ``digits`` example."""
    p = digits
    const = lambda token: Slot("const", token=TOKEN_ID[token])  # noqa: E731

    def number(name: str, width: int) -> list[Slot]:  # most significant digit first
        return [Slot("digit", quantity=name, place=place) for place in reversed(range(width))]

    def power_of_ten(exponent: int) -> list[Slot]:
        return [const("1")] + [const("0")] * exponent

    def joined_by_plus(terms: list[list[Slot]]) -> list[Slot]:
        out = []
        for n, term in enumerate(terms):
            out += ([const("+")] if n else []) + term
        return out

    slots = [const("[BOS]"), *number("a", p), const("x"), *number("b", p), const("=")]
    prompt_length = len(slots)
    if cot:
        for name, closing in (("a", "x"), ("b", "=")):
            terms = [[Slot("digit", quantity=f"{name}_{i}", place=0), const("x"), *power_of_ten(i)] for i in range(p)]
            slots += [const("("), *joined_by_plus(terms), const(")"), const(closing)]
        pairs = [(i, j) for i in range(p) for j in range(p)]
        slots += joined_by_plus([[Slot("joined", i=i, j=j), const("x"), *power_of_ten(i), const("x"), *power_of_ten(j)]
                                 for i, j in pairs]) + [const("=")]
        slots += joined_by_plus([number(f"prod_{i}_{j}", i + j + 2) for i, j in pairs]) + [const("=")]
    slots += number("answer", 2 * p)
    return MultiplicationFormat(p, cot, tuple(slots), prompt_length)


def _quantities(a: torch.Tensor, b: torch.Tensor, digits: int) -> dict[str, torch.Tensor]:
    out = {"a": a, "b": b, "answer": a * b}
    for i in range(digits):
        out[f"a_{i}"] = (a // 10**i) % 10
        out[f"b_{i}"] = (b // 10**i) % 10
    for i in range(digits):
        for j in range(digits):
            out[f"prod_{i}_{j}"] = out[f"a_{i}"] * out[f"b_{j}"] * 10 ** (i + j)
    return out


def encode_products(a: torch.Tensor, b: torch.Tensor, fmt: MultiplicationFormat) -> torch.Tensor:
    """Token ids (N, fmt.length) of the examples a x b; a and b are (N,) int64 of ``fmt.digits`` digits."""
    values = _quantities(a, b, fmt.digits)
    columns = []
    for slot in fmt.slots:
        if slot.kind == "const":
            columns.append(torch.full_like(a, slot.token))
        elif slot.kind == "digit":
            columns.append(_DIGIT0 + (values[slot.quantity] // 10**slot.place) % 10)
        else:
            columns.append(_JOINED0 + 10 * values[f"a_{slot.i}"] + values[f"b_{slot.j}"])
    return torch.stack(columns, dim=1)


def decode(tokens) -> str:
    """Token ids -> the space-separated text."""
    return " ".join(VOCAB[int(t)] for t in tokens)


_HASH = 2654435761  # Knuth's multiplicative hash: consecutive pair indices spread evenly over [0, 2^32)


def is_train_pair(a: torch.Tensor, b: torch.Tensor, digits: int) -> torch.Tensor:
    """The fixed 75 / 25 split of all (a, b) pairs of ``digits`` digits, by a hash of the pair."""
    low, count = 10 ** (digits - 1), 9 * 10 ** (digits - 1)
    index = (a - low) * count + (b - low)
    return (index * _HASH) % 2**32 < int(0.75 * 2**32)


def sample_pairs(n: int, *, digits: int, split: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs (a, b) drawn uniformly from the ``split`` ("train" or "test") half of all pairs."""
    low, high = 10 ** (digits - 1), 10**digits
    a_parts, b_parts, have = [], [], 0
    while have < n:  # rejection in blocks: about 1.4 draws per kept pair for train, 4 for test
        a = torch.randint(low, high, (2 * n + 16,), generator=generator, device=generator.device)
        b = torch.randint(low, high, (2 * n + 16,), generator=generator, device=generator.device)
        keep = is_train_pair(a, b, digits) == (split == "train")
        a_parts.append(a[keep])
        b_parts.append(b[keep])
        have += int(keep.sum())
    return torch.cat(a_parts)[:n], torch.cat(b_parts)[:n]


def chain_checks(tokens: torch.Tensor, fmt: MultiplicationFormat) -> dict[str, torch.Tensor]:
    """Read generated sequences (N, fmt.length) against the template.

    Returns boolean (N,) tensors: ``well_formed`` (every slot holds a token of its kind and
    every constant is right), ``consistent`` (the joined tokens repeat the chain's own
    expansion digits, each partial product is its joined pair times its powers of ten, and
    the answer is the sum of the written partial products), ``correct`` (answer = a b).
    """
    n = tokens.shape[0]
    well_formed = torch.ones(n, dtype=torch.bool, device=tokens.device)
    read: dict[str, torch.Tensor] = {}
    joined: dict[tuple[int, int], torch.Tensor] = {}
    for position, slot in enumerate(fmt.slots):
        token = tokens[:, position]
        if slot.kind == "const":
            well_formed &= token == slot.token
        elif slot.kind == "digit":
            digit = token - _DIGIT0
            well_formed &= (digit >= 0) & (digit <= 9)
            read[slot.quantity] = read.get(slot.quantity, torch.zeros_like(token)) + digit.clamp(0, 9) * 10**slot.place
        else:
            pair = token - _JOINED0
            well_formed &= (pair >= 0) & (pair <= 99)
            joined[slot.i, slot.j] = pair.clamp(0, 99)
    a, b = read["a"], read["b"]
    consistent = well_formed.clone()
    if fmt.cot:
        total = torch.zeros_like(a)
        for (i, j), pair in joined.items():
            consistent &= (pair // 10 == read[f"a_{i}"]) & (pair % 10 == read[f"b_{j}"])
            consistent &= read[f"prod_{i}_{j}"] == (pair // 10) * (pair % 10) * 10 ** (i + j)
            total = total + read[f"prod_{i}_{j}"]
        consistent &= read["answer"] == total
    return {"well_formed": well_formed, "consistent": consistent, "correct": well_formed & (read["answer"] == a * b)}
