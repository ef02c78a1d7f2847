"""Device selection shared by every entry point: ``auto`` takes CUDA when present."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from usdehaze.errors import UsageError

T = TypeVar("T")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch.device; asking for CUDA without one is an error."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {spec}: CUDA is not available on this machine (use cpu or auto)"
            )
        return torch.device(spec)
    if spec == "cpu":
        return torch.device("cpu")
    raise UsageError(f"--device {spec}: expected auto, cpu or cuda")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs natively on ``device``: CUDA, or a CPU with AMX bf16 tiles (Intel
    Sapphire Rapids and later), where the student's convolutions run 2-5x faster in bf16 than in
    fp32. Elsewhere a CPU emulates bf16, about 100x slower than fp32 (docs/results.md)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.cpu.get_capabilities().get("amx_bf16"))
    except (AttributeError, RuntimeError):  # an older torch: no capability query
        return False


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity; the machine's count elsewhere)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_threads(spec: int = 0) -> int:
    """Threads for torch's CPU work: ``spec`` > 0 as given; 0 (auto): torch's own count where
    OMP_NUM_THREADS or MKL_NUM_THREADS says it, else the cores this process may use less the
    machine's load over the last minute, at least 1 and at most torch's default. Threads beyond
    the free cores wait on each other: on a loaded 2-core machine the demo took 150-220 s with
    torch's default of 2 threads and 74 s with 1 (issue 32)."""
    import os

    if spec > 0:
        return int(spec)
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return torch.get_num_threads()
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on Unix
        load = 0.0
    return max(1, min(torch.get_num_threads(), cores, int(cores - load + 0.5)))


def set_cpu_threads(spec: int = 0) -> int:
    """Set torch's CPU threads to :func:`cpu_threads` of ``spec``; returns the count."""
    n = cpu_threads(spec)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


def each_alone(
    n: int,
    fn: Callable[[int], T],
    workers: int = 1,
    on_error: Callable[[], None] | None = None,
) -> list[T]:
    """``[fn(0), ..., fn(n - 1)]`` with torch on one CPU thread, ``workers`` items at once (their
    kernels release the GIL): torch's threads then parallelise over items, not inside an
    operation, so an item's result does not depend on the thread count (torch's CPU GroupNorm
    and SiLU round differently with 1 and 3 threads) nor on what else runs. ``on_error`` is
    called when an item fails or Ctrl-C arrives while waiting (to stop the others early); the
    first error raised is an item's own, not one ``on_error`` caused (``Stopped``)."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        if workers <= 1 or n <= 1:
            try:
                return [fn(i) for i in range(n)]
            except BaseException:
                if on_error is not None:
                    on_error()
                raise
        with ThreadPoolExecutor(min(workers, n), thread_name_prefix="usdehaze-item") as ex:
            futures = [ex.submit(fn, i) for i in range(n)]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:  # an item failed, or Ctrl-C here: the others may stop early
                failed = not all(f.done() and f.exception() is None for f in futures)
                if failed and on_error is not None:
                    on_error()
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])
        return [f.result() for f in futures]
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


class Stopped(Exception):
    """Raised by an item that stopped because another one failed (see :func:`each_alone`)."""
