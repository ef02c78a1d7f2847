"""Burned-in overlays of scan-converted B-mode: text, markers, calipers, ECG traces, colour.

Scanners draw them into the pixels. They must never be dehazed nor measured, and they come back
untouched in outputs, so they are found here as one (z, x) mask: everything non-zero outside the
imaging region, every coloured pixel, and inside the region only what cannot be tissue — thin,
bright structures holding exactly the same value in every frame (8-bit speckle never does, even
on a bright, slowly moving wall; text and calipers always do).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from usdehaze.ultrasound.sector import _subsample, find_sector, full_scale, static_pixels

BRIGHT = 0.5  # overlays inside the cone: at least half of full scale (text is drawn bright)
SATURATED = 0.95  # "saturated": within 5 % of full scale
WHITE, JPEG_SWING = 0.8, 0.12  # near-white in every frame, varying by at most 12 % (JPEG)
THIN = 5  # a structure an opening by a THIN × THIN square removes is thin (strokes ≤ 4 px)
MIN_PIXELS = 3  # smaller static specks inside the cone are chance coincidences of speckle


def _thin(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` that a THIN × THIN opening removes (lines, strokes, dots)."""
    return mask & ~ndimage.binary_opening(mask, structure=np.ones((THIN, THIN), bool))


def _large_enough(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its connected parts (8-connected) of fewer than MIN_PIXELS pixels."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    keep = np.concatenate([[False], sizes >= MIN_PIXELS])
    return keep[labels]


def find_overlays(
    frames: np.ndarray,
    colour: np.ndarray | None = None,
    sector_mask: np.ndarray | None = None,
) -> np.ndarray:
    """(z, x) bool: burned-in overlay pixels of (n, z, x) grey frames (or one (z, x) frame).

    - ``colour`` (z, x) True: coloured pixels (markers, ECG, colour flow), all overlays;
    - outside ``sector_mask`` (found with :func:`find_sector` when not given; no region found:
      no outside): every pixel non-zero (above 2 % of full scale) in any frame;
    - inside: thin (removed by a 5 × 5 opening) structures of at least 3 pixels that are bright
      (half of full scale) and, with two frames or more, identical in every frame, or
      near-white (80 % of full scale) in every frame varying by at most 12 % (text through
      JPEG, whose blocks change with the tissue beneath); with one
      frame (or a frozen cine) only saturated ones (95 % of full scale); none within 2 px of
      a thick bright structure of the median over time (a clipped wall). They are grown by one pixel
      into pixels at least a quarter of full scale in every frame (a glyph's blurred rim).
    Static bright tissue is never an overlay: it is not exactly constant, or it is not thin."""
    frames = _subsample(frames)
    shape = frames.shape[1:]
    level = full_scale(frames)
    out = np.zeros(shape, dtype=bool)
    if colour is not None:
        out |= np.asarray(colour, dtype=bool)
    if sector_mask is None:
        found = find_sector(frames)
        sector_mask = found.mask(shape) if found is not None else np.ones(shape, bool)
    sector_mask = np.asarray(sector_mask, dtype=bool)
    peak = frames.max(axis=0)
    out |= ~sector_mask & (peak > 0.02 * level)
    static = static_pixels(frames)
    if static is None:
        cand = frames[0] >= SATURATED * level
    else:
        cand = static & (frames[0] >= BRIGHT * level)
        # near-white in every frame and nearly constant: a glyph JPEG-blurred by the tissue
        # beneath it changing (8-bit speckle is not near-white in every frame)
        low = frames.min(axis=0)
        cand |= (low >= WHITE * level) & (frames.max(axis=0) - low <= JPEG_SWING * level)
    # bright tissue (a clipped wall) is thick in the median over time (up to the cone's edge,
    # where it is cut thin): its static specks are not text; a glyph is thin there too
    bright = (np.median(frames, axis=0) if len(frames) > 1 else frames[0]) >= BRIGHT * level
    thick = ndimage.binary_dilation(
        ndimage.binary_opening(bright | ~sector_mask, structure=np.ones((THIN, THIN), bool))
        & sector_mask,
        iterations=2,
    )
    inside = _large_enough(_thin(cand & sector_mask) & ~thick)
    # grown by one pixel into what stays fairly bright in every frame: a glyph's blurred rim
    rim = frames.min(axis=0) >= 0.25 * level
    grown = ndimage.binary_dilation(inside, structure=np.ones((3, 3), bool))
    inside |= grown & rim & sector_mask
    return out | inside
