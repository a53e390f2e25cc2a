"""Any ``nn.Module`` as S independent replicas trained at once, through ``torch.func``.

``FunctionalEnsemble`` stacks the replicas' parameters (``torch.func.stack_module_state``)
into ordinary parameters with a leading replica dimension and runs the forward pass with
``vmap(functional_call(...))``. Each replica keeps its own initialisation (built from
its own seed), sees its own slice of the (S, B, ...) input, and, with the loss summed
over replicas, receives exactly its own gradient. Models written with stacked weights
(``TwoLayerMLP``, ``ICLTransformer``) are faster; this serves every other model.

``fused_gradient`` gives ``fit`` the hand-derived gradient of a stacked ``TwoLayerMLP``
under a margin loss: a dozen batched kernels for all replicas' forward, loss and gradient,
instead of autograd's graph (twice as many kernels, each with its bookkeeping).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state

from learnlab.models.mlp import TwoLayerMLP
from learnlab.runtime import seed_everything
from learnlab.train.losses import hinge_loss, logistic_loss, square_loss

__all__ = ["FunctionalEnsemble", "ModuleStack", "fused_gradient"]


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


def _hinge_slope(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # max(0, 1 - y f): autograd's clamp_min passes the gradient where 1 - y f >= 0 (ties included)
    return torch.where(1.0 - y * f >= 0, -y, 0.0)


def _square_slope(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2.0 * (f - y)


def _logistic_slope(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # softplus(z), z = -y f: slope sigmoid(z), exactly 1 above softplus's threshold of 20 (as autograd)
    z = -y * f
    return -y * torch.where(z > 20, 1.0, torch.sigmoid(z))


# d loss_b / d f_b for the margin losses of ``train.losses`` (each a mean over the batch)
_SLOPES = {hinge_loss: _hinge_slope, square_loss: _square_slope, logistic_loss: _logistic_slope}


class _MLPMarginGradient:
    """``fit``'s ``gradient(model, inputs, targets)`` for a ``TwoLayerMLP`` and a margin loss.

    For x (S, B, n), labels y (S, B): h = x W^T + b, a = sigma(h) * mask, f = a u (+ c),
    loss_s = mean_b l(f, y); with g = l'(f, y) / B: d u = g^T a, d c = sum_b g,
    d h = (g u^T) sigma'(h) mask, d W = (d h)^T x, d b = sum_b d h. Sets every ``p.grad``
    (as autograd would: the loss summed over replicas, each replica its own gradient) and
    returns the per-replica loss, computed by the loss function itself. Products with a
    vector are laid out as row vector x matrix (a batched GEMV the other way round is ten
    times slower on a CPU); ReLU's slope is autograd's own ``threshold_backward``.
    """

    def __init__(self, loss_fn: Callable):
        self.loss_fn, self.slope = loss_fn, _SLOPES[loss_fn]

    @torch.no_grad()
    def __call__(self, model: TwoLayerMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg = model.cfg
        masked = not bool(model.neuron_mask.all())  # replicas of different widths
        h = torch.bmm(x, model.weight.transpose(1, 2))  # (S, B, r)
        if model.bias is not None:
            h.add_(model.bias.unsqueeze(1))
        a = model.activation(h)
        if masked:
            a = a * model.neuron_mask.unsqueeze(1)
        f = torch.bmm(model.readout.unsqueeze(1), a.transpose(1, 2)).squeeze(1)  # (S, B)
        if model.output_bias is not None:
            f = f + model.output_bias.unsqueeze(1)
        loss = self.loss_fn(f, y)  # (S,)
        g = self.slope(f, y).div_(f.shape[1])  # d loss / d f, (S, B)
        grad_h = g.unsqueeze(2) * model.readout.unsqueeze(1)  # (S, B, r)
        if cfg.activation == "relu":  # zero where a = 0 (h <= 0, or a masked neuron)
            grad_h = torch.ops.aten.threshold_backward(grad_h, a, 0)
        else:
            grad_h.mul_(1.0 - a * a if cfg.activation == "tanh" else cfg.power * h.pow(cfg.power - 1))
            if masked:
                grad_h.mul_(model.neuron_mask.unsqueeze(1))
        grads = {"weight": torch.bmm(grad_h.transpose(1, 2), x), "bias": grad_h.sum(dim=1),  # (S, r, n), (S, r)
                 "readout": torch.bmm(g.unsqueeze(1), a).squeeze(1), "output_bias": g.sum(dim=1)}
        for name, grad in grads.items():
            parameter = getattr(model, name)
            if parameter is not None and parameter.requires_grad:
                parameter.grad = grad
        return loss


def fused_gradient(model: nn.Module, loss_fn: Callable) -> Callable | None:
    """A hand-derived ``gradient(model, inputs, targets)`` for ``fit``, or None where there is none.

    There is one for a plain ``TwoLayerMLP`` (no hooks; ReLU, tanh or power activation) under
    the hinge, square or logistic loss of ``train.losses``; it sets the gradients autograd
    would (up to float rounding) and returns the same per-replica losses.
    """
    if type(model) is not TwoLayerMLP or loss_fn not in _SLOPES or model.cfg.activation == "gelu":
        return None
    if model._forward_hooks or model._forward_pre_hooks or nn.modules.module._global_forward_hooks:
        return None
    return _MLPMarginGradient(loss_fn)
