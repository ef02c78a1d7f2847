"""torchrun helpers shared by training and batch inference: rank, world, barriers and sums.

Outside torchrun (no WORLD_SIZE in the environment) everything is one process and the helpers
are no-ops, so the same code runs on a laptop and on many GPUs.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
from collections.abc import Iterator
from datetime import timedelta

import torch

from usdehaze.errors import UsageError, first_line

TIMEOUT_ENV = "USDEHAZE_RENDEZVOUS_TIMEOUT"  # seconds the processes wait to find each other
DEFAULT_TIMEOUT = 60.0


def _env_int(name: str, default: str | None, lo: int, hi: int | None = None) -> int:
    """Environment variable ``name`` (torchrun sets it) as an int in lo..hi, else one line."""
    raw = os.environ.get(name, default)
    expected = f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"
    ok = raw is not None and raw.isascii() and raw.strip().isdigit()
    if not ok or int(raw) < lo or (hi is not None and int(raw) > hi):
        raise UsageError(
            f"environment variable {name}={raw!r}: expected {expected} (torchrun sets it; "
            "unset WORLD_SIZE to run as one process)"
        )
    return int(raw)


def world_size() -> int:
    """WORLD_SIZE from the environment (1 when unset)."""
    return _env_int("WORLD_SIZE", "1", 1)


def rendezvous_timeout() -> float:
    """Seconds to wait for the other processes (``USDEHAZE_RENDEZVOUS_TIMEOUT``, default 60)."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(
            f"environment variable {TIMEOUT_ENV}={raw!r}: expected a positive number of seconds"
        )
    return value


def world() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed (NCCL on CUDA, else gloo) under torchrun.

    The processes must find each other within :func:`rendezvous_timeout` seconds (a WORLD_SIZE
    left in the environment with no other process behind it would otherwise wait forever):
    past it, one line saying what was awaited. Collectives afterwards keep torch's timeout."""
    size = world_size()
    if size > 1 and not torch.distributed.is_initialized():
        rank = _env_int("RANK", None, 0, size - 1)
        _init(rank, size)
        atexit.register(_close)  # a failed run still tears the group down before exit
    if size > 1:
        return torch.distributed.get_rank(), size
    return 0, 1


def _init(rank: int, size: int) -> None:
    """Rendezvous at MASTER_ADDR:MASTER_PORT within the timeout, then the process group."""
    timeout = rendezvous_timeout()
    addr = os.environ.get("MASTER_ADDR", "")
    if not addr:
        raise UsageError(
            f"WORLD_SIZE={size} RANK={rank}: environment variable MASTER_ADDR is not set "
            "(expected the rendezvous address torchrun sets; unset WORLD_SIZE to run as one process)"
        )
    port = _env_int("MASTER_PORT", None, 0, 65535)
    try:
        with _quiet_stderr():  # c10d prints C++ stack traces on each failed connection
            store, rank, size = next(
                torch.distributed.rendezvous(
                    "env://", rank, size, timeout=timedelta(seconds=timeout)
                )
            )
    except Exception as exc:  # noqa: BLE001 - a store timeout, a refused or taken port
        raise UsageError(
            f"WORLD_SIZE={size} RANK={rank}: waited {timeout:g} s for the other {size - 1} "
            f"process(es) at MASTER_ADDR:MASTER_PORT {addr}:{port} ({first_line(exc, 120)}); "
            f"start them with torchrun, unset WORLD_SIZE to run as one process, or set "
            f"{TIMEOUT_ENV} (seconds)"
        ) from None
    store.set_timeout(torch.distributed.default_pg_timeout)  # collectives: torch's own wait
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend, store=store, rank=rank, world_size=size)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hold what C++ writes to file descriptor 2; replayed on success, dropped on failure
    (the one-line error says it)."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        text = held.read()
    if text:
        sys.stderr.write(text.decode(errors="replace"))


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
    if world_size() > 1 and dev.type == "cuda":
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
