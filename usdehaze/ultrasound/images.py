"""One source of dB frames for display and metrics: a scan (log-compressed here, or a B-mode
cine through its display map) or a result file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.logcomp import DEFAULT_DYNAMIC_RANGE, to_db


@dataclass
class ImageSource:
    """dB frames (frames, z, x) with pixel geometry, read on demand."""

    path: Path
    kind: str  # "scan" or "result"
    key: str
    n_frames: int
    x: np.ndarray
    z: np.ndarray
    grid: str
    axes: dict[str, Any]
    read_db: Callable[[int, int], np.ndarray]
    close: Callable[[], None] = lambda: None
    meta: dict[str, Any] = field(default_factory=dict)
    # (z, x) pixels metrics never count: burned-in overlays and colour pixels of a B-mode input
    excluded: np.ndarray | None = None

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result_reader(res: Any, key: str, dynamic_range: float) -> Callable[[int, int], np.ndarray]:
    """Stored dB frames of ``key``, clipped to [-dynamic_range, 0] like a scan's (not the *_std
    maps, which are spreads in dB, not levels)."""
    if key.endswith("_std"):
        return lambda a, b: res.frames(key, a, b)
    return lambda a, b: np.clip(res.frames(key, a, b), -dynamic_range, 0)


def open_images(
    path: str | Path, key: str | None = None, dynamic_range: float = DEFAULT_DYNAMIC_RANGE
) -> ImageSource:
    """Open a usdehaze result file (``key``: input|tissue|haze|*_std, default tissue) or a scan.

    Either way ``read_db(a, b)`` gives dB frames (0 dB = the frame maximum of the scan, or of the
    run's input) clipped to [-dynamic_range, 0]; this is the one place both kinds are told apart.
    """
    if not (dynamic_range > 0 and np.isfinite(dynamic_range)):
        raise UsageError(f"--dynamic-range {dynamic_range}: expected a positive number of dB")
    from usdehaze.ultrasound.results import is_result_file, load_result

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if is_result_file(path):
        res = load_result(path)
        key = key or "tissue"
        if key not in res.arrays:
            res.close()
            raise UsageError(
                f"{path}: key '{key}': not in this result file, expected one of {sorted(res.arrays)}"
            )
        return ImageSource(
            path,
            "result",
            key,
            res.n_frames,
            res.x,
            res.z,
            res.grid,
            res.axes,
            _result_reader(res, key, dynamic_range),
            res.close,
            dict(res.attrs),
            _excluded(res.masks),
        )
    from usdehaze.ultrasound.io import load_scan

    scan = load_scan(path, key)
    read = db_reader(scan, dynamic_range)
    return ImageSource(
        path,
        "scan",
        scan.key,
        scan.n_frames,
        scan.x,
        scan.z,
        scan.grid,
        scan.axes,
        read,
        scan.close,
        {"layout": scan.layout, "magnitude_only": scan.magnitude_only, "domain": scan.domain},
        _excluded(scan.masks),
    )


def db_reader(scan: Any, dynamic_range: float) -> Callable[[int, int], np.ndarray]:
    """A scan's frames [a, b) as dB images in [-DR, 0]: IQ or magnitudes log-compressed (0 dB =
    each frame's maximum), B-mode grey levels through the scan's display map (0 dB = full scale;
    ``dynamic_range`` sets an assumed map's range). The one rule for showing and measuring."""
    if scan.domain != "display":
        return lambda a, b: to_db(scan.frames(a, b), dynamic_range)
    display = scan.display.assuming(dynamic_range)
    return lambda a, b: display.to_db(scan.frames(a, b))


def _excluded(masks: dict[str, np.ndarray]) -> np.ndarray | None:
    """The pixels no metric counts: overlays and colour pixels (None when there are none)."""
    out = None
    for name in ("overlay", "colour"):
        if name in masks:
            out = masks[name] if out is None else out | masks[name]
    return out
