"""Models: one small readable file each."""

from learnlab.models.mlp import MLPConfig, TwoLayerMLP

__all__ = ["MLPConfig", "TwoLayerMLP"]
