"""What is inside a scan, result file or run-many store (``usdehaze info``, and any caller)."""

from __future__ import annotations

from pathlib import Path


def describe(file: Path, key: str | None = None) -> dict:
    """A JSON-able summary of a scan or result file; a missing one is one line at once, before
    the readers import torch (a typo answered in ~1 s, not the 15-50 s of torch under load)."""
    if not Path(file).exists():
        from usdehaze.errors import UsageError

        raise UsageError(f"{file}: no such file")
    from usdehaze.ultrasound.batch_run import describe_store
    from usdehaze.ultrasound.results import is_result_file, load_result

    if Path(file).suffix == ".zarr" and (store := describe_store(file)) is not None:
        for scan in store["scans"]:  # every frame done decodes (the checks on open read none)
            _check_decodes(Path(file) / scan["group"])
        return store
    if is_result_file(file):
        _check_decodes(Path(file))
        with load_result(file) as r:
            return {
                "file": str(file),
                "layout": "usdehaze-result",
                "keys": sorted(r.arrays),
                "frames": r.n_frames,
                "shape": list(r.arrays["input"].shape[1:]),
                "grid": r.grid,
                "complete": r.attrs.get("complete"),
                "extent_mm": [
                    float(r.x.min() * 1e3),
                    float(r.x.max() * 1e3),
                    float(r.z.min() * 1e3),
                    float(r.z.max() * 1e3),
                ],
                "source": r.attrs.get("source"),
                "config": r.attrs.get("config"),
                "prior_checksums": r.attrs.get("prior_checksums"),
                "usdehaze_version": r.attrs.get("usdehaze_version"),
                **_checks(r.attrs),
            }
    from usdehaze.ultrasound.io import load_scan

    with load_scan(file, key) as s:
        return {
            "file": str(file),
            "layout": s.layout,
            "key": s.key,
            "datasets": s.datasets,
            "frames": s.n_frames,
            "shape": list(s.shape),
            "grid": s.grid,
            "extent_mm": list(s.extent_mm),
            "probe": s.probe,
            "center_frequency": s.center_frequency,
            "sound_speed": s.sound_speed,
            "dtype": s.dtype,
            "compression": s.compression,
            "magnitude_only": s.magnitude_only,
            "domain": s.domain,
            "frame_rate": s.frame_rate,
            **(_bmode(s) if s.domain == "display" else {}),
            **({"geometry": s.geometry_note} if s.geometry_note else {}),
        }


def _bmode(s) -> dict:
    """What a B-mode reader found: pixel spacing, sector, overlays, colour pixels, display map."""
    masks = s.masks
    return {
        "pixel_spacing_mm": s.extra.get("spacing_mm"),
        "spacing_source": s.extra.get("spacing_source"),
        "sector": s.extra.get("sector"),
        "sector_pixels": int(masks["sector"].sum()) if "sector" in masks else None,
        "overlay_pixels": int(masks["overlay"].sum()) if "overlay" in masks else None,
        "colour_pixels": int(masks["colour"].sum()) if "colour" in masks else 0,
        "display": s.display.record() if s.display is not None else None,
        **({"notes": s.extra["notes"]} if s.extra.get("notes") else {}),
    }


def _checks(attrs: dict) -> dict:
    """What a result's checks said (warnings, frames flagged, frame-to-frame change), where it
    recorded them: a user reads them without opening the file's attributes."""
    out: dict = {}
    if "nfe" in attrs:
        out["nfe"] = attrs["nfe"]
    warned = {
        k: bool(attrs[f"{k}_warning"]) for k in ("ood", "harm", "wreck") if f"{k}_warning" in attrs
    }
    if warned:
        out["warnings"] = warned
    if len(attrs.get("wreck_flagged_frames", [])):
        out["flagged_frames"] = [int(f) for f in attrs["wreck_flagged_frames"]]
    if "flicker_input_db" in attrs and "flicker_tissue_db" in attrs:
        out["flicker_db"] = {
            "input": round(float(attrs["flicker_input_db"]), 3),
            "tissue": round(float(attrs["flicker_tissue_db"]), 3),
        }
    return out


def _check_decodes(path: Path) -> None:
    """Every frame a result (or a run-many store's scan group) holds decodes to finite dB: its
    written frames (``done``, or the first ``frames_done``); damage is one line."""
    import numpy as np

    from usdehaze.ultrasound.result_check import check_frames_decode
    from usdehaze.ultrasound.results import load_result

    with load_result(path) as r:
        if r.done is not None:
            done = r.done
        else:
            written = r.attrs.get("frames_done", r.n_frames)
            done = np.arange(r.n_frames) < (written if isinstance(written, int) else r.n_frames)
        check_frames_decode(r.path, r.arrays, done)
