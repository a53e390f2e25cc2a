"""Parity with a chain of thought: what a linear next-token predictor can and cannot learn.

Malach (2023; arXiv 2309.06979), Section 4: a parity of a hidden subset A of n bits is
not a linear threshold function, so a linear predictor cannot output it directly; with a
chain of thought in which every token is a linear threshold of the input and the earlier
tokens, it can. Two chains:

- ``count``: the binary expansion of sum_{i in A} x_i, most significant bit first,
  ceil(log2(|A| + 1)) tokens; bit j is [sum - (higher bits' value) >= 2^j], a linear
  threshold, and the last token (the units bit) is the parity.
- ``chunks`` of k: the running parity after each k more bits of A (in a fixed order),
  ceil(|A| / k) tokens; each step is a parity of <= k + 1 bits. Shortening the chain makes
  every step a larger parity (the length-complexity trade-off).
- ``none``: the parity right after ``=``.

Tokens: 0 and 1 for bits, 2 for ``=``. A sequence is x_1 .. x_n = c_1 .. c_L.
"""

from __future__ import annotations

import math

import torch

__all__ = ["EQUALS", "chain_length", "sample_parity_chain"]

EQUALS = 2


def chain_length(chain: str, subset_size: int, k: int | None = None) -> int:
    """Tokens after ``=``: 1 without a chain, ceil(log2(|A| + 1)) for ``count``, ceil(|A| / k) for ``chunks``."""
    if chain == "none":
        return 1
    if chain == "count":
        return max(1, math.ceil(math.log2(subset_size + 1)))
    if chain == "chunks":
        if k is None or k < 1:
            raise ValueError("the chunks chain needs k >= 1")
        return math.ceil(subset_size / k)
    raise ValueError(f"unknown chain {chain!r}; use none, count or chunks")


def sample_parity_chain(n_samples: int, *, subset: torch.Tensor, n_bits: int, chain: str, k: int | None = None,
                        generator: torch.Generator) -> torch.Tensor:
    """Sequences (n_samples, n_bits + 1 + L) of int64 tokens; ``subset`` is A, (|A|,) indices
    in the order the ``chunks`` chain reads them."""
    x = torch.randint(0, 2, (n_samples, n_bits), generator=generator, device=generator.device)
    chosen = x[:, subset]  # (N, |A|)
    if chain == "none":
        tail = chosen.sum(dim=1, keepdim=True) % 2
    elif chain == "count":
        length = chain_length("count", len(subset))
        total = chosen.sum(dim=1, keepdim=True)  # (N, 1)
        places = 2 ** torch.arange(length - 1, -1, -1, device=x.device)  # most significant first
        tail = (total // places) % 2
    else:
        length = chain_length("chunks", len(subset), k)
        ends = torch.tensor([min((j + 1) * k, len(subset)) - 1 for j in range(length)], device=x.device)
        tail = (chosen.cumsum(dim=1) % 2)[:, ends]
    equals = torch.full((n_samples, 1), EQUALS, device=x.device, dtype=x.dtype)
    return torch.cat([x, equals, tail], dim=1)
