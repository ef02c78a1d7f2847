"""B-mode figures: scan-converted dB images side by side, mm axes, dB colourbar, ROI outlines.

Matplotlib runs on the Agg backend (no display needed). ROIs in millimetres are drawn as their
exact shapes; ROIs in pixels are drawn as the outline of the rasterised mask (scan converted on
sector grids), so the figure shows exactly the pixels the metrics use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.ultrasound.geometry import extent_mm, scan_convert
from usdehaze.ultrasound.roi import Roi, rasterise

ROLE_COLOURS = {"target": "tab:red", "background": "tab:cyan"}


def _outline(ax, shape: dict[str, Any], colour: str) -> None:
    """Draw a SHAPE given in millimetres."""
    import matplotlib.patches as mp

    kind = shape["shape"]
    kw = {"fill": False, "edgecolor": colour, "linewidth": 1.3}
    if kind == "circle":
        ax.add_patch(mp.Circle(shape["center"], shape["radius"], **kw))
    elif kind == "annulus":
        ax.add_patch(mp.Circle(shape["center"], shape["outer"], **kw))
        ax.add_patch(mp.Circle(shape["center"], shape["inner"], **kw))
    elif kind == "rectangle":
        (x0, z0), (x1, z1) = shape["min"], shape["max"]
        ax.add_patch(mp.Rectangle((x0, z0), x1 - x0, z1 - z0, **kw))
    else:
        ax.add_patch(mp.Polygon(shape["points"], closed=True, **kw))


def _label_point(shape: dict[str, Any]) -> tuple[float, float]:
    """Where a label goes in mm: above the shape's top edge."""
    if shape["shape"] in ("circle", "annulus"):
        r = shape.get("radius", shape.get("outer"))
        return shape["center"][0], shape["center"][1] - r
    if shape["shape"] == "rectangle":
        return (shape["min"][0] + shape["max"][0]) / 2, shape["min"][1]
    pts = np.asarray(shape["points"], float)
    return float(pts[:, 0].mean()), float(pts[:, 1].min())


def _draw_rois(ax, roi: Roi, geo: dict[str, Any]) -> None:
    """Outlines and labels of every pair; target and background in their own colours."""
    import matplotlib.patheffects as pe

    halo = [pe.withStroke(linewidth=2, foreground="black")]
    for p in roi.pairs:
        for role, shape in (("target", p.target), ("background", p.background)):
            colour = ROLE_COLOURS[role]
            if roi.units == "mm":
                _outline(ax, shape, colour)
                lx, lz = _label_point(shape)
            else:  # pixel indices: outline of the mask in physical coordinates
                mask = rasterise(shape, geo["x"], geo["z"], "px").astype(np.float32)
                m, xa, za = scan_convert(mask, geo["grid"], geo["axes"], geo["x"], geo["z"])
                ax.contour(xa * 1e3, za * 1e3, np.nan_to_num(m), levels=[0.5], colors=colour)
                zz, xx = np.nonzero(np.nan_to_num(m) >= 0.5)
                lx, lz = (xa[xx].mean() * 1e3, za[zz].min() * 1e3) if xx.size else (np.nan,) * 2
            ax.annotate(
                f"{p.name}: {role}",
                (lx, lz),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                color=colour,
                path_effects=halo,
            )


def bmode_figure(
    images: dict[str, np.ndarray],
    x: np.ndarray,
    z: np.ndarray,
    grid: str,
    axes: dict[str, Any],
    dynamic_range: float = 60.0,
    roi: Roi | None = None,
    title: str | None = None,
):
    """A figure with one panel per dB image (z, x) on a shared geometry; polar grids are scan
    converted. ``x``, ``z``: per-pixel positions (m); ``grid``/``axes``: as in a Scan.

    Levels share one grey scale, -dynamic_range..0 dB; a ``*_std`` map (a spread in dB, >= 0)
    gets its own scale, 0..its 99.5th percentile, and colourbar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = list(images)
    stack = np.stack([np.asarray(images[k], np.float32) for k in names])
    conv, xa, za = scan_convert(stack, grid, axes, x, z)
    ext = extent_mm(xa, za)
    width_mm, depth_mm = ext[1] - ext[0], ext[2] - ext[3]
    panel_w = 4.0
    panel_h = min(max(panel_w * depth_mm / max(width_mm, 1e-9), 2.0), 8.0)
    fig, axs = plt.subplots(
        1,
        len(names),
        figsize=(panel_w * len(names) + 1.2, panel_h + (1.6 if roi is not None else 1.1)),
        squeeze=False,
        layout="constrained",
    )
    geo = {"x": x, "z": z, "grid": grid, "axes": axes}
    im = None
    level_axes = []
    for ax, name, img in zip(axs[0], names, conv):
        ax.set_facecolor("black")
        spread = name.endswith("_std")  # a spread in dB (>= 0), not a level below 0 dB
        vmin, vmax = (0.0, _spread_top(img)) if spread else (-dynamic_range, 0)
        shown = ax.imshow(
            img,
            cmap="magma" if spread else "gray",
            vmin=vmin,
            vmax=vmax,
            extent=ext,
            interpolation="nearest" if grid == "cartesian" else "bilinear",
            aspect="equal",
        )
        if spread:
            fig.colorbar(shown, ax=ax, label="std (dB)", shrink=0.9)
        else:
            im = shown
            level_axes.append(ax)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_title(name)
        ax.set_xlabel("x (mm)")
        if roi is not None:
            _draw_rois(ax, roi, geo)
    axs[0][0].set_ylabel("depth z (mm)")
    if im is not None:
        fig.colorbar(im, ax=level_axes, label="dB", shrink=0.9)
    if roi is not None:
        handles = [Line2D([], [], color=c, label=role) for role, c in ROLE_COLOURS.items()]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def _spread_top(img: np.ndarray) -> float:
    """Top of a std map's colour scale: its 99.5th percentile (a few outliers stay saturated)."""
    finite = img[np.isfinite(img)]
    top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    return top if top > 0 else 1.0


def save_figure(fig, path: str | Path, dpi: int = 120, writer: str = "show") -> Path:
    """Save atomically (temp file then rename); the format follows the suffix (png, pdf, svg).

    The figure's metadata carries the usdehaze output marker naming ``writer``, so a later run
    may replace it (usdehaze.outputs); a failed write (disk full) is one UsageError line, the
    temporary removed and the old figure kept."""
    import matplotlib.pyplot as plt

    from usdehaze.atomic import atomic_path
    from usdehaze.outputs import figure_metadata, writing

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        with writing(path), atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, metadata=figure_metadata(writer))
    finally:
        plt.close(fig)
    return path
