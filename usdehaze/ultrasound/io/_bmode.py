"""What the B-mode readers (DICOM, videos, image stacks) share: colour → grey, the pixel grid in
metres, the sector and overlay masks, and the one-line geometry note.

Scanners export scan-converted grey levels; colour pixels (colour flow, coloured markers) are
found where the channels differ, given the luma as their grey level, recorded in
``masks["colour"]`` and left as they are (never dehazed, copied back to outputs). The sector and
the overlays come from ``usdehaze.ultrasound.sector`` / ``overlays`` when those modules exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError

ASSUMED_SPACING_MM = 0.3  # a B-mode pixel when nothing says: 15 cm of depth over 500 rows
# channels differing by more than this fraction of full scale make a pixel colour (JPEG's chroma
# rounding of grey pixels stays within a few levels of 255)
COLOUR_TOLERANCE = 10 / 255
SAMPLE_FRAMES = 32  # frames read (spread over the cine) to find the sector, overlays, colour
MAX_FRAMES = 100_000  # frames a cine may declare (with check_frame_size: what a file can ask for)
LUMA = (0.299, 0.587, 0.114)
REGIONS = "SequenceOfUltrasoundRegions"  # ITU-R BT.601, the Y of DICOM's YBR_FULL


def check_size(where: str, frames: int, rows: int, cols: int, samples: int = 1) -> None:
    """Refuse declared sizes a file cannot mean: no frames, too many, a frame beyond memory."""
    from usdehaze.limits import check_frame_size

    if min(frames, rows, cols, samples) < 1:
        raise UsageError(
            f"{where}: declares {frames} frames of {rows} x {cols} x {samples}, expected at "
            "least one frame of one pixel"
        )
    if frames > MAX_FRAMES:
        raise UsageError(f"{where}: declares {frames} frames, more than {MAX_FRAMES} (the limit)")
    # per pixel: the grid and working copies (64 bytes), the float32 sample of SAMPLE_FRAMES
    # frames kept to find the sector, and one decoded frame in float64
    check_frame_size(where, rows, cols, bytes_per_pixel=64 + 4 * SAMPLE_FRAMES + 8 * samples)


def to_grey(pixels: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames (n, z, x) grey or (n, z, x, 3|4) colour → float32 grey levels (colour: BT.601
    luma, exact on grey pixels) and the (n, z, x) colour pixels (None for grey input)."""
    a = np.asarray(pixels)
    if a.ndim == 3:
        return a.astype(np.float32), None
    rgb = a[..., :3]
    if rgb.shape[-1] == 1:
        return rgb[..., 0].astype(np.float32), None
    lo, hi = rgb.min(-1), rgb.max(-1)
    colour = (hi.astype(np.float64) - lo) > COLOUR_TOLERANCE * levels
    luma = rgb.astype(np.float32) @ np.asarray(LUMA, np.float32)
    grey = np.where(lo == hi, rgb[..., 0], luma)
    return grey.astype(np.float32), colour


def sample(decode: Any, n: int, levels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Up to SAMPLE_FRAMES grey frames spread over ``n`` (``decode(i)``: one frame as decoded),
    converted one at a time, and the (z, x) pixels that are colour in any of them."""
    grey, colour = [], None
    for i in sample_indices(n):
        g, c = to_grey(np.asarray(decode(int(i)))[None], levels)
        grey.append(g[0])
        if c is not None:
            colour = c[0] if colour is None else colour | c[0]
    return np.stack(grey), colour


def sample_indices(n: int, k: int = SAMPLE_FRAMES) -> np.ndarray:
    """Up to ``k`` frame indices spread evenly over ``n`` frames."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def _helpers() -> tuple[Any, Any]:
    """The sector and overlay modules, or None while they are not part of the package."""
    try:
        from usdehaze.ultrasound import overlays, sector
    except ImportError:
        return None, None
    return sector, overlays


@dataclass
class Geometry:
    """Pixel positions (m), 1-D axes, masks, the sector found and the note saying how."""

    x: np.ndarray
    z: np.ndarray
    axes: dict[str, np.ndarray]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""
    sector: Any = None
    spacing_mm: tuple[float, float] = (ASSUMED_SPACING_MM, ASSUMED_SPACING_MM)
    spacing_source: str = "assumed"


def geometry(
    sample: np.ndarray,
    colour: np.ndarray | None,
    *,
    spacing_mm: tuple[float, float] | None,
    spacing_source: str,
    regions: list[dict] | None = None,
) -> Geometry:
    """The grid, masks and note of B-mode frames: ``sample`` (n, z, x) grey frames spread over
    the cine, ``colour`` (z, x) colour pixels, the spacing (row, col) mm a file states (None:
    assumed) and its source, ``regions`` the file's ultrasound regions."""
    shape = tuple(sample.shape[1:])
    sector_mod, overlay_mod = _helpers()
    sec, found_note = None, ""
    if sector_mod is not None:
        tagged = sector_mod.from_regions(regions, shape) if regions else None
        found = sector_mod.find_sector(sample)
        sec, found_note = sector_mod.reconcile(tagged, found, shape)
    if spacing_source == REGIONS:  # the tags' spacing as reconcile kept (or rescaled) it
        kept = sec.spacing_mm if sec is not None and sec.source == REGIONS else None
        spacing_mm = None if kept is None else (float(kept[0]), float(kept[1]))
    if spacing_mm is None:
        spacing_mm, spacing_source = (ASSUMED_SPACING_MM, ASSUMED_SPACING_MM), "assumed"
    dz, dx = spacing_mm[0] * 1e-3, spacing_mm[1] * 1e-3
    nz, nx = shape
    if sec is not None and sec.kind == "sector":
        r0, c0 = sec.apex
    elif sec is not None:  # linear: x from the region's middle, z from its top row
        r0, c0 = sec.bounds[0], (sec.bounds[1] + sec.bounds[3]) / 2
    else:
        r0, c0 = 0.0, (nx - 1) / 2
    xs, zs = (np.arange(nx) - c0) * dx, (np.arange(nz) - r0) * dz
    z, x = np.meshgrid(zs, xs, indexing="ij")
    masks: dict[str, np.ndarray] = {}
    if sec is not None:
        masks["sector"] = np.asarray(sec.mask(shape), bool)
    if overlay_mod is not None:
        masks["overlay"] = np.asarray(
            overlay_mod.find_overlays(sample, colour, masks.get("sector")), bool
        )
    if colour is not None and colour.any():
        masks["colour"] = colour
    if spacing_source == "assumed":
        spacing = f"pixel spacing assumed {spacing_mm[0]:g} mm (none stated, or refused)"
    else:
        spacing = (
            f"pixel spacing {spacing_mm[0]:.4g} x {spacing_mm[1]:.4g} mm from {spacing_source}"
        )
    if sector_mod is None:
        where = "sector and overlays not searched (no sector module)"
    else:
        where = found_note or (sec.note() if sec is not None else "the whole frame is imaged")
    return Geometry(
        x=x,
        z=z,
        axes={"x": xs, "z": zs},
        masks=masks,
        note=f"{spacing}; {where}",
        sector=sec,
        spacing_mm=(float(spacing_mm[0]), float(spacing_mm[1])),
        spacing_source=spacing_source,
    )


def colour_note(path: Path, colour: np.ndarray | None) -> str | None:
    """The one line a cine with colour pixels gets (colour flow is not dehazed)."""
    if colour is None or not colour.any():
        return None
    return (
        f"{path}: {int(colour.sum())} colour pixels (colour flow or coloured overlays) are left "
        "as they are: not dehazed, not measured, copied to outputs"
    )


def sector_record(sec: Any) -> dict[str, Any] | None:
    """A JSON-able summary of a sector (usdehaze info)."""
    if sec is None:
        return None
    return {
        "kind": sec.kind,
        "apex_px": [round(float(v), 2) for v in sec.apex],
        "angles_deg": [round(float(np.rad2deg(a)), 2) for a in sec.angles],
        "radii_px": [round(float(r), 2) for r in sec.radii],
        "bounds_px": [int(b) for b in sec.bounds],
        "source": sec.source,
    }


def decoded_scan(
    path: Path,
    decode: Any,
    n: int,
    levels: int,
    *,
    sampled: tuple[np.ndarray, np.ndarray | None] | None = None,
    **fields: Any,
) -> Any:
    """The :func:`display_scan` of ``n`` frames that ``decode(i)`` gives one at a time (DICOM,
    image stacks): frames converted to grey on demand, the sample spread over the cine.
    ``sampled``: the (grey, colour) of :func:`sample`, for a reader that words its own error."""

    def read(a: int, b: int) -> np.ndarray:
        return to_grey(np.stack([decode(i) for i in range(a, b)]), levels)[0]

    grey, colour = sample(decode, n, levels) if sampled is None else sampled
    return display_scan(
        path, n_frames=n, read=read, sample=grey, colour=colour, levels=levels, **fields
    )


def display_scan(
    path: Path,
    *,
    layout: str,
    key: str,
    n_frames: int,
    read: Any,
    sample: np.ndarray,
    colour: np.ndarray | None,
    levels: int,
    frame_rate: float | None,
    spacing_mm: tuple[float, float] | None = None,
    spacing_source: str = "assumed",
    regions: list[dict] | None = None,
    display_source: str = "default",
    dynamic_range: float | None = None,
    extra: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    **fields: Any,
) -> Any:
    """The display-domain Scan of B-mode frames: ``read(a, b)`` float32 grey (n, z, x),
    ``sample`` grey frames spread over the cine, ``colour`` its (z, x) colour pixels."""
    from usdehaze.ultrasound.display import DEFAULT_DYNAMIC_RANGE, DisplayMap
    from usdehaze.ultrasound.scan import Scan

    geo = geometry(
        sample, colour, spacing_mm=spacing_mm, spacing_source=spacing_source, regions=regions
    )
    notes = [*(notes or []), *[m for m in (colour_note(path, colour),) if m]]
    display = DisplayMap(
        dynamic_range=dynamic_range or DEFAULT_DYNAMIC_RANGE, levels=levels, source=display_source
    )
    return Scan(
        path=path,
        layout=layout,
        key=key,
        n_frames=n_frames,
        shape=tuple(sample.shape[1:]),
        read=read,
        x=geo.x,
        z=geo.z,
        grid="cartesian",
        axes=geo.axes,
        extra={
            **(extra or {}),
            "spacing_mm": list(geo.spacing_mm),
            "spacing_source": geo.spacing_source,
            "sector": sector_record(geo.sector),
            "notes": notes,
        },
        geometry_note=geo.note,
        domain="display",
        display=display,
        masks=geo.masks,
        frame_rate=frame_rate,
        **fields,
    )
