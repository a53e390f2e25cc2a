"""Named random streams derived from a run's seed, in place of magic seed offsets.

``streams(seed, "init", "data", "eval")`` gives one independent 63-bit seed per name,
each a function of (seed, name) alone: adding, removing or reordering streams leaves the
others as they were, and no two names (or seeds) share a stream the way ``seed + 7`` and
``(seed + 1) + 6`` do. Derived with NumPy's ``SeedSequence``, the name as its spawn key,
so a stream never equals a ``runtime.replica_seeds`` seed either.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stream", "streams"]


def stream(seed: int, name: str) -> int:
    """The seed of the stream ``name`` of a run seeded ``seed``."""
    key = np.frombuffer(hashlib.blake2b(name.encode(), digest_size=8).digest(), dtype=np.uint32)
    state = np.random.SeedSequence(seed, spawn_key=tuple(int(word) for word in key)).generate_state(2, np.uint32)
    return int(state.view(np.uint64)[0] >> 1)


def streams(seed: int, *names: str) -> tuple[int, ...]:
    """One seed per named stream: ``init, data = streams(seed, "init", "data")``."""
    return tuple(stream(seed, name) for name in names)
