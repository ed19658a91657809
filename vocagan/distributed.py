"""Multi-process training plumbing (torchrun: WORLD_SIZE > 1): process group, ranks, the DDP wrapper
and the few collective operations the training loop needs. With one process every function here is
a no-op or the identity, so `train.py` reads the same either way. gloo on CPU, NCCL on GPUs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from vocagan.utils import resolve_device


@dataclass
class Distributed:
    world: int
    rank: int
    device: torch.device

    @property
    def on(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Distributed:
    """Rank and device; under torchrun (WORLD_SIZE > 1) the process group too."""
    world, rank, local_rank = (
        int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0))
    )
    device = resolve_device(device_name)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(world, rank, device)


def finish_distributed(env: Distributed) -> None:
    if env.on:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def main_first(env: Distributed):
    """Rank 0 runs the block first (e.g. prepares and caches the data); the others run it after."""
    if not env.on:
        yield
        return
    import torch.distributed as dist

    if not env.main:
        dist.barrier()
    yield
    if env.main:
        dist.barrier()


class _Runner(nn.Module):
    """Routes a step's forward to the model's `step_loss`, so DDP's gradient hooks fire for every step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, step: str):
        return self.model.step_loss(batch, step)


def wrap_for_ddp(model, env: Distributed, several_steps: bool) -> nn.Module:
    runner: nn.Module = _Runner(model)
    if env.on:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # with several steps each one leaves the others' parameters without gradients
        runner = DDP(
            runner,
            device_ids=[env.device.index] if env.device.type == "cuda" else None,
            find_unused_parameters=several_steps,
        )
    return runner


def broadcast_from_main(env: Distributed, stop: bool, count: int) -> tuple[bool, int]:
    """Rank 0's (stop, epochs without improvement), so that every rank stops together."""
    if not env.on:
        return stop, count
    import torch.distributed as dist

    flag = torch.tensor([float(stop), float(count)], device=env.device)
    dist.broadcast(flag, 0)
    return bool(flag[0]), int(flag[1])


def reduce_means(sums: dict, n: int, env: Distributed) -> dict:
    """Per-epoch means of the logged parts, averaged over all ranks' batches."""
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys] + [float(n)], dtype=torch.float64)
    if env.on:
        import torch.distributed as dist

        values = values.to(env.device)
        dist.all_reduce(values)  # sum over ranks
        values = values.cpu()
    return {k: float(v) / max(1.0, float(values[-1])) for k, v in zip(keys, values[:-1], strict=True)}
