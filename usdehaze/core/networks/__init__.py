"""Score networks (fully convolutional, time-conditioned) and their factory."""

from __future__ import annotations

from typing import Any

from torch import nn

from usdehaze.errors import UsageError


def build_network(config: dict[str, Any]) -> nn.Module:
    """Build a network from ``{"arch": "unet", ...keyword arguments}``."""
    cfg = dict(config)
    arch = cfg.pop("arch", "unet")
    if arch == "unet":
        from usdehaze.core.networks.unet import UNet

        if "mults" in cfg:
            cfg["mults"] = tuple(cfg["mults"])
        try:
            return UNet(**cfg)
        except TypeError as exc:
            raise UsageError(f"network config: {exc}") from None
    if arch == "ncsnv2":
        from usdehaze.core.networks.ncsnv2 import NCSNv2

        try:
            return NCSNv2(**cfg)
        except TypeError as exc:
            raise UsageError(f"network config: {exc}") from None
    if arch == "mlp":
        from usdehaze.core.networks.mlp import MLP

        try:
            return MLP(**cfg)
        except TypeError as exc:
            raise UsageError(f"network config: {exc}") from None
    raise UsageError(f"network config: 'arch' must be 'unet', 'ncsnv2' or 'mlp', got {arch!r}")


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
