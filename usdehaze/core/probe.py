"""One forward pass on a small probe input when weights load: finite weights scaled out of range
(say ×1e30) pass every per-tensor check, yet give NaN or huge values on the first real frame,
so the loaders of priors and students run the network once here and refuse it in one line."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from usdehaze.errors import UsageError, first_line

PROBE_SIZE = 16  # pixels per side of the probe image (networks pad it to their own multiple)
PROBE_LIMIT = 1e4  # largest |output| accepted: an ε estimate or a unit-scale image is O(1)
PROBE_SEED = 0


def probe_input(shape: tuple[int, ...], device: torch.device | str) -> Tensor:
    """A reproducible uniform(−1, 1) probe of ``shape`` (drawn on the CPU, the same everywhere)."""
    gen = torch.Generator().manual_seed(PROBE_SEED)
    return (2 * torch.rand(shape, generator=gen) - 1).to(device)


def check_forward(forward: Callable[[], Tensor], source: str, limit: float = PROBE_LIMIT) -> None:
    """Run ``forward`` (a network on its probe input) without gradients and refuse, as one line
    naming ``source``, an error, a NaN/Inf or an output beyond ``limit`` in magnitude."""
    try:
        with torch.no_grad():
            out = forward()
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UsageError(
            f"{source}: the network fails on a small probe input ({first_line(exc)})"
        ) from None
    out = out.detach()
    if not bool(torch.isfinite(out).all()):
        raise UsageError(
            f"{source}: weights give NaN or Inf on a small probe input (finite but out of range, "
            "e.g. scaled; expected trained weights)"
        )
    peak = float(out.abs().max()) if out.numel() else 0.0
    if peak > limit:
        raise UsageError(
            f"{source}: weights give outputs up to {peak:.3g} on a small probe input, expected "
            f"at most {limit:g} (weights out of range, e.g. scaled)"
        )
