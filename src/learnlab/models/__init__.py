"""Models: one small readable file each."""

from learnlab.models.icl_transformer import ICLTransformer, ICLTransformerConfig
from learnlab.models.minimal_induction import MinimalInductionConfig, MinimalInductionModel
from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.models.neuron import NeuronConfig, SingleNeuron
from learnlab.models.parity_transformer import ParityTransformer, ParityTransformerConfig
from learnlab.models.polynet import PolyNet, PolyNetConfig

__all__ = [
    "ICLTransformer", "ICLTransformerConfig", "MLPConfig", "MinimalInductionConfig", "MinimalInductionModel",
    "NeuronConfig", "ParityTransformer", "ParityTransformerConfig", "PolyNet", "PolyNetConfig", "SingleNeuron",
    "TwoLayerMLP",
]
