"""Where a run's frames go, chosen by the output's suffix: a result file, a DICOM cine, a video.

``.h5`` / ``.hdf5`` / ``.zarr``: the result file (usdehaze.ultrasound.results: input, tissue and
haze dB on the input's own pixel grid, masks, provenance). ``.dcm``: the dehazed cine as a
derived copy of a DICOM input (usdehaze.ultrasound.io.write_dicom). ``.mp4`` / ``.mov`` /
``.avi``: input | dehazed side by side at the cine's frame rate (io.write_video). Every sink
takes frames in order through ``write(i, **dB frames)`` (a batch: ``write_frames``) and the
run's record through ``update_attrs``, and writes atomically; an interrupted run keeps the
frames finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError

RESULT_SUFFIXES = (".h5", ".hdf5", ".zarr")
DICOM_SUFFIXES = (".dcm", ".dicom")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi")


def output_kind(out: str | Path, option: str = "-o") -> str:
    """'result', 'dicom' or 'video' by the output's suffix; anything else is one line."""
    suffix = Path(out).suffix.lower()
    for kind, suffixes in (
        ("result", RESULT_SUFFIXES),
        ("dicom", DICOM_SUFFIXES),
        ("video", VIDEO_SUFFIXES),
    ):
        if suffix in suffixes:
            return kind
    raise UsageError(
        f"{out}: {option}: expected a result file ({', '.join(RESULT_SUFFIXES)}), a DICOM cine "
        f"({', '.join(DICOM_SUFFIXES)}, for DICOM input) or a video "
        f"({', '.join(VIDEO_SUFFIXES)}), got '{suffix or 'no suffix'}'"
    )


def check_kind(out: str | Path, scan: Any, option: str = "-o") -> str:
    """The output's kind, refused in one line where the scan cannot give it (a DICOM output
    needs a DICOM input; a video needs a display-domain scan)."""
    kind = output_kind(out, option)
    if kind == "dicom" and scan.layout != "dicom":
        raise UsageError(
            f"{out}: {option}: a DICOM output is a derived copy of a DICOM input, and "
            f"{scan.path} is {scan.layout}; write a result file (.h5) instead"
        )
    if kind == "video" and scan.domain != "display":
        raise UsageError(
            f"{out}: {option}: videos are written for scan-converted B-mode input (DICOM, video, "
            f"images); {scan.path} is {scan.domain} data: write a result file (.h5) instead"
        )
    if kind == "dicom" and scan.display is not None and scan.display.levels > 255:
        raise UsageError(
            f"{out}: {option}: {scan.path} has {scan.display.levels + 1} grey levels; DICOM "
            "output is 8-bit: write a result file (.h5) instead"
        )
    return kind


class PixelSink:
    """Dehazed display frames → a DICOM cine or a video, written when the run ends (the frames
    finished so far when it is interrupted). ``view``: the run's DisplayView (display map and
    dehazed region); ``frames``: the scan's frames the run dehazes, in order."""

    def __init__(self, out: str | Path, kind: str, scan: Any, view: Any, frames, method: str):
        self.out, self.kind, self.scan, self.view = Path(out), kind, scan, view
        self.frames = list(frames)
        self.method = method
        self.tissue: list[np.ndarray] = []
        self.attrs: dict[str, Any] = {}

    def __enter__(self) -> PixelSink:
        return self

    def write(self, i: int, **frames: np.ndarray) -> None:
        if i != len(self.tissue):
            raise ValueError(
                f"frames must be written in order: expected {len(self.tissue)}, got {i}"
            )
        from usdehaze.ultrasound.results import refuse_non_finite

        tissue = np.asarray(frames["tissue"], np.float32)
        refuse_non_finite(self.out, i, "tissue", tissue, len(self.tissue))
        self.tissue.append(tissue)

    def write_frames(self, i: int, **frames: np.ndarray) -> None:
        """Frames ``i``, ``i + 1``, ... (each key (n, z, x)), as many :meth:`write` calls."""
        for j in range(len(frames["tissue"])):
            self.write(i + j, **{k: v[j] for k, v in frames.items()})

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        self.attrs.update(attrs)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tissue and (
            exc_type is None or issubclass(exc_type, (KeyboardInterrupt, UsageError))
        ):
            self._write()

    def _source(self) -> np.ndarray:
        """The input's frames as stored (RGB or grey integers) for the finished frames."""
        done = self.frames[: len(self.tissue)]
        read = self.scan.pixels or (lambda a, b: self.scan.frames(a, b))
        px = np.concatenate([np.asarray(read(f, f + 1)) for f in done])
        return np.clip(np.rint(px), 0, 255).astype(np.uint8) if px.dtype != np.uint8 else px

    def _write(self) -> None:
        from usdehaze.outputs import writing
        from usdehaze.ultrasound import bmode

        source = self._source()
        out_px = bmode.to_pixels(np.stack(self.tissue), source, self.view.display, self.view.region)
        with writing(self.out):
            if self.kind == "dicom":
                from usdehaze.ultrasound.io.write_dicom import write_dicom

                write_dicom(self.scan.path, self.out, out_px, method=self.method)
            else:
                from usdehaze.ultrasound.io.write_video import write_video

                write_video(self.out, source, out_px, self.scan.frame_rate)
