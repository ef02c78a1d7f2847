"""Contrast metrics of ROI pairs, frame by frame, on dB images from any source (scan or result)."""

from __future__ import annotations

from typing import Any

from usdehaze.metrics import DOMAINS, region_stats
from usdehaze.ultrasound.images import ImageSource
from usdehaze.ultrasound.logcomp import db_to_envelope
from usdehaze.ultrasound.roi import Roi, pair_masks


def roi_stats(
    source: ImageSource, roi: Roi, frames: range, bins: int = 256, domain: str = "db"
) -> list[dict[str, Any]]:
    """One row per (frame, pair): name, frame, source_frame, gcnr, ks, cnr, cnr_db, contrast_db,
    n_target, n_background. ``frame`` indexes the file (what ``--frames`` takes);
    ``source_frame`` is that frame's index in the scan it came from (a result's
    ``source_frames``; the same as ``frame`` for a scan). ``domain="db"``: the clipped dB image;
    ``"envelope"``: 10^(dB/20) of it.

    Masks are rasterised once on the source's native grid, less the source's ``excluded``
    pixels (a B-mode cine's overlays); frames are read one at a time.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    masks = pair_masks(roi, source.x, source.z, str(source.path))
    if source.excluded is not None:  # burned-in overlays are never measured
        masks = [(name, t & ~source.excluded, b & ~source.excluded) for name, t, b in masks]
    known = source.meta.get("source_frames")
    if not (isinstance(known, list) and len(known) == source.n_frames):
        known = range(source.n_frames)
    rows = []
    for f in frames:
        img = source.read_db(f, f + 1)[0]
        values = img if domain == "db" else db_to_envelope(img)
        for name, t, b in masks:
            stats = region_stats(values[t], values[b], bins, domain)  # type: ignore[arg-type]
            rows.append({"name": name, "frame": int(f), "source_frame": int(known[f]), **stats})
    return rows
