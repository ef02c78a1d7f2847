"""torchrun helpers shared by training and batch inference: rank, world, barriers and sums.

Outside torchrun (no WORLD_SIZE in the environment) everything is one process and the helpers
are no-ops, so the same code runs on a laptop and on many GPUs.
"""

from __future__ import annotations

import atexit
import os

import torch


def world() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed (NCCL on CUDA, else gloo) under torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        atexit.register(_close)  # a failed run still tears the group down before exit
    if size > 1:
        return torch.distributed.get_rank(), size
    return 0, 1


def finish() -> None:
    """End of a run's collectives: wait for every process, then close the process group.

    Leaving it open to interpreter exit let gloo's threads die mid-teardown (``terminate called
    without an active exception``, SIGABRT) in about one run in ten."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _close() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def local_device(dev: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return dev


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def sum_all(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all processes (the values themselves when alone)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return t.tolist()


def max_all(value: float) -> float:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t[0])
