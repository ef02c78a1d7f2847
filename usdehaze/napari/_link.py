"""Link the display of layers that belong together (input / tissue / haze of one run or file)."""

from __future__ import annotations

from typing import Any

from usdehaze.napari._layers import META_KEY, Native

LINKED = ("contrast_limits", "gamma", "colormap")


def link_groups(viewer: Any, event: Any = None) -> int:
    """Link contrast limits, colormap and gamma within every group of dB layers (std layers
    keep their own); returns the number of groups linked. Linking twice is harmless."""
    from napari.experimental import link_layers

    groups: dict[str, list[Any]] = {}
    for ly in viewer.layers:
        native = ly.metadata.get(META_KEY) if hasattr(ly, "metadata") else None
        if isinstance(native, Native) and native.group and not native.role.endswith("_std"):
            groups.setdefault(native.group, []).append(ly)
    linked = 0
    for layers in groups.values():
        if len(layers) > 1:
            link_layers(layers, LINKED)
            linked += 1
    return linked
