"""Capture what passes through a model's ``HookPoint``s; hooks are removed in ``finally``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

__all__ = ["capture"]


@contextmanager
def capture(model: torch.nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """``with capture(model, ["layers.0.attn.hook_pattern"]) as seen: model(x)`` fills
    ``seen[name]`` with the (detached) tensor of the last forward pass."""
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise KeyError(f"no hook point {missing[0]!r}; known: {[n for n in modules if 'hook' in n]}")
    seen: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(
                lambda module, inputs, output, name=name: seen.__setitem__(name, output.detach())))
        yield seen
    finally:
        for handle in handles:
            handle.remove()
