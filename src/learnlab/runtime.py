"""Devices and seeds: the two runtime choices every run makes."""

from __future__ import annotations

import random

import numpy as np
import torch

from learnlab.errors import ConfigError

__all__ = ["DEVICES", "resolve_device", "seed_everything", "replica_seeds", "generator"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; asking for an absent device is an error."""
    if name not in DEVICES:
        raise ConfigError(f"The device must be one of {', '.join(DEVICES)}. Got {name!r}.")
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("The device 'cuda' was asked for, but this PyTorch sees no CUDA device.")
    if name == "mps" and not has_mps:
        raise ConfigError("The device 'mps' was asked for, but this PyTorch sees no MPS device.")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (tasks still take explicit ones)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def replica_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit seeds derived from ``(seed, i)``.

    Replica ``i`` of a run with seed ``s`` gets the same seed whatever ``n`` is, so an
    ensemble of S replicas reproduces S separate runs.
    """
    return [int(np.random.SeedSequence([seed, i]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)
            for i in range(n)]


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)
