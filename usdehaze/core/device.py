"""Device selection shared by every entry point: ``auto`` takes CUDA when present."""

from __future__ import annotations

import torch

from usdehaze.errors import UsageError


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
