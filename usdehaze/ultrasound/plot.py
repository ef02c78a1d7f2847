"""B-mode figures: scan-converted dB images side by side, mm axes, dB colourbar, ROI outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdehaze.ultrasound.geometry import ScanConverter
from usdehaze.ultrasound.roi import Roi

ROLE_COLOURS = {"target": "tab:red", "background": "tab:cyan"}


def _outline(ax, shape: dict, colour: str, label: str | None) -> None:
    import matplotlib.patches as mp

    kind = shape["shape"]
    kw = {"fill": False, "edgecolor": colour, "linewidth": 1.2}
    if kind == "circle":
        ax.add_patch(mp.Circle(shape["center"], shape["radius"], label=label, **kw))
    elif kind == "annulus":
        ax.add_patch(mp.Circle(shape["center"], shape["outer"], label=label, **kw))
        ax.add_patch(mp.Circle(shape["center"], shape["inner"], **kw))
    elif kind == "rectangle":
        (x0, z0), (x1, z1) = shape["min"], shape["max"]
        ax.add_patch(mp.Rectangle((x0, z0), x1 - x0, z1 - z0, label=label, **kw))
    else:
        ax.add_patch(mp.Polygon(shape["points"], closed=True, label=label, **kw))


def bmode_figure(
    images: dict[str, np.ndarray],
    x: np.ndarray,
    z: np.ndarray,
    grid: str,
    axes: dict,
    dynamic_range: float = 60.0,
    roi: Roi | None = None,
    title: str | None = None,
):
    """A figure with one panel per dB image (polar grids are scan converted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conv = (
        ScanConverter.for_axes(axes["theta"], axes["r"], axes.get("origin", (0, 0)))
        if grid == "polar"
        else None
    )
    fig, axs = plt.subplots(1, len(images), figsize=(4.2 * len(images), 4.6), squeeze=False)
    im = None
    for ax, (name, img) in zip(axs[0], images.items()):
        if conv is not None:
            im = ax.imshow(
                conv(img),
                cmap="gray",
                vmin=-dynamic_range,
                vmax=0,
                extent=conv.extent_mm,
                interpolation="bilinear",
            )
        else:
            im = ax.imshow(
                img,
                cmap="gray",
                vmin=-dynamic_range,
                vmax=0,
                extent=(x.min() * 1e3, x.max() * 1e3, z.max() * 1e3, z.min() * 1e3),
                aspect="equal",
            )
        ax.set_title(name)
        ax.set_xlabel("x (mm)")
        ax.set_facecolor("black")
        if roi is not None and roi.units == "mm":
            for p in roi.pairs:
                _outline(ax, p.target, ROLE_COLOURS["target"], f"{p.name}: target")
                _outline(ax, p.background, ROLE_COLOURS["background"], f"{p.name}: background")
    axs[0][0].set_ylabel("depth z (mm)")
    if roi is not None and roi.units == "mm":
        axs[0][0].legend(loc="lower left", fontsize=7, framealpha=0.6)
    fig.colorbar(im, ax=axs[0].tolist(), label="dB", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save atomically (temp file then rename)."""
    import matplotlib.pyplot as plt

    from usdehaze.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
