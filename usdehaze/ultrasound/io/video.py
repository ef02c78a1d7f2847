"""Videos of B-mode cines (MP4, AVI, MOV, GIF, ...) → display-domain Scans, through imageio's
PyAV plugin (the ``video`` extra).

Opening decodes the video once: the frames are counted (containers often do not say), their size
checked, the colour pixels of every frame found and up to 64 frames kept for the sector and
overlay search; frames are then decoded again on demand, in order (a read before the last one
decodes from the start). The frame rate is the container's. No pixel spacing: assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError, first_line
from usdehaze.ultrasound.io import _bmode
from usdehaze.ultrasound.io._common import optional_import
from usdehaze.ultrasound.io.registry import Reader, Source, register_reader
from usdehaze.ultrasound.scan import Scan

KEY = "video"
LEVELS = 255  # PyAV decodes to 8-bit RGB (rgb24)


def _imageio(path: Path) -> Any:
    """imageio.v3 with PyAV beside it, or one line saying to install them."""
    return optional_import(path, "reading videos needs imageio and av", "video", "av", "imageio.v3")


def _undecodable(path: Path, exc: BaseException) -> UsageError:
    return UsageError(
        f"{path}: not a video PyAV can decode ({type(exc).__name__}: {first_line(exc)}); "
        "expected an MP4, AVI, MOV or GIF cine"
    )


class _Frames:
    """Frames of a video decoded in order; a read before the current position starts again."""

    def __init__(self, path: Path, shape: tuple[int, int]) -> None:
        self.path, self.shape = path, shape
        self.file: Any = None
        self.it: Any = None
        self.pos = 0

    def _restart(self) -> None:
        self.close()
        self.file = _imageio(self.path).imopen(self.path, "r", plugin="pyav")
        self.it, self.pos = self.file.iter(format="rgb24"), 0

    def _next(self) -> np.ndarray:
        try:
            frame = next(self.it)
        except StopIteration:
            raise UsageError(
                f"{self.path}: key '{KEY}': frame {self.pos} missing (the file changed since it was "
                "opened?)"
            ) from None
        self.pos += 1
        return frame

    def read(self, a: int, b: int) -> np.ndarray:
        """Grey frames [a, b) as float32 (b - a, z, x)."""
        if self.it is None or a < self.pos:
            self._restart()
        while self.pos < a:
            self._next()
        frames = np.stack([self._next() for _ in range(a, b)])
        if frames.shape[1:3] != self.shape:
            raise UsageError(f"{self.path}: key '{KEY}': frames of changing size")
        return _bmode.to_grey(frames, LEVELS)[0]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file, self.it = None, None


def _scan_once(path: Path, iio: Any) -> tuple[int, tuple[int, int], np.ndarray, np.ndarray, dict]:
    """One pass over the video: frame count, size, up to 64 grey frames spread over it, the
    colour pixels of all frames, and the container's metadata."""
    meta = iio.immeta(path, plugin="pyav")
    props = iio.improps(path, plugin="pyav")
    h, w = int(props.shape[1]), int(props.shape[2])
    declared = int(props.shape[0]) or 0
    _bmode.check_size(f"{path}: key '{KEY}'", max(declared, 1), h, w, 3)
    every = max(1, declared // _bmode.SAMPLE_FRAMES)
    kept: list[np.ndarray] = []
    colour = np.zeros((h, w), bool)
    n = 0
    with iio.imopen(path, "r", plugin="pyav") as f:
        for frame in f.iter(format="rgb24"):
            if frame.shape[:2] != (h, w):
                raise UsageError(
                    f"{path}: frame {n} is {frame.shape[0]} x {frame.shape[1]}, expected "
                    f"{h} x {w} like frame 0: frames of one size"
                )
            grey, col = _bmode.to_grey(frame[None], LEVELS)
            colour |= col[0]
            if n % every == 0:
                kept.append(grey[0])
            n += 1
            if n > _bmode.MAX_FRAMES:
                raise UsageError(f"{path}: more than {_bmode.MAX_FRAMES} frames (the limit)")
    if n == 0:
        raise UsageError(f"{path}: no video frames: expected a cine of at least one frame")
    sample = np.stack(kept)
    if len(sample) > _bmode.SAMPLE_FRAMES:
        sample = sample[_bmode.sample_indices(len(sample))]
    meta["declared_frames"] = declared
    return n, (h, w), sample, colour, meta


def read_video(path: Path, key: str | None = None) -> Scan:
    """A display-domain Scan of a video (frames decoded on demand)."""
    iio = _imageio(path)
    if key not in (None, "", KEY):
        raise UsageError(f"{path}: key '{key}': a video holds one cine, key '{KEY}'")
    try:
        n, shape, sample, colour, meta = _scan_once(path, iio)
    except UsageError:
        raise
    except MemoryError:
        raise UsageError(f"{path}: the video's frames do not fit in memory") from None
    except Exception as exc:  # noqa: BLE001 - PyAV's many error types for broken files
        raise _undecodable(path, exc) from None
    fps = meta.get("fps")
    fps = float(fps) if isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0 else None
    frames = _Frames(path, shape)
    declared = meta["declared_frames"]
    notes = (
        [f"{path}: the container declares {declared} frames, {n} decoded (truncated?)"]
        if declared and declared != n
        else []
    )
    return _bmode.display_scan(
        path,
        layout="video",
        key=KEY,
        n_frames=n,
        read=frames.read,
        sample=sample,
        colour=colour,
        levels=LEVELS,
        frame_rate=fps,
        extra={"codec": meta.get("codec"), "duration": meta.get("duration")},
        notes=notes,
        dtype="uint8 RGB",
        compression=str(meta.get("codec")),
        datasets=[KEY],
        close=frames.close,
    )


@register_reader
class VideoReader(Reader):
    """Videos, by suffix."""

    name, priority = "video", 50
    suffixes = (".mp4", ".avi", ".mov", ".m4v", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".gif")
    generic = (".gif",)
    description = "videos (imageio + PyAV)"

    @classmethod
    def detect(cls, src: Source) -> bool:
        return src.path.is_file() and src.suffix in cls.suffixes

    @classmethod
    def read(cls, src: Source) -> Scan:
        return read_video(src.path, src.key)
