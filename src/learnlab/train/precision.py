"""A bounded-precision gradient oracle: gradient descent as a statistical-query algorithm.

Abbe, Kamath, Malach, Sandon, Srebro, "On the Power of Differentiable Learning versus PAC
and SQ Learning" (NeurIPS 2021; arXiv 2108.04190). Their learner sees the gradient only
through an oracle of precision rho: per-example gradients are clipped to [-1, 1] and
averaged over a batch of b, and the average is returned up to rho. With b rho^2 large,
the batch average is within rho of its expectation and the oracle answers like a
statistical query (SQ): a deterministic rounding erases the parity signal, which is
below rho. With b rho small, single examples leak through the rounding and the learner
can act like any PAC algorithm (see ``SampleChannel``).

What we could not confirm from the paper offline and keep configurable: the scale ``s``
applied before clipping (gradients are O(1/sqrt(r)) per coordinate at initialisation; we
multiply by s, clip, round, and divide by s again so that ``exact`` with no clipping is
plain SGD), and the adversarial rounding (``adv_zero``: among the lattice points within
3 rho / 4 of the value, the one nearest zero).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
from torch.func import functional_call, grad, vmap

from learnlab.config import Interval, param
from learnlab.models.two_layer import StackedTwoLayer, is_relu_two_layer

__all__ = ["PrecisionConfig", "GradientOracle", "per_example_gradients", "round_to_lattice", "SampleChannel",
           "decode_channel", "solve_parity_gf2"]

RoundingMode = Literal["exact", "nearest", "trunc", "adv_zero", "stochastic"]


@dataclass(frozen=True)
class PrecisionConfig:
    rho: float = param(0.3, Interval(0.0, None, closed="neither"), help="the lattice spacing: answers lie in rho Z")
    mode: RoundingMode = param(
        "nearest", help="exact (no rounding), nearest, trunc (toward zero), adv_zero (nearest zero within 3 rho/4), "
                        "stochastic (unbiased: the control)")
    scale: float = param(1.0, Interval(0.0, None, closed="neither"),
                         help="s: per-example gradients are multiplied by s before clipping, the answer divided by s")
    clip: bool = param(True, help="clip each scaled per-example coordinate to [-1, 1]")


def round_to_lattice(values: torch.Tensor, rho: float | torch.Tensor, mode: RoundingMode,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Round every coordinate to the lattice rho Z (``exact`` returns ``values``)."""
    if mode == "exact":
        return values
    # ``scaled`` is a fresh tensor: the rounding runs in place on it (the sample channel's
    # answers are ~10^7 coordinates, where every new tensor costs page faults).
    scaled = values / rho
    if mode == "nearest":
        return scaled.round_().mul_(rho)
    if mode == "trunc":
        return scaled.trunc_().mul_(rho)
    if mode == "adv_zero":
        # Admissible answers: lattice points within 3 rho / 4 of the value (a window of
        # width 3 rho / 2 always holds one). The adversary answers the one nearest zero.
        nearest_zero = scaled.abs().sub_(0.75).ceil_().clamp_min_(0.0)
        return scaled.sign_().mul_(nearest_zero).mul_(rho)
    if mode == "stochastic":
        noise = torch.rand(scaled.shape, generator=generator, device=values.device, dtype=values.dtype)
        return noise.add_(scaled).floor_().mul_(rho)
    raise ValueError(f"unknown rounding mode {mode!r}")


def per_example_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                          method: Literal["auto", "vmap", "closed_form"] = "auto"
                          ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The gradient of each example's loss, for a model stacked over S replicas.

    ``model`` maps (S, B, ...) inputs to (S, B) outputs; ``loss_fn(outputs, targets)`` is a
    mean over the batch (the losses of ``train.losses``). Returns ({name: (B, *param.shape)},
    per-replica mean loss (S,)). ``closed_form`` (the default for a ReLU
    ``models.two_layer.StackedTwoLayer`` such as ``TwoLayerMLP``)
    writes the two-layer gradients out; ``vmap`` is ``torch.func.vmap(grad(...))`` and works
    for any stacked model.
    """
    if method == "auto":
        method = "closed_form" if is_relu_two_layer(model) else "vmap"
    if method == "closed_form":
        return _two_layer_gradients(model, inputs, targets, loss_fn)
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def example_loss(p, x, y):  # x (S, ...), y (S,): one example for every replica
        outputs = functional_call(model, (p, buffers), (x.unsqueeze(1),))  # (S, 1)
        return loss_fn(outputs, y.unsqueeze(1)).sum()  # replicas are independent: their sum separates

    gradients = vmap(grad(example_loss), in_dims=(None, 1, 1))(params, inputs, targets)
    with torch.no_grad():
        loss = loss_fn(model(inputs), targets)
    return gradients, loss


def _two_layer_gradients(model: StackedTwoLayer, x: torch.Tensor, y: torch.Tensor, loss_fn):
    gradients, loss = _two_layer_gradients_without_weight(model, x, y, loss_fn)
    back = gradients.pop("pre")  # (B, S, r)
    gradients["weight"] = back.unsqueeze(3) * x.transpose(0, 1).unsqueeze(2)  # (B, S, r, n)
    return gradients, loss


class GradientOracle:
    """``fit``'s gradient step through a precision-rho oracle.

    Called as ``oracle(model, inputs, targets)``: computes per-example gradients, scales
    them by s, clips each coordinate to [-1, 1], averages over the batch, rounds the
    average to rho Z, divides by s and stores the result in ``p.grad``; returns the
    per-replica loss (S,). ``replica_rho`` (S,) gives each replica of a stacked model its
    own precision (one stack then covers a row of a b x rho phase diagram).
    """

    def __init__(self, cfg: PrecisionConfig, loss_fn, *, seed: int = 0, method: str = "auto",
                 replica_rho: torch.Tensor | None = None):
        self.cfg, self.loss_fn, self.method = cfg, loss_fn, method
        self.replica_rho = replica_rho
        self.generator = torch.Generator().manual_seed(seed)  # stochastic rounding only

    def clipped_means(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
                      ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """{name: mean over the batch of clip(s x per-example gradient)} (unrounded), and the loss."""
        scale, clip = self.cfg.scale, self.cfg.clip
        if (self.method == "auto" and is_relu_two_layer(model)
                and torch.equal(inputs, inputs.sign())):  # inputs in {-1, 0, 1}
            return _two_layer_clipped_means(model, inputs, targets, self.loss_fn, scale, clip)
        # a model that knows its own clipped mean for this loss (``SampleChannel``) answers itself
        if self.method == "auto" and self.loss_fn is channel_loss and hasattr(model, "clipped_mean_gradient"):
            return model.clipped_mean_gradient(inputs, targets, scale, clip)
        gradients, loss = per_example_gradients(model, inputs, targets, self.loss_fn, self.method)
        means = {}
        for name, g in gradients.items():
            g = g * scale
            means[name] = (g.clamp(-1.0, 1.0) if clip else g).mean(dim=0)
        return means, loss

    def answer(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The oracle's answers {name: rounded clipped scaled mean}, on the lattice, and the loss."""
        means, loss = self.clipped_means(model, inputs, targets)
        answers = {}
        for name, mean in means.items():
            rho = self.cfg.rho
            if self.replica_rho is not None:
                rho = self.replica_rho.to(mean).view(-1, *([1] * (mean.dim() - 1)))
            generator = self.generator
            if self.cfg.mode == "stochastic" and mean.device.type != "cpu":
                generator = torch.Generator(device=mean.device).manual_seed(
                    int(torch.randint(2**62, (1,), generator=self.generator)))
            answers[name] = round_to_lattice(mean, rho, self.cfg.mode, generator)
        return answers, loss

    def answer_rows(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``answer`` for a model whose per-example gradients each live on one row of its one
        parameter (``SampleChannel``: ``clipped_mean_rows``), on the rows the batch touches:
        (rows, their answers). Every other row's clipped mean is 0, which a deterministic
        rounding answers with exactly 0, so this is ``answer`` without the passes over all
        rows (stochastic rounding draws noise for every row: use ``answer``)."""
        if self.cfg.mode == "stochastic" or self.replica_rho is not None:
            raise ValueError("answer_rows needs a deterministic rounding and one rho")
        rows, means = model.clipped_mean_rows(inputs, targets, self.cfg.scale, self.cfg.clip)
        return rows, round_to_lattice(means, self.cfg.rho, self.cfg.mode)

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        answers, loss = self.answer(model, inputs, targets)
        for name, p in model.named_parameters():
            p.grad = answers[name] / self.cfg.scale
        return loss

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _two_layer_clipped_means(model: StackedTwoLayer, x, y, loss_fn, scale: float, clip: bool,
                             chunk_elements: int = 1 << 17):
    """The clipped mean gradient of a ReLU two-layer MLP without per-example weight gradients.

    For inputs in {-1, 0, 1}, clip(s d_i x_j) = clip(s d_i) x_j, so the first layer's
    clipped mean is one batched matrix product instead of a (B, S, r, n) tensor. The bias
    gradient equals d_i, so its clipped mean reuses the same clipped tensor. The (S, B, r)
    work runs over chunks of the batch of about ``chunk_elements`` values, which stay in
    the CPU's cache through the half-dozen elementwise passes (at full-batch GD's
    16 x 2,000 x 128, one pass over memory each was the hot loop of sq-vs-pac), and is
    summed: the means are those sums over B.
    """
    batch = x.shape[1]
    rows = max(1, chunk_elements // (x.shape[0] * model.readout.shape[1]))
    parts = [(x[:, i:i + rows]) for i in range(0, batch, rows)]
    readout = model.readout.detach()
    with torch.no_grad():
        out = torch.cat([torch.bmm(_relu_hidden(model, part), readout.unsqueeze(2)).squeeze(2) for part in parts], 1)
        if model.output_bias is not None:
            out = out + model.output_bias.unsqueeze(1)
    out.requires_grad_(True)
    loss = loss_fn(out, y)  # (S,) means over the batch
    (dloss,) = torch.autograd.grad(loss.sum(), out)
    dloss = dloss * batch  # d(example loss)/d f, (S, B)

    def squash_(g: torch.Tensor) -> torch.Tensor:  # in place: these tensors are ours
        g = g.mul_(scale)
        return g.clamp_(-1.0, 1.0) if clip else g

    sums = {"readout": readout.new_zeros(readout.shape), "bias": readout.new_zeros(readout.shape),
            "weight": readout.new_zeros(model.weight.shape)}
    for i, part in zip(range(0, batch, rows), parts):
        d = dloss[:, i:i + rows].unsqueeze(2)
        hidden = _relu_hidden(model, part)
        # d(example loss)/d pre = d u 1[pre > 0]: ReLU's backward, one fused pass
        back = squash_(torch.ops.aten.threshold_backward(d * readout.unsqueeze(1), hidden, 0.0))
        sums["bias"] += back.sum(1)
        sums["weight"].baddbmm_(back.transpose(1, 2), part)
        sums["readout"] += squash_(hidden.mul_(d)).sum(1)
    # In the order readout, bias, output_bias, weight: stochastic rounding draws its noise
    # parameter by parameter in this order.
    means = {"readout": sums["readout"] / batch}
    if model.bias is not None:
        means["bias"] = sums["bias"] / batch
    if model.output_bias is not None:
        means["output_bias"] = squash_(dloss.clone()).mean(dim=1)
    means["weight"] = sums["weight"] / batch
    return means, loss.detach()


def _relu_hidden(model: StackedTwoLayer, x: torch.Tensor) -> torch.Tensor:
    """relu(W x + b) on live neurons, (S, B, r), as a fresh tensor (no graph)."""
    with torch.no_grad():
        hidden = model.hidden(x).clamp_min_(0.0)
        if not bool(model.neuron_mask.all()):  # padded neurons (per-replica widths) stay off
            hidden.mul_(model.neuron_mask.unsqueeze(1))
    return hidden


def _two_layer_gradients_without_weight(model: StackedTwoLayer, x, y, loss_fn):
    """Per-example gradients of every parameter but the first layer's weight, (B, S, ...)
    (``per_example_gradients``' layout), and the loss. ``"pre"`` is d(example loss)/d(pre-
    activation), which the caller turns into the weight's gradient.
    """
    readout = model.readout.detach()
    hidden = _relu_hidden(model, x)  # (S, B, r)
    with torch.no_grad():
        out = torch.bmm(hidden, readout.unsqueeze(2)).squeeze(2)  # (S, B)
        if model.output_bias is not None:
            out = out + model.output_bias.unsqueeze(1)
    out.requires_grad_(True)
    loss = loss_fn(out, y)  # (S,) means over the batch
    (dloss,) = torch.autograd.grad(loss.sum(), out)
    dloss = dloss * x.shape[1]  # d(example loss)/d f, (S, B)
    # d(example loss)/d pre = dloss u_i 1[pre_i > 0] (masked): ReLU's backward, one fused pass
    # (hidden > 0 exactly where pre > 0 on a live neuron).
    back = torch.ops.aten.threshold_backward(dloss.unsqueeze(2) * readout.unsqueeze(1), hidden, 0.0)
    gradients = {"pre": back, "readout": hidden.mul_(dloss.unsqueeze(2))}
    if model.bias is not None:
        gradients["bias"] = back
    if model.output_bias is not None:
        gradients["output_bias"] = dloss
    return {name: g.transpose(0, 1) for name, g in gradients.items()}, loss.detach()


# ----------------------------------------------------------------------------- the sample channel


class SampleChannel(nn.Module):
    """Our illustration of "b rho small => PAC" (not the paper's construction).

    M parameter blocks u_j in R^(n+1); an example x is hashed to block j(x) and
    f(x) = <u_j(x), (x, 1)>, with loss -y f(x). One example's gradient is -y (x, 1) on its
    own block and zero elsewhere, so in a batch average it has size 1/b: when 1/b is above
    the rounding, every example survives in the oracle's answer and can be read back.
    Stacked over S replicas like every model here: inputs (S, B, n) -> (S, B).
    """

    def __init__(self, n_inputs: int, n_blocks: int, n_replicas: int = 1, hash_seed: int = 0):
        super().__init__()
        self.n_inputs, self.n_blocks, self.n_replicas = n_inputs, n_blocks, n_replicas
        g = torch.Generator().manual_seed(hash_seed)
        self.register_buffer("hash_weights", torch.randint(1, 2**31 - 1, (n_inputs,), generator=g))
        self.blocks = nn.Parameter(torch.zeros(n_replicas, n_blocks, n_inputs + 1))  # (S, M, n+1)

    def block_of(self, x: torch.Tensor) -> torch.Tensor:
        """j(x) for ±1 inputs (..., n): a random linear hash of the bits, mod M."""
        bits = (x < 0).long()
        return (bits * self.hash_weights).sum(-1) % self.n_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        j = self.block_of(x)  # (S, B)
        u = torch.gather(self.blocks, 1, j.unsqueeze(2).expand(-1, -1, self.n_inputs + 1))  # (S, B, n+1)
        features = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)
        return (u * features).sum(-1)


    def clipped_mean_gradient(self, x: torch.Tensor, y: torch.Tensor, scale: float, clip: bool
                              ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The oracle's clipped mean of -y (x, 1) s over the batch, by scatter-add into the
        blocks (no (B, M, n+1) per-example tensor). Valid for ±1 inputs and labels."""
        features = self._clipped_example_gradients(x, y, scale, clip)
        j = self.block_of(x)  # (S, B)
        mean = torch.zeros_like(self.blocks).scatter_add_(1, j.unsqueeze(2).expand_as(features), features)
        with torch.no_grad():
            loss = channel_loss(self(x), y)
        return {"blocks": mean / x.shape[1]}, loss

    def touched_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of the flattened (S * M, n + 1) blocks that x (S, B, n) hashes to, sorted
        (K,), and each example's index into them (S, B)."""
        replica = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
        return torch.unique(replica * self.n_blocks + self.block_of(x), return_inverse=True)

    @staticmethod
    def _clipped_example_gradients(x, y, scale: float, clip: bool) -> torch.Tensor:
        """Each example's gradient -y (x, 1), scaled by s and clipped: (S, B, n+1)."""
        features = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1) * (-y).unsqueeze(-1) * scale
        return features.clamp(-1.0, 1.0) if clip else features

    def clipped_mean_rows(self, x: torch.Tensor, y: torch.Tensor, scale: float, clip: bool
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """``clipped_mean_gradient`` on the touched blocks only: (rows, means), rows (K,) of the
        flattened (S * M, n + 1) blocks in increasing order (replica, then block), means (K, n+1)."""
        features = self._clipped_example_gradients(x, y, scale, clip)
        rows, where = self.touched_rows(x)
        sums = features.new_zeros(len(rows), features.shape[-1]).index_add_(0, where.flatten(),
                                                                            features.flatten(0, 1))
        return rows, sums / x.shape[1]


def channel_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-y f(x), mean over the batch: each example's gradient is exactly -y (x, 1)."""
    return -(labels * outputs).mean(dim=-1)


def decode_channel(answer: torch.Tensor, blocks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read examples back from a rounded block gradient (M, n+1) of one replica.

    A block holding exactly one example is -y (x, 1) / b, rounded: every coordinate has the
    same nonzero magnitude. Blocks with no example, with colliding examples, or erased by
    the rounding are skipped. Returns (x (K, n) of ±1, y (K,) of ±1), in block order.
    ``blocks``: the blocks the batch touched (``SampleChannel.block_of``); the others hold
    no example, so only these rows are read (the same result, without a pass over all M).
    """
    if blocks is not None:
        answer = answer[torch.unique(blocks)]  # sorted: block order, as over all rows
    magnitude = answer.abs()
    single = (magnitude > 0).all(dim=1) & (magnitude == magnitude[:, :1]).all(dim=1)
    rows = answer[single]
    y = -torch.sign(rows[:, -1])
    x = -torch.sign(rows[:, :-1]) * y.unsqueeze(1)
    return x, y


def solve_parity_gf2(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A subset S with prod_{i in S} x_i = y on every example, by Gaussian elimination over GF(2).

    x (K, n) of ±1, y (K,) of ±1. Returns (a (n,) 0/1 indicator of S, the rank of the
    system). With rank n the solution is unique; otherwise free variables are set to 0.
    Row operations are vectorised over the examples; the loop runs over the n columns.
    """
    n = x.shape[1]
    system = torch.cat([(x < 0), (y < 0).unsqueeze(1)], dim=1).to(torch.uint8)  # [A | b] over GF(2)
    pivots, row = [], 0
    for column in range(n):
        if row == len(system):
            break
        candidates = torch.nonzero(system[row:, column]).flatten()
        if len(candidates) == 0:
            continue
        pivot = row + int(candidates[0])
        system[[row, pivot]] = system[[pivot, row]]
        others = system[:, column].bool()
        others[row] = False
        system[others] ^= system[row]
        pivots.append(column)
        row += 1
    solution = torch.zeros(n, dtype=torch.uint8)
    for i, column in enumerate(pivots):  # reduced row-echelon form: pivot rows read off directly
        solution[column] = system[i, n]
    return solution, len(pivots)
