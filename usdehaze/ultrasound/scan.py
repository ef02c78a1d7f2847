"""The Scan object: lazily read beamformed IQ frames plus the physical position of every pixel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from usdehaze.ultrasound.display import DisplayMap

GridKind = Literal["cartesian", "polar"]
Domain = Literal["iq", "envelope", "display"]


@dataclass
class Scan:
    """A beamformed scan: IQ frames (frames, z, x) read on demand, with pixel geometry.

    ``x`` and ``z`` hold the lateral and depth position (metres) of every pixel centre, shape
    (z, x), so regions given in millimetres map onto any grid, polar included. For a polar grid
    ``axes`` holds ``theta`` (rad, per column), ``r`` (m, per row) and ``origin`` ([x, z] m).
    For a cartesian grid it holds ``x`` and ``z`` 1-D axes. ``read(start, stop)`` returns
    complex64 (stop - start, z, x) (float32 magnitudes for ``domain`` "envelope", float32 grey
    levels for "display"); readers keep the file open until :meth:`close`.
    """

    path: Path
    layout: str
    key: str
    n_frames: int
    shape: tuple[int, int]
    read: Callable[[int, int], np.ndarray]
    x: np.ndarray
    z: np.ndarray
    grid: GridKind = "cartesian"
    axes: dict[str, Any] = field(default_factory=dict)
    probe: str | None = None
    center_frequency: float | None = None
    sound_speed: float | None = None
    magnitude_only: bool = False
    dtype: str = "complex64"
    compression: str | None = None
    datasets: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    # set when the file gives no pixel coordinates and the grid was inferred or assumed: says
    # from what (shown by usdehaze info and napari, since mm positions may not be physical)
    geometry_note: str | None = None
    # what ``read`` returns: "iq" (complex IQ), "envelope" (magnitudes: ``magnitude_only``) or
    # "display" (scan-converted B-mode grey levels, float32, mapped to dB by ``display``)
    domain: Domain = "iq"
    display: DisplayMap | None = None
    # boolean (z, x) masks the reader found: "sector" (the imaging region: only it is dehazed
    # and measured) and "overlay" (burned-in text, markers, ECG: copied untouched to outputs)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    frame_rate: float | None = None  # frames per second, when the file says
    # display scans: frames [a, b) as stored, (n, z, x) grey or (n, z, x, 3) RGB integers, for
    # outputs that copy the input's own pixels (overlays, colour) back exactly
    pixels: Callable[[int, int], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.magnitude_only and self.domain == "iq":
            self.domain = "envelope"
        if self.domain != "iq":
            self.magnitude_only = True
        if self.domain == "display" and self.display is None:
            self.display = DisplayMap()

    def __len__(self) -> int:
        return self.n_frames

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """IQ frames [start, stop) as complex64 (n, z, x); bounds are checked."""
        from usdehaze.errors import UsageError

        stop = self.n_frames if stop is None else stop
        if not (0 <= start < stop <= self.n_frames):
            raise UsageError(
                f"{self.path}: key '{self.key}': frames {start}:{stop} out of range, file has {self.n_frames}"
            )
        try:
            return self.read(start, stop)
        except UsageError:
            raise
        except MemoryError:
            raise UsageError(
                f"{self.path}: key '{self.key}': frames {start}:{stop} do not fit in memory"
            ) from None
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as exc:
            # h5py's "Can't read data" / filter errors, zarr's codec errors: damaged chunks
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise UsageError(
                f"{self.path}: key '{self.key}': frames {start}:{stop} unreadable, corrupt or "
                f"truncated data? ({first})"
            ) from None

    def batches(self, frames: range | None = None, batch: int = 16):
        """Iterate (indices, IQ) over ``frames`` in batches, never holding the whole file."""
        frames = range(self.n_frames) if frames is None else frames
        idx = list(frames)
        for i in range(0, len(idx), batch):
            chunk = idx[i : i + batch]
            yield chunk, read_frames(self, chunk)

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, z_min, z_max) of the pixel centres in millimetres."""
        return (
            float(self.x.min() * 1e3),
            float(self.x.max() * 1e3),
            float(self.z.min() * 1e3),
            float(self.z.max() * 1e3),
        )


def parse_frames(
    spec: str | None, n_frames: int, path: object = "", option: str = "--frames"
) -> range:
    """Parse a ``--frames`` spec like ``0:4``, ``3``, ``-1`` or ``:10`` into a checked range.

    A negative index or bound counts from the end once (``-1`` is the last frame, ``-n`` the
    first); anything still outside the file after that is refused, never wrapped again or
    clipped, and an empty range is refused too."""
    from usdehaze.errors import UsageError

    if spec is None or spec == "":
        return range(n_frames)
    if not spec.isascii():  # int() takes any script's digits ('٣'): only 0-9 are frame numbers
        raise UsageError(f"{path}: {option} '{spec}': expected START:STOP or an index (digits 0-9)")
    try:
        if ":" in spec:
            a, b = spec.split(":", 1)
            start = int(a) if a.strip() else 0
            stop = int(b) if b.strip() else n_frames
            single = False
        else:
            start, stop, single = int(spec), None, True
    except ValueError:
        raise UsageError(f"{path}: {option} '{spec}': expected START:STOP or an index") from None
    if single:
        if not -n_frames <= start < n_frames:
            raise UsageError(
                f"{path}: {option} '{spec}': out of range, file has {n_frames} frames "
                f"(indices 0..{n_frames - 1}, or -{n_frames}..-1 from the end)"
            )
        start = start + n_frames if start < 0 else start
        return range(start, start + 1)
    for v in (start, stop):
        if not -n_frames <= v <= n_frames:
            raise UsageError(
                f"{path}: {option} '{spec}': {v} is out of range, file has {n_frames} frames"
            )
    start = start + n_frames if start < 0 else start
    stop = stop + n_frames if stop < 0 else stop
    if not start < stop:
        raise UsageError(
            f"{path}: {option} '{spec}': empty range (frames {start}:{stop} of {n_frames})"
        )
    return range(start, stop)


def blank_frames(iq: np.ndarray) -> np.ndarray:
    """Which frames (n, z, x) are all zeros: no signal to dehaze (written as blank frames)."""
    a = np.asarray(iq)
    return ~np.any(a.reshape(len(a), -1) != 0, axis=1)


def read_frames(scan: Scan, index: list[int]) -> np.ndarray:
    """Frames ``index`` of a scan, (n, z, x), read in one block when they follow each other:
    the one frame source of the dehazing runs (run and run-many through the driver, and the
    out-of-distribution check)."""
    idx = [int(i) for i in index]
    if idx and idx == list(range(idx[0], idx[-1] + 1)):
        return scan.frames(idx[0], idx[-1] + 1)
    return np.concatenate([scan.frames(j, j + 1) for j in idx])
