"""Seeds derived from a run's seed: named streams, and replicas by position.

Every random draw of a run takes its seed from the run seed through one of two functions,
never through an offset (``seed + 7``, ``seed * 1000 + n``, ``seed ^ 0x7E57``):

- ``streams(seed, "init", "data", "eval")`` gives one independent 63-bit seed per name,
  each a function of (seed, name) alone: adding, removing or reordering streams leaves the
  others as they were, and no two names (or seeds) share a stream the way ``seed + 7`` and
  ``(seed + 1) + 6`` do. An indexed family is a name per member (``stream(seed,
  f"length-{n}")``) or replicas of one stream (``replica_seeds(stream(seed, "students"), n)``).
- ``replica_seeds(seed, n)`` gives replica ``i`` of ``n`` its seed, whatever ``n`` is.

Both are NumPy ``SeedSequence`` states: a replica's entropy is ``[seed, i]``, a stream's is
``seed`` with the name's hash as spawn key, so a stream never equals a replica seed either.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["replica_seeds", "stream", "streams"]


def _to_63_bits(sequence: np.random.SeedSequence) -> int:
    """The first 64 bits of the sequence's state, shifted to a non-negative 63-bit int."""
    return int(sequence.generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def stream(seed: int, name: str) -> int:
    """The seed of the stream ``name`` of a run seeded ``seed``: a 63-bit int.

    >>> stream(0, "init") == stream(0, "init") != stream(0, "data")
    True
    """
    key = np.frombuffer(hashlib.blake2b(name.encode(), digest_size=8).digest(), dtype=np.uint32)
    return _to_63_bits(np.random.SeedSequence(seed, spawn_key=tuple(int(word) for word in key)))


def streams(seed: int, *names: str) -> tuple[int, ...]:
    """One seed per named stream: ``init, data = streams(seed, "init", "data")``."""
    return tuple(stream(seed, name) for name in names)


def replica_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit seeds derived from ``(seed, i)``.

    Replica ``i`` of a run with seed ``s`` gets the same seed whatever ``n`` is, so an
    ensemble of S replicas reproduces S separate runs.

    >>> replica_seeds(0, 3)[:2] == replica_seeds(0, 2)
    True
    """
    return [_to_63_bits(np.random.SeedSequence([seed, i])) for i in range(n)]
