"""Process layout under ``torchrun``: rank, world size, device, backend; DDP / FSDP wrapping.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process and no process group is
created. Under torchrun a process group is always created (even with one process, so ``--nproc_per_node 1``
exercises the same DDP/FSDP path) with NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import attrs
import torch
import torch.distributed as dist
from torch import nn

from prime_core.api import resolve_device


@attrs.define
class Layout:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    launched: bool = False  # started by torchrun
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if dist.is_initialized() else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            value = value.clone()
            dist.all_reduce(value)
        return value

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def env_layout(device_option: str = "auto") -> Layout:
    """Read torchrun's environment (nothing is initialised yet). ``device_option``: a `resolve_device` spec;
    auto and cuda pick cuda:(LOCAL_RANK mod GPUs)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_option, what="train.options.device", local_rank=local)
    return Layout(rank=rank, world_size=world, local_rank=local, device=device,
                  launched="WORLD_SIZE" in os.environ and "RANK" in os.environ)


def init_group(layout: Layout) -> Layout:
    """Create the default process group when launched by torchrun (NCCL on CUDA, gloo on CPU)."""
    if layout.device.type == "cuda":
        torch.cuda.set_device(layout.device)
    if layout.distributed and not dist.is_initialized():
        backend = "nccl" if layout.device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=layout.device if backend == "nccl" else None)
        layout.owns_group = True
    return layout


def wrap(module: nn.Module, layout: Layout, parallel: str) -> nn.Module:
    """DDP: replicate and all-reduce gradients (averaged over ranks). FSDP2: shard the parameters of every
    block of the backbone's ModuleLists, then the rest at the root."""
    if not layout.distributed:
        return module
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [layout.device.index] if layout.device.type == "cuda" else None
        return DDP(module, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for sub in module.modules():
        if isinstance(sub, nn.ModuleList):
            for block in sub:
                if any(True for _ in block.parameters()):
                    fully_shard(block)
    fully_shard(module)
    return module


@contextmanager
def maybe_no_sync(module: nn.Module, skip: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step (DDP); FSDP2 defers instead."""
    if skip and hasattr(module, "no_sync"):
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):
        module.set_requires_gradient_sync(not skip)
        yield
    else:
        yield
