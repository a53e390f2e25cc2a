"""What closed-form gradients and tangent kernels need from a two-layer network: a protocol.

Generic layers (``train.precision``, ``probes.ntk``) never name a concrete model; a model
that is S stacked f(x) = u . act(W x + b) (+ c) networks, with one fixed neuron mask, can
take their closed-form paths by having these members (``models.mlp.TwoLayerMLP`` does).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["StackedTwoLayer", "is_relu_two_layer"]


@runtime_checkable
class StackedTwoLayer(Protocol):
    """S stacked two-layer networks.

    weight (S, r, n), bias (S, r) or None, readout (S, r), output_bias (S,) or None,
    neuron_mask (S, r); ``hidden(x)`` gives the pre-activations W x + b, (S, B, r), for x (S, B, n);
    ``cfg.activation`` names the hidden activation (``"relu"`` for the closed forms).
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    readout: torch.Tensor
    output_bias: torch.Tensor | None
    neuron_mask: torch.Tensor
    cfg: Any  # carries ``activation``

    def hidden(self, x: torch.Tensor) -> torch.Tensor: ...


def is_relu_two_layer(model: object) -> bool:
    """True when ``model`` is a :class:`StackedTwoLayer` with ReLU hidden units."""
    return isinstance(model, StackedTwoLayer) and getattr(model.cfg, "activation", None) == "relu"
