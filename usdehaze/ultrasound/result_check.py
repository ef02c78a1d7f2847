"""Validation of a result file or a run-many store's group on open, like scans: results are read
back by info, gcnr, show, napari and run-many resumes, and may have been altered since they were
written (a dataset removed, a string or 1-D image, an axis of the wrong length, a broken chunk).
Anything wrong is one UsageError naming the file and the key; read errors and missing chunks
found while reading frames are said the same way (:func:`read_frames`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError, first_line

IMAGE_KEYS = ("input", "tissue", "haze")  # the dB images every result holds (results.py)
GRIDS = ("cartesian", "polar")  # scan.GridKind
AXIS_LENGTHS = {"theta": 1, "x": 1, "r": 0, "z": 0}  # axis: the frame dimension it runs along


def damaged(path: Any, key: str, what: str) -> UsageError:
    """The one line of a damaged result: file, key, what was found and expected."""
    return UsageError(f"{path}: key '{key}': {what} (a damaged result file)")


def _kind(a: Any) -> str:
    try:
        return np.dtype(a.dtype).kind
    except TypeError:
        return "O"


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


def check_result(root: Any, path: Path, names: list[str], attrs: dict[str, Any]) -> None:
    """Every dataset a reader uses, checked from metadata (no frames read): the dB images
    (3-D floats, one frame shape and count), x/z (one position per pixel), axes (1-D, their
    frame dimension's length), masks, ``done`` and the attributes; in a zarr result marked
    complete, every frame's chunk present (a missing one would read as fill, not data)."""
    _check_present(path, names, attrs)
    images = {n: root[n] for n in names if n.endswith("_db")}
    frame, count = _check_images(path, images)
    for name in names:
        if name not in images:
            _check_other(path, name, root[name], frame, count)
    _check_attrs(path, attrs, count)
    # positions written at the start: never all zero (which zarr does not store), so a chunk
    # missing there is damage; so is any frame's in a complete result
    stored = ["z", "axes_r"] + (["x", "axes_theta"] if frame[1] > 1 else [])
    if attrs.get("complete") == 1:
        stored += list(images)
    for name in stored:
        if name in names:
            _all_chunks(path, name, root[name])


def _check_present(path: Path, names: list[str], attrs: dict[str, Any]) -> None:
    """The datasets every result of its grid holds: the dB images, x/z, polar axes."""
    missing = [f"{k}_db" for k in IMAGE_KEYS if f"{k}_db" not in names]
    missing += [k for k in ("x", "z") if k not in names]
    if attrs.get("grid") == "polar":  # the scan conversion of show and napari needs them
        missing += [f"axes_{k}" for k in ("theta", "r") if f"axes_{k}" not in names]
    if missing:
        raise damaged(path, missing[0], "missing (expected in every usdehaze result of its grid)")


def _check_images(path: Path, images: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """The dB images: 3-D floats of one frame shape and count; (frame shape, count)."""
    frame: tuple[int, ...] | None = None
    count: int | None = None
    for name, a in images.items():
        shape = _shape(a)
        if len(shape) != 3 or _kind(a) != "f":
            raise damaged(
                path, name, f"{a.dtype} of shape {shape}, expected float dB frames (frames, z, x)"
            )
        if frame is None:
            frame, count = shape[1:], shape[0]
        elif shape != (count, *frame):
            raise damaged(path, name, f"shape {shape}, expected {(count, *frame)} like the others")
    assert frame is not None and count is not None
    return frame, count


def _check_other(path: Path, name: str, a: Any, frame: tuple[int, ...], count: int) -> None:
    """A non-image dataset a reader uses: its shape and dtype kind (others are not checked)."""
    shape, kind = _shape(a), _kind(a)
    expected = _expected(name, frame, count)
    if expected is None:
        return
    want_shape, kinds = expected
    if shape != want_shape or kind not in kinds:
        raise damaged(
            path, name, f"{a.dtype} of shape {shape}, expected numbers of shape {want_shape}"
        )


def check_finite(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Positions and axes read back: finite numbers (a NaN would place every region nowhere)."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise damaged(path, name, "holds NaN or Inf, expected finite positions")


def _expected(name: str, frame: tuple[int, ...], count: int) -> tuple[tuple, str] | None:
    """(shape, dtype kinds) a non-image dataset must have, or None for one no reader uses."""
    nz, nx = frame
    if name in ("x", "z"):
        return (nz, nx), "f"
    if name.startswith("mask_"):
        return (nz, nx), "biu"
    if name == "done":
        return (count,), "biu"
    if name.startswith("axes_"):
        axis = name[len("axes_") :]
        if axis == "origin":
            return (2,), "fiu"
        if axis in AXIS_LENGTHS:
            return (frame[AXIS_LENGTHS[axis]],), "fiu"
    return None


def _check_attrs(path: Path, attrs: dict[str, Any], count: int) -> None:
    """The attributes readers act on: complete (bool), frames_done / n_frames (counts)."""
    if "complete" in attrs and attrs["complete"] not in (True, False):  # 0/1: older files
        raise damaged(path, "complete", f"{attrs['complete']!r}, expected true or false")
    if "grid" in attrs and attrs["grid"] not in GRIDS:
        raise damaged(path, "grid", f"{attrs['grid']!r}, expected one of {', '.join(GRIDS)}")
    for key in ("frames_done", "n_frames"):
        v = attrs.get(key)
        if key in attrs and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise damaged(path, key, f"{v!r}, expected a count of frames")
    if attrs.get("complete") == 1 and attrs.get("frames_done", count) != count:
        raise damaged(
            path, "frames_done", f"{attrs['frames_done']}, expected {count} in a complete result"
        )


def _all_chunks(path: Path, name: str, a: Any) -> None:
    """A zarr array with every chunk stored (HDF5 files have no missing chunks)."""
    try:
        have, total = int(a.nchunks_initialized), int(a.nchunks)
    except AttributeError:  # HDF5
        return
    if have < total:
        raise damaged(path, name, f"{total - have} of its {total} chunk(s) missing (deleted?)")


def read_frames(path: Path, key: str, array: Any, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) of a result's dB dataset as float32: a chunk that does not decode
    and NaN/Inf (which no writer stores; a missing zarr chunk reads as NaN) are one line."""
    try:
        out = np.asarray(array[start:stop], np.float32)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - zstd/lzf/blosc errors, truncated chunks
        raise damaged(
            path, f"{key}_db", f"frames {start}:{stop} do not decode ({first_line(exc, 120)})"
        ) from None
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).reshape(len(out), -1).all(1))[0]) + start
        raise damaged(
            path,
            f"{key}_db",
            f"frame {bad} holds NaN or Inf (a missing or altered chunk), expected finite dB",
        )
    return out


def check_frames_decode(path: Path, arrays: dict[str, Any], done: np.ndarray) -> None:
    """Every written frame of a result's dB ``arrays`` (key → array, as ``Result.arrays``)
    decodes to finite dB: the checks on open read no frames, so a corrupt compressed chunk
    surfaced only when that frame was read, and ``info`` called such a store fine (issue 31
    item 6). ``done``: which frames were written (others are not read). Reads every written
    frame once, one at a time; a chunk that does not decode, or NaN/Inf, is one line."""
    frames = np.flatnonzero(done)
    for key in sorted(arrays):
        for f in frames:
            read_frames(path, key, arrays[key], int(f), int(f) + 1)
