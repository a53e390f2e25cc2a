"""Data-parallel training under ``torchrun`` (DistributedDataParallel), in a few helpers.

``torchrun --nproc_per_node=N -m learnlab run EXPERIMENT ...`` starts N processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; ``init_from_env`` joins them (NCCL on CUDA,
gloo on CPU). Every rank draws the same global batch from the same seeded stream and
trains on its own contiguous shard of it; DDP averages the gradients, so a step equals
the single-process step on the global batch. Only rank 0 writes the store and
checkpoints; every rank reads the same checkpoint on resume.

Exactness for masked losses: a loss function may return ``(sum, count)`` (e.g. summed
token losses and the number of scored tokens). The loop divides by the count over all
ranks, so shards with different numbers of scored tokens still give the global mean.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["init_from_env", "is_distributed", "rank", "world_size", "is_main", "shard", "all_sum",
           "broadcast_object", "local_device"]


def init_from_env() -> bool:
    """Join the process group described by torchrun's environment; False when not under it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` under torchrun on GPUs, else ``device``."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (dimension 0)."""
    if not is_distributed():
        return batch
    size, parts = batch.shape[0], world_size()
    if size % parts:
        raise ValueError(f"the global batch ({size}) must divide evenly over {parts} processes")
    step = size // parts
    return batch[rank() * step:(rank() + 1) * step]


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum over ranks (the value itself when not distributed)."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
