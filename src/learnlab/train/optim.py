"""Optimisers and learning-rate schedules. A schedule is a pure function of the step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from learnlab.config import Interval, param

__all__ = ["TrainConfig", "make_optimizer", "make_flat_optimizer", "FlatAdamW", "lr_schedule", "set_learning_rate",
           "clip_grad_norm_per_replica_"]


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings, shared by experiments (extend it for task losses)."""

    optimizer: Literal["sgd", "adam", "adamw"] = param("sgd")
    lr: float = param(0.1, Interval(0.0, None, closed="neither"))
    momentum: float = param(0.0, Interval(0.0, 1.0, closed="left"))
    weight_decay: float = param(0.0, Interval(0.0, None))
    weight_decay_style: Literal["pytorch", "multiplicative"] = param(
        "pytorch", help="multiplicative: theta <- (1 - lambda) theta - lr grad, as Barak et al.; pytorch: the optimiser's")
    beta1: float = param(0.9, Interval(0.0, 1.0, closed="left"), help="Adam's first beta")
    beta2: float = param(0.999, Interval(0.0, 1.0, closed="left"), help="Adam's second beta")
    schedule: Literal["constant", "cosine", "linear"] = param("constant")
    warmup_steps: int = param(0, Interval(0, "max_steps"))
    batch_size: int = param(32, Interval(1, None))
    max_steps: int = param(100_000, Interval(1, None))
    grad_clip: float | None = param(None, Interval(0.0, None, closed="neither"),
                                    help="max gradient norm, per replica; None: no clipping")
    log_every: int = param(10, Interval(1, None))
    eval_every: int = param(10, Interval(1, None))
    checkpoint_every: int | None = param(None, Interval(1, None), help="checkpoint every N steps; None: by time only")
    checkpoint_seconds: float | None = param(
        60.0, Interval(0.0, None, closed="neither"),
        help="also checkpoint when this many seconds passed since the last one (runs over a minute resume); "
             "None: by steps only")
    precision: Literal["fp32", "bf16"] = param("fp32", help="bf16: autocast the forward pass (a GPU switch)")
    compile: bool = param(False, help="torch.compile the model (a GPU switch; off by default)")


def make_optimizer(params: Iterable[torch.nn.Parameter] | list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with optional momentum) or Adam/AdamW; all act per coordinate, so replicas
    stacked in one tensor are optimised independently.

    ``params`` may be parameter groups (dicts); a group's ``lr_scale`` multiplies the
    scheduled learning rate for it (``set_learning_rate``, every step; any ``lr`` a group
    brings is overwritten there). The multi-tensor
    (``foreach``) implementations everywhere: the same numbers, bit for bit, as the
    per-parameter loop PyTorch picks on a CPU, in a few calls instead of ~8 per parameter.
    """
    params = list(params)
    # The multiplicative shrink is applied by ``fit`` before each step, not by the optimiser.
    decay = cfg.weight_decay if cfg.weight_decay_style == "pytorch" else 0.0
    if cfg.weight_decay_style == "multiplicative":
        params = [{**group, "weight_decay": 0.0} if isinstance(group, dict) else group for group in params]
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=decay, foreach=True)
    elif cfg.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=decay, foreach=True)
    else:
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=decay,
                                      foreach=True)
    for group in optimizer.param_groups:
        group.setdefault("lr_scale", 1.0)
    return optimizer


def make_flat_optimizer(params: Iterable[torch.nn.Parameter] | list[dict], cfg: TrainConfig):
    """``FlatAdamW`` where ``cfg`` asks for AdamW with PyTorch's decay (the same numbers as
    ``make_optimizer``'s, bit for bit, in a dozen ops a step), else ``make_optimizer``. For models
    whose every parameter gets a gradient at every step (``FlatAdamW`` refuses a step otherwise)."""
    params = list(params)
    if cfg.optimizer == "adamw" and cfg.weight_decay_style == "pytorch":
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        return FlatAdamW(groups, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    return make_optimizer(params, cfg)


def lr_schedule(cfg: TrainConfig) -> Callable[[int], float]:
    """The learning rate at each step: linear warm-up, then constant, cosine or linear decay to 0."""

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return cfg.lr
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        if cfg.schedule == "cosine":
            return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return cfg.lr * max(0.0, 1.0 - progress)

    return lr_at


@torch.no_grad()
def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float,
                      replica_lr_scale: torch.Tensor | None = None) -> None:
    """The one place the learning rate is set, just before each step: every group's rate is
    the scheduled ``lr`` times the group's ``lr_scale``; a per-replica scale (S,) multiplies
    each replica's (already clipped) gradient, which for SGD is that replica's rate times the
    scale (the step is linear in the gradient; ``ReplicaControl`` says when that holds)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
        if replica_lr_scale is not None:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(replica_lr_scale.view(-1, *([1] * (p.grad.dim() - 1))))


@torch.no_grad()
def clip_grad_norm_per_replica_(params: Iterable[torch.nn.Parameter], max_norm: float, n_replicas: int) -> torch.Tensor:
    """Clip each replica's gradient to norm ``max_norm`` separately.

    Every parameter has the replica index as its leading dimension (S, ...). Returns the
    pre-clipping norms, shape (S,).
    """
    grads = [p.grad for p in params if p.grad is not None]
    squared = torch.stack([g.reshape(n_replicas, -1).square().sum(dim=1) for g in grads]).sum(dim=0)  # (S,)
    norms = squared.sqrt()
    scale = torch.clamp(max_norm / (norms + 1e-6), max=1.0)  # (S,)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


class FlatAdamW:
    """PyTorch's AdamW (decoupled weight decay, bias correction, no amsgrad) over parameters moved
    into one flat buffer, each group's a contiguous slice: a dozen tensor ops a step, whatever the
    number of parameters, instead of ``torch.optim.AdamW``'s per-tensor bookkeeping (~0.9 ms a
    step for this model's 14 tensors on one CPU thread against ~0.15 ms here). The arithmetic is
    ``_multi_tensor_adamw``'s, element by element (same ops, same order, Python-float bias
    corrections). It is not a ``torch.optim.Optimizer``: the first one of those a process builds
    imports ``torch._dynamo`` (4 s here), a seventh of the paper preset's target. What ``fit``
    uses: ``param_groups`` (``lr``, ``lr_scale``), ``zero_grad``, ``step``, ``state_dict``,
    ``load_state_dict``. Every parameter must have a gradient at each step."""

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float], weight_decay: float,
                 eps: float = 1e-8):
        self.param_groups = [{"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "lr_scale": 1.0,
                              **group, "params": list(group["params"])} for group in groups]
        self.params = [p for group in self.param_groups for p in group["params"]]
        first = self.params[0]
        self._flat = torch.empty(sum(p.numel() for p in self.params), dtype=first.dtype, device=first.device)
        self._slices, offset = [], 0
        with torch.no_grad():
            for group in self.param_groups:
                start = offset
                for p in group["params"]:
                    view = self._flat[offset : offset + p.numel()].view_as(p)
                    view.copy_(p)
                    p.data = view  # the parameter now lives in the flat buffer
                    offset += p.numel()
                self._slices.append((start, offset))
        self._grad = torch.zeros_like(self._flat)
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self._flat), torch.zeros_like(self._flat)
        self.steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("FlatAdamW needs a gradient for every parameter")
        torch.cat([g.reshape(-1) for g in grads], out=self._grad)
        self.steps += 1
        beta1, beta2 = self.param_groups[0]["betas"]
        eps = self.param_groups[0]["eps"]
        if any(group["betas"] != (beta1, beta2) or group["eps"] != eps for group in self.param_groups):
            raise ValueError("FlatAdamW takes one (betas, eps) for all groups")
        for group, (start, stop) in zip(self.param_groups, self._slices):
            if group["weight_decay"] != 0:
                self._flat[start:stop].mul_(1 - group["lr"] * group["weight_decay"])
        self.exp_avg.lerp_(self._grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self._grad, self._grad, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** float(self.steps)
        bias_correction2_sqrt = (1 - beta2 ** float(self.steps)) ** 0.5
        denom = self.exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(eps)
        for group, (start, stop) in zip(self.param_groups, self._slices):
            self._flat[start:stop].addcdiv_(self.exp_avg[start:stop], denom[start:stop],
                                            value=(group["lr"] / bias_correction1) * -1)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(),
                "param_groups": [{k: v for k, v in group.items() if k != "params"} for group in self.param_groups]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        for group, saved in zip(self.param_groups, state["param_groups"]):
            group.update(saved)
