"""Score networks (fully convolutional, time-conditioned) and their factory."""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from usdehaze.errors import UsageError, first_line

MAX_PARAMETERS = 500_000_000  # a network config may not ask for more (the shipped priors: ~2 M)
MAX_DEPTH = 64  # blocks per level (U-Net) or layers (MLP)
MAX_LEVELS = 8  # U-Net resolution levels (len(mults))


def _architecture(arch: Any, source: str) -> type[nn.Module]:
    if arch == "unet":
        from usdehaze.core.networks.unet import UNet

        return UNet
    if arch == "ncsnv2":
        from usdehaze.core.networks.ncsnv2 import NCSNv2

        return NCSNv2
    if arch == "mlp":
        from usdehaze.core.networks.mlp import MLP

        return MLP
    raise UsageError(f"{source}: key 'arch': expected 'unet', 'ncsnv2' or 'mlp', got {arch!r}")


def check_network(config: Any, source: str = "network config") -> tuple[type[nn.Module], dict]:
    """Validate a network config without allocating it: built on the meta device, wrong types or
    values and more than ``MAX_PARAMETERS`` parameters are one UsageError naming ``source``.
    Returns the class and its keyword arguments."""
    import torch

    from usdehaze.limits import non_finite_key

    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise UsageError(f"{source}: expected a mapping of network settings, got {config!r}")
    bad = non_finite_key(config)
    if bad is not None:
        raise UsageError(f"{source}: key '{bad}': NaN or infinite numbers are not allowed")
    cfg = dict(config)
    cls = _architecture(cfg.pop("arch", "unet"), source)
    if "mults" in cfg and isinstance(cfg["mults"], list):
        cfg["mults"] = tuple(cfg["mults"])
    # how many modules get built (even the meta build takes time per module)
    for key, most in (("blocks", MAX_DEPTH), ("layers", MAX_DEPTH), ("mults", MAX_LEVELS)):
        v = cfg.get(key)
        n = len(v) if isinstance(v, (tuple, list)) else v
        if isinstance(n, int) and n > most:
            raise UsageError(
                f"{source}: key '{key}': {n}, more than the {most} allowed (the limit)"
            )
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "zero-element tensor" note: refused below
            net = cls(**cfg)
            n = count_parameters(net)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
        raise UsageError(f"{source}: {first_line(exc)}") from None
    # a width of 0 (base: 0, mults: [0]) builds, then fails in its first forward pass
    empty = [k for k, t in (*net.named_parameters(), *net.named_buffers()) if t.numel() == 0]
    if empty:
        raise UsageError(
            f"{source}: layer '{empty[0]}' has no units: widths (base, mults, hidden, ...) "
            "must be at least 1"
        )
    if n > MAX_PARAMETERS:
        raise UsageError(
            f"{source}: {n} parameters, more than the {MAX_PARAMETERS} a network may have (the limit)"
        )
    return cls, cfg


def build_network(config: dict[str, Any], source: str = "network config") -> nn.Module:
    """Build a network from ``{"arch": "unet", ...keyword arguments}``.

    The config comes from files (a prior's JSON, a checkpoint, a training YAML), so it is checked
    first by :func:`check_network` (no memory): wrong types or values and huge networks are one
    UsageError naming ``source``, never a traceback or a huge allocation."""
    cls, cfg = check_network(config, source)
    return cls(**cfg)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
