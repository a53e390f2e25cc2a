"""Any ``nn.Module`` as S independent replicas trained at once, through ``torch.func``.

``FunctionalEnsemble`` stacks the replicas' parameters (``torch.func.stack_module_state``)
into ordinary parameters with a leading replica dimension and runs the forward pass with
``vmap(functional_call(...))``. Each replica keeps its own initialisation (built from
its own seed), sees its own slice of the (S, B, ...) input, and, with the loss summed
over replicas, receives exactly its own gradient. Models written with stacked weights
(``TwoLayerMLP``, ``ICLTransformer``) are faster; this serves every other model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state

from learnlab.runtime import seed_everything

__all__ = ["FunctionalEnsemble", "ModuleStack"]


class FunctionalEnsemble(nn.Module):
    """S replicas of ``build()``, replica s built after seeding the global RNG with ``seeds[s]``.

    Parameters are registered as ``replica_params.<name with dots as _>`` with shape
    (S, ...); ``forward(x)`` maps (S, B, ...) inputs to (S, B, ...) outputs. Dropout draws
    different masks for each replica (``randomness='different'``).
    """

    def __init__(self, build: Callable[[], nn.Module], seeds: Sequence[int], device="cpu"):
        super().__init__()
        replicas = []
        for seed in seeds:
            seed_everything(seed)  # the module's own init draws from the global generator
            replicas.append(build().to(device))
        params, buffers = stack_module_state(replicas)
        self.n_replicas = len(seeds)
        self._names = list(params)
        self.replica_params = nn.ParameterDict({n.replace(".", "_"): nn.Parameter(p) for n, p in params.items()})
        for name, buffer in buffers.items():
            self.register_buffer("replica_buffer_" + name.replace(".", "_"), buffer)
        self._buffer_names = list(buffers)
        self._base = [copy.deepcopy(replicas[0]).to("meta")]  # a list: not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self._base[0]
        base.train(self.training)
        params = {n: self.replica_params[n.replace(".", "_")] for n in self._names}
        buffers = {n: getattr(self, "replica_buffer_" + n.replace(".", "_")) for n in self._buffer_names}

        def one(p, b, inputs):
            return functional_call(base, (p, b), (inputs,))

        return torch.vmap(one, randomness="different")(params, buffers, x)

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        """Replica ``index``'s parameters under the module's own names."""
        return {n: self.replica_params[n.replace(".", "_")][index].detach() for n in self._names}


class ModuleStack(nn.ModuleList):
    """Independent models behind the stacked interface: x (S, B, ...) -> (S, B, ...), model s on
    x[s]. For models ``torch.func`` cannot batch (BatchNorm's running statistics update in
    place); the loop runs over models, never over examples. Its parameters carry no replica
    dimension, so per-replica clipping and learning rates do not apply to it."""

    def __init__(self, make, seeds: Sequence[int], device: torch.device | str = "cpu"):
        models = []
        for seed in seeds:
            seed_everything(seed)  # model s starts as a single model seeded ``seeds[s]`` would
            models.append(make().to(device))
        super().__init__(models)
        self.n_replicas = len(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([model(part) for model, part in zip(self, x)])
