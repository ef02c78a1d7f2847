"""Side-by-side videos of a dehazed cine (input | dehazed) at the cine's frame rate.

Written with PyAV (the ``video`` extra) as H.264 (yuv420p) MP4, or AVI with
MJPEG; the file's ``comment`` metadata carries usdehaze's output marker, so a later run may
replace it and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from usdehaze.atomic import atomic_path
from usdehaze.errors import UsageError
from usdehaze.outputs import MARKER

VIDEO_SUFFIXES = {".mp4": "libx264", ".mov": "libx264", ".avi": "mjpeg"}
GAP = 8  # black pixels between the two halves


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(n, z, x[, 3]) uint8 pairs → (n, Z, W, 3) uint8 frames: left | gap | right, padded to even
    sizes (yuv420p needs them)."""

    def rgb(a):
        a = np.asarray(a, np.uint8)
        return a if a.ndim == 4 else np.repeat(a[..., None], 3, axis=-1)

    a, b = rgb(left), rgb(right)
    n, z, x = a.shape[:3]
    out = np.zeros((n, z + z % 2, 2 * x + GAP + (2 * x + GAP) % 2, 3), np.uint8)
    out[:, :z, :x] = a
    out[:, :z, x + GAP : 2 * x + GAP] = b
    return out


def write_video(
    target: str | os.PathLike, left: np.ndarray, right: np.ndarray, fps: float | None
) -> Path:
    """Write input | dehazed frames (uint8) as a video at ``fps`` (default 25), atomically."""
    try:
        import av
    except ImportError:
        raise UsageError("writing video needs PyAV: pip install 'usdehaze[video]'") from None
    from fractions import Fraction

    from usdehaze import __version__

    target = Path(target)
    codec = VIDEO_SUFFIXES.get(target.suffix.lower())
    if codec is None:
        raise UsageError(f"{target}: -o: a video is written as {', '.join(VIDEO_SUFFIXES)}")
    frames = side_by_side(left, right)
    rate = Fraction(float(fps) if fps and 0 < fps <= 1000 else 25.0).limit_denominator(1000)
    with atomic_path(target) as tmp:
        with av.open(str(tmp), "w") as container:
            container.metadata["comment"] = f"usdehaze {__version__} ({MARKER})"
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p" if codec == "libx264" else "yuvj420p"
            if codec == "libx264":
                stream.options = {"crf": "12"}  # near-lossless: speckle survives
            for f in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            container.mux(stream.encode())
    return target
