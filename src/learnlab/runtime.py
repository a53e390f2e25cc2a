"""Devices and seeds: the two runtime choices every run makes."""

from __future__ import annotations

import contextlib
import ctypes
import random
import sys
from collections.abc import Iterator

import numpy as np
import torch

from learnlab.errors import ConfigError

__all__ = ["DEVICES", "resolve_device", "seed_everything", "generator", "keep_freed_memory", "one_cpu_thread"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def keep_freed_memory() -> bool:
    """Let glibc keep freed tensors' memory for reuse instead of returning it to the OS.

    A stacked ensemble allocates and frees tensors of a few MB every step; above glibc's
    default mmap threshold each one is a fresh mapping whose pages fault in on first
    touch, which cost 3x the arithmetic of a full-batch oracle step (sq-vs-pac: 11.4 s
    -> 3.7 s of CPU for 100 steps). Same numbers, only the allocator changes. Returns
    False where there is no glibc (macOS, musl), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


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


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def one_cpu_thread(device: torch.device | str) -> Iterator[None]:
    """One intra-op thread on a CPU inside the block (restored after); nothing on a GPU.

    For small models (kernels of microseconds) a second thread saves little and, when the
    cores are shared, spins waiting for its partner: measured on a loaded 2-core machine, the
    CPU time of copying's and subtuning's quick presets grew several-fold with two threads.
    """
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
