"""Scan-converted B-mode frames around the sampler: what it sees, and what comes back.

A display-domain scan (``Scan.domain == "display"``: grey levels of a DICOM cine or video) is
dehazed on its own Cartesian pixels, inside the imaging region only:

- ``sampler_frames``: grey → dB by the scan's display map, burned-in overlay pixels filled from
  their nearest imaging pixel (text and calipers are never shown to the priors), everything
  outside the sector at the floor, cropped to the sector's bounding box (fewer pixels to run);
- ``compose``: the tissue (or haze) estimate pasted back onto the input's full frame, the
  input's own pixels kept outside the sector and under overlays and colour pixels;
- ``to_pixels``: dB → the output's pixels, grey by the same display map, or RGB where the
  input was colour (its colour pixels untouched).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from usdehaze.ultrasound.display import DisplayMap
from usdehaze.ultrasound.sector import bounding_box


@dataclass(frozen=True)
class Region:
    """Where a display frame is dehazed: ``dehaze`` (z, x) bool, the sector less overlays and
    colour pixels; ``box`` the (row0, row1, col0, col1) crop holding it, rounded out to a
    multiple of ``multiple`` pixels where the frame allows."""

    dehaze: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def keep(self) -> np.ndarray:
        """Pixels the outputs copy from the input (outside the sector, overlays, colour)."""
        return ~self.dehaze


def region(shape: tuple[int, int], masks: dict[str, np.ndarray], multiple: int = 8) -> Region:
    """The dehazed region of frames of ``shape`` from a scan's masks ("sector", "overlay",
    "colour"; a missing sector means the whole frame)."""
    sector = masks.get("sector")
    inside = np.ones(shape, bool) if sector is None else np.asarray(sector, bool)
    for name in ("overlay", "colour"):
        if name in masks:
            inside = inside & ~np.asarray(masks[name], bool)
    if not inside.any():
        return Region(inside, (0, shape[0], 0, shape[1]))
    r0, c0, r1, c1 = bounding_box(inside)
    box = (*_span(r0, r1, shape[0], multiple), *_span(c0, c1, shape[1], multiple))
    return Region(inside, box)


def _span(a: int, b: int, n: int, multiple: int) -> tuple[int, int]:
    """[a, b) widened to a multiple of ``multiple`` (when n allows), kept inside [0, n)."""
    want = min(n, -(-(b - a) // multiple) * multiple)
    a = max(0, min(a - (want - (b - a)) // 2, n - want))
    return int(a), int(a + want)


def sampler_frames(grey: np.ndarray, display: DisplayMap, reg: Region) -> np.ndarray:
    """Grey frames (n, z, x) → dB frames (n, h, w) cropped to ``reg.box``, for the sampler:
    pixels outside the dehazed region inside the sector (overlays) take their nearest dehazed
    pixel's value; outside the sector, the floor (−DR)."""
    return sampler_db(display.to_db(grey), display.dynamic_range, reg)


def sampler_db(db: np.ndarray, dynamic_range: float, reg: Region) -> np.ndarray:
    """:func:`sampler_frames` of frames already in dB by the display map (n, z, x)."""
    db = np.asarray(db, np.float32)
    r0, r1, c0, c1 = reg.box
    inside = reg.dehaze[r0:r1, c0:c1]
    out = db[:, r0:r1, c0:c1].copy()
    if inside.all() or not inside.any():
        return out
    # nearest dehazed pixel of every other pixel: overlays inside the fan get tissue around them
    _, (ri, ci) = ndimage.distance_transform_edt(~inside, return_indices=True)
    filled = out[:, ri, ci]
    near = ndimage.binary_dilation(inside, iterations=3)  # overlays within/next to the fan
    out = np.where(inside, out, np.where(near, filled, -dynamic_range))
    return out.astype(np.float32)


def compose(input_db: np.ndarray, est_db: np.ndarray, reg: Region) -> np.ndarray:
    """An estimate on the crop (n, h, w) → full frames (n, z, x): the estimate inside the
    dehazed region, the input elsewhere."""
    out = np.array(input_db, np.float32, copy=True)
    r0, r1, c0, c1 = reg.box
    inside = reg.dehaze[r0:r1, c0:c1]
    out[:, r0:r1, c0:c1] = np.where(inside, est_db, out[:, r0:r1, c0:c1])
    return out


def to_pixels(
    tissue_db: np.ndarray, source: np.ndarray, display: DisplayMap, reg: Region
) -> np.ndarray:
    """Full-frame tissue dB (n, z, x) → output pixels: grey (n, z, x) uint8, or RGB (n, z, x, 3)
    when ``source`` (the input's pixels as stored) is RGB; the input's pixels kept outside the
    dehazed region, exactly."""
    grey = display.to_grey(tissue_db)
    source = np.asarray(source)
    if source.ndim == 4:
        out = source.astype(np.uint8, copy=True)
        out[:, reg.dehaze] = grey[:, reg.dehaze, None]
        return out
    out = np.asarray(source).astype(np.uint8, copy=True)
    out[:, reg.dehaze] = grey[:, reg.dehaze]
    return out


@dataclass(frozen=True)
class DisplayFrames:
    """What a :class:`DisplayView` needs of a display-domain scan, kept without the scan (a
    napari layer holds it): the frame shape, the masks ("sector", "overlay", "colour") and the
    display map."""

    shape: tuple[int, int]
    masks: dict[str, np.ndarray]
    display: DisplayMap | None

    @classmethod
    def of(cls, scan) -> DisplayFrames:
        return cls(tuple(scan.shape), dict(scan.masks), scan.display)


class DisplayView:
    """How the frame driver sees a display-domain scan: its grey frames → the sampler's dB crop
    (``encode``), the estimates on the crop → full frames on the input's own pixel grid
    (``full``: input, tissue and haze dB; the haze is nothing where the input is kept), and the
    pixels the checks judge (``mask``: the dehazed region). ``scan``: a Scan or
    :class:`DisplayFrames`."""

    def __init__(self, scan, multiple: int = 8, dynamic_range: float | None = None) -> None:
        display = scan.display or DisplayMap()
        self.display: DisplayMap = (
            display if dynamic_range is None else display.assuming(dynamic_range)
        )
        self.region = region(tuple(scan.shape), scan.masks, multiple)
        self.mask = self.region.dehaze

    def encode(self, grey: np.ndarray) -> np.ndarray:
        return sampler_frames(grey, self.display, self.region)

    def full(self, grey: np.ndarray, res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._full(self.display.to_db(grey), res)

    def dehaze(self, dehazer, frames: np.ndarray, index: list[int]) -> dict[str, np.ndarray]:
        """``encode``, the Dehazer, ``full``: FrameDriver.dehaze's steps with this view, without
        its result checks (napari's live view: each frame the slider shows, at once)."""
        return self.full(frames, dehazer(self.encode(frames), frames=index))

    def _full(self, input_db: np.ndarray, res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        floor = np.full_like(input_db, -self.display.dynamic_range)
        out = {
            "input": input_db,
            "tissue": compose(input_db, res["tissue"], self.region),
            "haze": compose(floor, res["haze"], self.region),
        }
        for k in ("tissue_std", "haze_std"):
            if k in res:
                out[k] = compose(np.zeros_like(input_db), res[k], self.region)
        return out


class DisplayDbView(DisplayView):
    """A :class:`DisplayView` of frames already in dB by the scan's display map (a napari
    layer's, which shows them): ``encode`` and ``full`` take those dB frames in place of the
    grey levels, and do the same."""

    def encode(self, db: np.ndarray) -> np.ndarray:
        return sampler_db(db, self.display.dynamic_range, self.region)

    def full(self, db: np.ndarray, res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._full(np.asarray(db, np.float32), res)
