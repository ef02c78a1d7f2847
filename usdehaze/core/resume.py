"""What an exact resume needs besides weights: the global RNG states, and Ctrl-C held to the end
of the running step.

Training loops (the DSM trainer, the GAN/Glow baselines) draw their batches from their own seeded
``torch.Generator``, saved with the checkpoint; the process-wide generators (torch, CUDA, numpy,
python ``random``) are saved too, so code that draws from them resumes where it was. Everything is
tensors, numbers and lists, so checkpoints still load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

KEPT = "network, EMA, optimiser state, loss log, data order and RNG states (torch, numpy, python)"


def capture_rng() -> dict[str, Any]:
    """The process-wide RNG states as tensors and numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only when the same number of devices)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached"])))
    p = state["python"]
    internal = tuple(int(v) for v in p["internal"].cpu().tolist())
    random.setstate((int(p["version"]), internal, p["gauss_next"]))


@contextlib.contextmanager
def stop_after_step(flags: Any, enabled: bool = True) -> Iterator[None]:
    """Ctrl-C sets ``flags.stop`` (the loop ends after the running step, so the checkpoint it
    saves is never half a step); a second Ctrl-C sets ``flags.hard_stop`` and interrupts at
    once. Main thread only, and only when ``enabled`` (elsewhere Ctrl-C interrupts as usual)."""
    flags.stop = flags.hard_stop = False
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: object) -> None:
        if flags.stop:
            flags.hard_stop = True
            raise KeyboardInterrupt
        flags.stop = True

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
