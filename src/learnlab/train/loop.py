"""The one training loop.

nanoGPT's order, every step: schedule -> eval / checkpoint -> forward / backward ->
clip -> step -> log -> stop. Everything that carries across steps (model, optimiser,
data generators, evaluator state, the running loss window, the global RNG) goes into
the checkpoint, so a run resumed from step t ends exactly where an uninterrupted run
does.

The model may be an ensemble: a loss of shape (S,) is one loss per replica; the loop
backpropagates their sum, so each replica receives exactly its own gradient, and logs
the per-replica values. What differs between replicas is an explicit argument,
``replicas`` (``train.replicas.ReplicaControl``): per-replica learning-rate scales, and
early stopping (an evaluator freezes replicas; from then on their parameters are left
exactly as they were, whatever the optimiser, momentum or weight decay); the run ends
when the evaluator says every replica is done. The learning rate is set in one place,
``optim.set_learning_rate``, just before each step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import torch

from learnlab.errors import DivergenceError
from learnlab.train import distributed as ddp
from learnlab.train.data import BatchStream
from learnlab.train.ensemble import fused_gradient
from learnlab.train.optim import (TrainConfig, clip_grad_norm_per_replica_, lr_schedule, make_optimizer,
                                  set_learning_rate)
from learnlab.train.replicas import ReplicaControl

__all__ = ["Evaluator", "Measure", "ReplicaControl", "RunLog", "fit"]


class RunLog(Protocol):
    """What the loop needs from the run it trains in (``learnlab.runner.Run`` is one):
    metrics, a progress bar, and the checkpoint pair. Defined here so ``train`` imports
    nothing above it."""

    def log(self, step: int, **metrics: Any) -> None: ...
    def progress(self, total: int, *, initial: int = 0, desc: str | None = None) -> Any: ...
    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None: ...
    def load_checkpoint(self) -> dict[str, Any] | None: ...


class Evaluator(Protocol):
    """Measures the model every ``eval_every`` steps and decides when to stop."""

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]: ...
    def done(self, step: int) -> bool: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Measure:
    """An evaluator that measures: ``measure(model) -> metrics`` at every evaluation.

    It keeps no state of its own and never stops a run, unless ``until=(name, target)``:
    then the run ends at the first evaluation where every replica's ``metrics[name]`` is at
    least ``target`` (for claims that read whether a target is reached, not how far past it
    training goes); or ``until_step``: the run ends at the first evaluation at or after that
    step (a control trained exactly as long as another model, on the same schedule).
    """

    def __init__(self, measure: Callable[[torch.nn.Module], dict[str, Any]], *,
                 until: tuple[str, float] | None = None, until_step: int | None = None):
        self.measure, self.until, self.until_step = measure, until, until_step
        self._reached = False

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        metrics = self.measure(model)
        if self.until is not None:
            name, target = self.until
            self._reached = bool((torch.as_tensor(metrics[name]) >= target).all())
        return metrics

    def done(self, step: int) -> bool:
        return self._reached or (self.until_step is not None and step >= self.until_step)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def fit(
    model: torch.nn.Module,
    batches: BatchStream,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    run: RunLog,
    *,
    evaluate: Evaluator | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    gradient: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    replicas: ReplicaControl | None = None,
) -> int:
    """Train ``model`` on ``batches`` under ``cfg``; log through ``run``; return the last step.

    Parameters
    ----------
    model : ``model(inputs) -> outputs``; for an ensemble it has ``n_replicas``
    batches : a resumable stream of ``(inputs, targets)``
    loss_fn : ``loss_fn(outputs, targets)`` -> loss, a scalar or one value per replica (S,); or
        ``(sum, count)`` (a masked loss: summed over ``count`` scored items), which the loop
        divides by the count over all data-parallel ranks
    cfg : steps, optimiser, schedule, clipping, logging, eval and checkpoint intervals
    run : the run handle (logging, progress bar, checkpoints)
    evaluate : called at step 0, every ``cfg.eval_every`` steps and at the end
    gradient : ``gradient(model, inputs, targets)`` sets every ``p.grad`` and returns the
        loss, in place of ``loss_fn(model(inputs), targets).backward()`` (e.g. a
        bounded-precision oracle, ``train.precision.GradientOracle``); its
        ``state_dict`` (if any) is checkpointed
    replicas : per-replica learning-rate scales and early stopping of an ensemble
        (``ReplicaControl``); its frozen mask is checkpointed

    Raises
    ------
    DivergenceError
        when the loss stops being finite; the message names the step range.
    """
    if replicas is not None and replicas.lr_scale is not None and (
            cfg.optimizer != "sgd" or (cfg.weight_decay > 0 and cfg.weight_decay_style == "pytorch")):
        raise ValueError("per-replica learning rates scale gradients: they need SGD without PyTorch-style weight decay")
    optimizer = optimizer or make_optimizer(model.parameters(), cfg)
    lr_at = lr_schedule(cfg)
    forward = model
    if ddp.is_distributed():  # data parallel under torchrun: each rank its shard of the global batch
        if getattr(model, "n_replicas", None) is not None or gradient is not None:
            raise ValueError("data-parallel training takes one model and its loss (not an ensemble or a gradient oracle)")
        device = next(model.parameters()).device
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        forward = torch.compile(forward)
    if gradient is None and forward is model and cfg.precision == "fp32":
        gradient = fused_gradient(model, loss_fn)  # hand-derived, where the model has one (train.ensemble)
    device_type = next(model.parameters()).device.type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    n_replicas = getattr(model, "n_replicas", None)
    step, window_sum, window_steps = 0, None, 0

    saved = run.load_checkpoint()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        batches.load_state_dict(saved["batches"])
        if evaluate is not None:
            evaluate.load_state_dict(saved["evaluator"])
        if hasattr(gradient, "load_state_dict"):
            gradient.load_state_dict(saved["gradient"])
        if replicas is not None:
            replicas.load_state_dict(saved["replicas"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        if saved.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([state.cpu() for state in saved["cuda_rng"]])
        step, window_sum, window_steps = saved["step"], saved["window_sum"], saved["window_steps"]
    resumed_at = step if saved is not None else None
    last_checkpoint = time.monotonic()

    # Only evaluations freeze replicas: read the mask there, not every step.
    frozen = _stopped(replicas)
    model.train()
    progress = run.progress(cfg.max_steps, initial=step)
    try:
        while True:
            lr = lr_at(step)

            # Evaluate (and maybe stop), then checkpoint, before the step's update. A
            # resumed run already evaluated and checkpointed at the step it resumes from.
            if step != resumed_at:
                if evaluate is not None and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                    with torch.no_grad():
                        model.eval()
                        run.log(step, **evaluate(model, step))
                        model.train()
                    frozen = _stopped(replicas)
                    if evaluate.done(step):
                        break
                if step == cfg.max_steps:
                    break
                due = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
                # By time too: a run longer than a minute can be resumed without asking for it.
                due |= cfg.checkpoint_seconds is not None and time.monotonic() - last_checkpoint >= cfg.checkpoint_seconds
                if due and step > 0:
                    last_checkpoint = time.monotonic()
                    run.save_checkpoint(step, {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "batches": batches.state_dict(),
                        "evaluator": evaluate.state_dict() if evaluate is not None else {},
                        "gradient": gradient.state_dict() if hasattr(gradient, "state_dict") else {},
                        "replicas": replicas.state_dict() if replicas is not None else {},
                        "torch_rng": torch.get_rng_state(), "window_sum": window_sum, "window_steps": window_steps,
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    })

            if frozen is not None:  # snapshot the stopped replicas' rows, to put them back after the update
                before = [p.detach()[frozen] for p in model.parameters()]  # (indexing copies)

            inputs, targets = batches.next_batch()
            if ddp.is_distributed():  # (an ensemble was refused above)
                inputs, targets = ddp.shard(inputs), ddp.shard(targets)
            optimizer.zero_grad(set_to_none=True)
            if gradient is None:
                with autocast:
                    result = loss_fn(forward(inputs), targets)
                loss, backward_loss = _reduce_loss(result)
                backward_loss.sum().backward()
            else:
                loss = gradient(model, inputs, targets)
            if cfg.grad_clip is not None:
                if n_replicas is not None:
                    clip_grad_norm_per_replica_(model.parameters(), cfg.grad_clip, n_replicas)
                else:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if cfg.weight_decay_style == "multiplicative" and cfg.weight_decay > 0:
                with torch.no_grad():  # theta <- (1 - lambda) theta - lr grad (grad taken at the old theta)
                    torch._foreach_mul_([p for p in model.parameters()], 1.0 - cfg.weight_decay)
            set_learning_rate(optimizer, lr, replicas.lr_scale if replicas is not None else None)
            optimizer.step()
            if frozen is not None:
                with torch.no_grad():
                    for p, old in zip(model.parameters(), before):
                        p.index_copy_(0, frozen, old)
            step += 1

            # The window sum stays on the device; it is read once per log interval.
            detached = loss.detach()
            window_sum = detached if window_sum is None else window_sum + detached
            window_steps += 1
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                window_sum, window_steps = _log_window(run, step, window_sum, window_steps, lr, progress)
            progress.update(1)
        if window_steps:
            _log_window(run, step, window_sum, window_steps, lr, progress)
    finally:
        progress.close()
    return step


def _stopped(replicas: ReplicaControl | None) -> torch.Tensor | None:
    """The indices of the replicas stopped so far, or None while none is."""
    mask = replicas.frozen_mask() if replicas is not None else None
    return None if mask is None else mask.nonzero().squeeze(1)


def _reduce_loss(result) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to log, the loss to backpropagate). A ``(sum, count)`` loss is divided by the
    count over all ranks; under DDP, which averages gradients over ranks, the backward loss
    is scaled by the world size so the gradient is that of the global mean."""
    world = ddp.world_size()
    if isinstance(result, tuple):
        total, count = result
        count = ddp.all_sum(torch.as_tensor(count, dtype=total.dtype, device=total.device).detach()).clamp_min(1)
        return ddp.all_sum(total.detach()) / count, total * world / count
    if world > 1:
        return ddp.all_sum(result.detach()) / world, result
    return result, result


def _log_window(run, step, window_sum, window_steps, lr, progress):
    mean = window_sum / window_steps
    if not bool(torch.isfinite(mean).all()):
        raise DivergenceError(f"the training loss stopped being finite between steps {step - window_steps} and {step}")
    run.log(step, train_loss=mean, lr=lr)
    progress.set_postfix(loss=f"{float(mean.mean()):.4f}", refresh=False)
    return None, 0
