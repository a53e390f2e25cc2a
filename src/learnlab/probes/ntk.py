"""Tangent kernels: the empirical NTK, kernel predictors, the linearised model and edges.

Malach, Kamath, Abbe, Srebro, "Quantifying the Benefit of Using Differentiable Learning
over Tangent Kernels" (ICML 2021; arXiv 2103.01210). The tangent kernel of f at w0 is
K(x, x') = <grad_w f(w0, x), grad_w f(w0, x')>. A kernel method with K (ridge, SVM, or
the linearised model trained by gradient descent) is what "lazy" training can learn;
the paper's positive result says gradient descent learns whatever has a noticeable
first-step tangent-kernel edge, and its negative one that a kernel can need many more
samples than the network (sparse parities).

Models are stacked over S replicas (``model(x)`` maps (S, B, n) to (S, B)); every kernel
here is that of one replica, ``replica``. Kernels are computed in float64 where they are
solved, in chunks so that N = 8,000 fits in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from learnlab.models.two_layer import StackedTwoLayer, is_relu_two_layer

__all__ = ["empirical_ntk", "tangent_features", "kernel_ridge", "select_ridge", "kernel_svm_accuracy",
           "LinearisedModel", "classifier_edge", "normalised_edge", "first_step_edge"]

NTKMethod = Literal["auto", "closed_form", "jacobian", "vjp_jvp"]


def _replica_function(model: nn.Module, replica: int):
    """(params of one replica, x (B, n)) -> f (B,), and that replica's parameters.

    A stacked model is called as a stack of one: its parameters, and buffers with a
    leading replica dimension, are sliced to ``replica:replica + 1``.
    """
    n_replicas = getattr(model, "n_replicas", None)
    if n_replicas is None:
        params = {name: p.detach() for name, p in model.named_parameters()}
        buffers = dict(model.named_buffers())
        return (lambda p, x: functional_call(model, (p, buffers), (x,))), params
    params = {name: p.detach()[replica] for name, p in model.named_parameters()}
    buffers = {name: b[replica:replica + 1] if b.dim() and len(b) == n_replicas else b
               for name, b in model.named_buffers()}

    def f(p, x):
        one = {name: value.unsqueeze(0) for name, value in p.items()}
        return functional_call(model, (one, buffers), (x.unsqueeze(0),))[0]

    return f, params


def tangent_features(model: nn.Module, x: torch.Tensor, *, replica: int = 0, chunk: int = 512) -> torch.Tensor:
    """grad_w f(w0, x) for every row of x (N, n), flattened: (N, P), by ``torch.func.jacrev``."""
    f, params = _replica_function(model, replica)
    rows = []
    for part in x.split(chunk):
        jac = vmap(jacrev(lambda p, xi: f(p, xi.unsqueeze(0))[0]), in_dims=(None, 0))(params, part)
        rows.append(torch.cat([j.reshape(len(part), -1) for j in jac.values()], dim=1))
    return torch.cat(rows)


def empirical_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, *, replica: int = 0,
                  method: NTKMethod = "auto", chunk: int = 1024, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The empirical tangent kernel K[i, j] = <grad f(x1_i), grad f(x2_j)>, shape (N1, N2).

    ``closed_form`` (the default for a ReLU
    ``models.two_layer.StackedTwoLayer`` such as ``TwoLayerMLP``): with h = W x + b, f = u . relu(h),
        K(x, x') = sum_i relu(h_i) relu(h'_i) + sum_i u_i^2 1[h_i > 0] 1[h'_i > 0] (x . x' + 1)
    (the "+ 1" is the bias' part; + 1 more for an output bias). ``jacobian`` contracts
    ``jacrev`` Jacobians; ``vjp_jvp`` never forms them (one vjp then one jvp per row), which
    is the cheaper method when there are many parameters and few inputs.
    """
    x2 = x1 if x2 is None else x2
    if method == "auto":
        method = "closed_form" if is_relu_two_layer(model) else "jacobian"
    if method == "closed_form":
        return _two_layer_ntk(model, x1, x2, replica, chunk, dtype)
    if method == "jacobian":
        right = tangent_features(model, x2, replica=replica).to(dtype)
        return torch.cat([tangent_features(model, part, replica=replica).to(dtype) @ right.T
                          for part in x1.split(chunk)])
    f, params = _replica_function(model, replica)
    blocks = []
    for part in x1.split(chunk):
        _, pullback = vjp(lambda p: f(p, part), params)

        def row(cotangent):
            (direction,) = pullback(cotangent)
            return jvp(lambda p: f(p, x2), (params,), (direction,))[1]

        blocks.append(vmap(row)(torch.eye(len(part), dtype=x1.dtype, device=x1.device)).to(dtype))
    return torch.cat(blocks)


def _two_layer_ntk(model: StackedTwoLayer, x1, x2, replica, chunk, dtype):
    mask = model.neuron_mask[replica].to(dtype)
    weight, readout = model.weight[replica].detach().to(dtype), model.readout[replica].detach().to(dtype)
    bias = model.bias[replica].detach().to(dtype) if model.bias is not None else None

    def parts(x):
        pre = x.to(dtype) @ weight.T + (bias if bias is not None else 0.0)  # (N, r)
        return pre.clamp_min(0) * mask, (pre > 0).to(dtype) * readout.abs() * mask

    hidden2, gate2 = parts(x2)
    extra = (1.0 if bias is not None else 0.0)
    blocks = []
    for part in x1.split(chunk):
        hidden1, gate1 = parts(part)
        kernel = hidden1 @ hidden2.T + (gate1 @ gate2.T) * (part.to(dtype) @ x2.to(dtype).T + extra)
        if model.output_bias is not None:
            kernel = kernel + 1.0
        blocks.append(kernel)
    return torch.cat(blocks)


# ----------------------------------------------------------------------------- kernel predictors


def kernel_ridge(train_kernel: torch.Tensor, y: torch.Tensor, eval_kernel: torch.Tensor, ridge: float) -> torch.Tensor:
    """Kernel ridge regression in float64: predictions K_eval (K + lambda' I)^-1 y, lambda' = ridge tr(K)/N.

    train_kernel (N, N), y (N,), eval_kernel (M, N); returns (M,). Scaling the ridge by the
    kernel's mean eigenvalue makes one grid of ``ridge`` serve kernels of any scale.
    """
    k = train_kernel.to(torch.float64)
    n = len(k)
    shift = ridge * torch.diagonal(k).sum() / n
    factor = torch.linalg.cholesky(k + shift * torch.eye(n, dtype=k.dtype, device=k.device))
    alpha = torch.cholesky_solve(y.to(torch.float64).unsqueeze(1), factor).squeeze(1)
    return eval_kernel.to(torch.float64) @ alpha


def select_ridge(train_kernel: torch.Tensor, y: torch.Tensor, ridges: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                 validation: float = 0.2) -> tuple[float, dict[float, float]]:
    """The ridge with the best sign accuracy on the last ``validation`` fraction of the
    training set (fit on the rest). Returns (best ridge, {ridge: validation accuracy})."""
    n_fit = int(round(len(y) * (1 - validation)))
    if n_fit < 1 or n_fit >= len(y):
        return ridges[0], {}
    fit_k, val_k = train_kernel[:n_fit, :n_fit], train_kernel[n_fit:, :n_fit]
    scores = {}
    for ridge in ridges:
        predictions = kernel_ridge(fit_k, y[:n_fit], val_k, ridge)
        scores[ridge] = float((torch.sign(predictions) == y[n_fit:].to(predictions.dtype)).double().mean())
    return max(scores, key=scores.get), scores


def kernel_svm_accuracy(train_kernel: torch.Tensor, y: torch.Tensor, test_kernel: torch.Tensor, y_test: torch.Tensor,
                        c: float = 1.0) -> float:
    """A cross-check: scikit-learn's SVC on the precomputed kernel, test accuracy."""
    from sklearn.svm import SVC

    svm = SVC(C=c, kernel="precomputed").fit(train_kernel.double().cpu().numpy(), y.cpu().numpy())
    return float((svm.predict(test_kernel.double().cpu().numpy()) == y_test.cpu().numpy()).mean())


class LinearisedModel(nn.Module):
    """The first-order Taylor model f(w0, x) + <w - w0, grad_w f(w0, x)> of a stacked model.

    Its parameters are the displacements w - w0 (zero at the start); ``forward`` is one
    ``torch.func.jvp`` of the frozen base model (``method="jvp"``), or, for a ReLU
    ``StackedTwoLayer``, the same directional derivative in closed form (``"closed_form"``,
    chosen by ``"auto"``: a few batched matmuls in place of a functional jvp, whose Python
    overhead dominates at these sizes). Gradient descent on it is exactly "lazy training"
    in the tangent kernel of w0. Stacked like the base: (S, B, n) -> (S, B).
    """

    def __init__(self, base: nn.Module, method: Literal["auto", "closed_form", "jvp"] = "auto"):
        super().__init__()
        self._base = [base]  # not a submodule: its parameters stay fixed at w0
        self._names = [name for name, _ in base.named_parameters()]
        self.n_replicas = getattr(base, "n_replicas", None)
        self.displacement = nn.ParameterList([nn.Parameter(torch.zeros_like(p)) for _, p in base.named_parameters()])
        if method == "closed_form" and not is_relu_two_layer(base):
            raise ValueError("the closed-form linearisation needs a ReLU two-layer model (models.two_layer)")
        self.closed_form = method == "closed_form" or (method == "auto" and is_relu_two_layer(base))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self._base[0]
        tangent = dict(zip(self._names, self.displacement))
        if self.closed_form:
            return _two_layer_taylor(base, x, tangent)
        w0 = {name: p.detach() for name, p in base.named_parameters()}
        buffers = dict(base.named_buffers())
        out, change = jvp(lambda p: functional_call(base, (p, buffers), (x,)), (w0,), (tangent,))
        return out + change


def _two_layer_taylor(model: StackedTwoLayer, x: torch.Tensor, tangent: dict[str, torch.Tensor]) -> torch.Tensor:
    """f(w0, x) + <grad_w f(w0, x), tangent> of stacked ReLU two-layer networks, x (S, B, n) -> (S, B).

    With h = W x + b and a = 1[h > 0]: the directional derivative is
    sum_i du_i relu(h_i) + sum_i u_i a_i (dW_i . x + db_i) (+ dc); w0 is held fixed (no graph).
    """
    with torch.no_grad():
        pre = model.hidden(x)
        mask = model.neuron_mask.unsqueeze(1)
        hidden = pre.clamp_min(0) * mask
        gate = (pre > 0).to(pre.dtype) * mask * model.readout.unsqueeze(1)  # u_i a_i, (S, B, r)
        out = torch.bmm(hidden, model.readout.unsqueeze(2)).squeeze(2)
        if model.output_bias is not None:
            out = out + model.output_bias.unsqueeze(1)
    moved = torch.bmm(x, tangent["weight"].transpose(1, 2))
    if "bias" in tangent:
        moved = moved + tangent["bias"].unsqueeze(1)
    change = torch.bmm(hidden, tangent["readout"].unsqueeze(2)).squeeze(2) + (gate * moved).sum(-1)
    if "output_bias" in tangent:
        change = change + tangent["output_bias"].unsqueeze(1)
    return out + change


# ----------------------------------------------------------------------------- edges


def classifier_edge(predictions: torch.Tensor, y: torch.Tensor) -> float:
    """(2 acc - 1) minus the best constant's (2 max(p, 1 - p) - 1): the edge over guessing the majority label."""
    accuracy = float((torch.sign(predictions) == y).double().mean())
    positive = float((y > 0).double().mean())
    return (2 * accuracy - 1) - (2 * max(positive, 1 - positive) - 1)


def normalised_edge(h: torch.Tensor, y: torch.Tensor) -> float:
    """E[y h] / sqrt(E[h^2]): the correlation of a predictor with the labels, at its own scale."""
    h, y = h.double(), y.double()
    return float((y * h).mean() / h.square().mean().sqrt().clamp_min(1e-300))


def first_step_edge(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                    *, replica: int = 0, null_draws: int = 10, generator: torch.Generator | None = None,
                    chunk: int = 8192, method: Literal["auto", "closed_form", "jvp"] = "auto") -> tuple[float, float]:
    """The normalised test edge of the first-step tangent-kernel predictor and its noise floor.

    h0(x) = <g0, grad f(w0, x)> with g0 = E_hat[y grad f(w0, x)] over the N training
    examples (= mean_i y_i K(x_i, x): the first gradient step of the correlation loss). g0
    is one backward pass and h0 one forward-mode derivative (``jvp``) along g0, so N can be
    10^5 without forming a kernel matrix; for a ReLU ``StackedTwoLayer`` both are closed
    forms (``"auto"`` picks them), computed for the true labels and every permutation at
    once. The noise floor is the root mean square of the same edge with the training labels
    permuted (``null_draws`` permutations: no x-y relation, same label marginal). Returns
    (edge, noise floor).

    Labels are centred (y - mean y) on both sides: under a biased input distribution the
    label mean alone gives h0 an edge that says nothing about the target's structure.
    """
    y, y_test = y - y.mean(), y_test - y_test.mean()
    labels = torch.stack([y] + [y[torch.randperm(len(y), generator=generator, device=y.device)]
                                for _ in range(null_draws)])  # (1 + null_draws, N)
    if method == "closed_form" and not is_relu_two_layer(model):
        raise ValueError("the closed-form edge needs a ReLU two-layer model (models.two_layer)")
    if method == "closed_form" or (method == "auto" and is_relu_two_layer(model)):
        h0 = _two_layer_first_step(model, x, labels, x_test, replica, chunk)
    else:
        h0 = _generic_first_step(model, x, labels, x_test, replica, chunk)
    edges = [normalised_edge(h, y_test) for h in h0]
    return edges[0], float(torch.tensor(edges[1:]).square().mean().sqrt())


def _generic_first_step(model, x, labels, x_test, replica, chunk) -> torch.Tensor:
    """h0 on x_test for each row of ``labels`` (L, N): one backward per chunk, one jvp along each g0."""
    f, params = _replica_function(model, replica)
    out = []
    for lab_row in labels:
        g0 = {name: torch.zeros_like(p) for name, p in params.items()}
        for part, lab in zip(x.split(chunk), lab_row.split(chunk)):
            p = {name: value.clone().requires_grad_(True) for name, value in params.items()}
            grads = torch.autograd.grad((lab * f(p, part)).sum() / len(x), list(p.values()))
            for name, g in zip(p, grads):
                g0[name] += g
        out.append(torch.cat([jvp(lambda p: f(p, part), (params,), (g0,))[1] for part in x_test.split(chunk)]))
    return torch.stack(out)


def _two_layer_first_step(model: StackedTwoLayer, x, labels, x_test, replica, chunk) -> torch.Tensor:
    """``_generic_first_step`` for a ReLU two-layer replica in closed form (h = W x + b, a = 1[h > 0]):
    g0 = (Y relu(H), Y (u a) x, Y (u a), sum Y) / N and h0(x) = g0_u . relu(h) + sum_i u_i a_i (g0_W_i . x + g0_b_i) + g0_c."""
    weight = model.weight[replica].detach()
    bias = model.bias[replica].detach() if model.bias is not None else None
    readout, mask = model.readout[replica].detach(), model.neuron_mask[replica]

    def parts(inputs):
        pre = inputs @ weight.T + (bias if bias is not None else 0.0)
        return pre.clamp_min(0) * mask, (pre > 0).to(pre.dtype) * mask * readout  # relu(h), u a: (c, r)

    n_labels, (r, n) = len(labels), weight.shape
    g_u, g_b, g_w = labels.new_zeros(n_labels, r), labels.new_zeros(n_labels, r), labels.new_zeros(n_labels, r, n)
    for part, lab in zip(x.split(chunk), labels.split(chunk, dim=1)):
        hidden, gate = parts(part)
        g_u += lab @ hidden
        g_b += lab @ gate
        g_w += torch.matmul((lab.unsqueeze(2) * gate).transpose(1, 2), part)  # (L, r, c) @ (c, n)
    g_u, g_b, g_w = g_u / len(x), g_b / len(x), g_w / len(x)
    g_c = labels.sum(1) / len(x)
    h0 = []
    for part in x_test.split(chunk):
        hidden, gate = parts(part)
        moved = torch.matmul(part, g_w.transpose(1, 2)) + (g_b.unsqueeze(1) if bias is not None else 0.0)  # (L, c, r)
        h = hidden @ g_u.T + (gate * moved).sum(-1).T  # (c, L)
        if model.output_bias is not None:
            h = h + g_c
        h0.append(h.T)
    return torch.cat(h0, dim=1)
