"""torchrun / DistributedDataParallel plumbing: no home-made process management.

Under `torchrun` the environment carries RANK, LOCAL_RANK and WORLD_SIZE; we initialise
the default process group from it (NCCL on GPUs, gloo on CPU) and otherwise run as a
single process with rank 0 of 1.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """'auto' (or None) -> this rank's GPU when there is one, else the CPU; 'cpu', 'cuda'
    (this rank's GPU) and 'cuda:N' as they say. Anything else is a ValueError naming it."""
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA device is available here")
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this rank would use cuda:{device.index}, but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible")
        torch.cuda.set_device(device)
    return device


def init(device_name: str | None = None) -> Context:
    """Join the torchrun process group if there is one; idempotent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world_size, local_rank, device)


def local(device_name: str | None = None) -> Context:
    """A single-process context on this rank's device (jobs spread over ranks)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return Context(0, 1, local_rank, resolve_device(device_name, local_rank))


def all_sum(values: list, ctx: Context) -> list:
    """Element-wise sum of a list of numbers over all ranks."""
    if not ctx.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_objects(obj, ctx: Context) -> list:
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
