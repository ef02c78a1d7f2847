"""Result files of a dehazing run: dB images of input, tissue and haze (+ posterior std), with
the input's pixel geometry and everything needed to reproduce the run.

HDF5 by default, a zarr directory store when the path ends in ``.zarr``. Frames stream in one at
a time; the file is built under a temporary name and renamed at the end, so the target is either
the old file or a complete new one. An interrupted run (Ctrl-C) still leaves a valid file holding
the frames finished so far, marked ``complete = False``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.atomic import atomic_path
from usdehaze.errors import UsageError
from usdehaze.outputs import MARKER, write_error

IMAGE_KEYS = ("input", "tissue", "haze")
STD_KEYS = ("tissue_std", "haze_std")
RESULT_FORMAT = "usdehaze-result/1"
ZEA_IMAGE = "tracks/track_0/data/image"


def refuse_non_finite(
    path: Path, i: int, key: str, frame: np.ndarray, kept: int, how: str = ""
) -> None:
    """One line when frame ``i``'s ``key`` estimate holds NaN or Inf (a diverged run), saying
    how many finished frames are ``kept`` (and ``how``): no output ever holds them as data."""
    if not np.isfinite(frame).all():
        raise UsageError(
            f"{path}: frame {i}: the {key} estimate holds NaN or Inf (the run diverged: "
            f"settings or weights out of range?); {kept} finished frame(s) kept{how}"
        )


def _is_zarr(path: Path) -> bool:
    """A zarr store, or a group inside one (``out.zarr/scans/000`` of ``usdehaze run-many``)."""
    path = Path(path)
    return path.suffix == ".zarr" or any(p.suffix == ".zarr" for p in path.parents)


def init_result_group(
    root,
    n_frames: int,
    shape: tuple[int, int],
    keys: tuple[str, ...],
    geometry: tuple[np.ndarray, np.ndarray, str, dict[str, Any]],
    zarr_format: bool,
    writer: str = "run",
    masks: dict[str, np.ndarray] | None = None,
) -> None:
    """Create the result layout in an open HDF5 or zarr group: one chunk per frame (HDF5: lzf
    where there are masks), geometry,
    ``masks`` (the scan's (z, x) "sector" / "overlay" / "colour" masks, as ``mask_NAME``),
    and the format attributes (``complete = False`` until the writer says otherwise), with the
    usdehaze output marker naming ``writer`` (usdehaze.outputs)."""
    chunks = (1, *shape)
    # float32 dB of whole IQ frames does not compress: lzf stored 40 frames of 256 × 128 at a
    # ratio of 1.00 and spent 8 ms a frame trying; frames with a mask (a B-mode fan on a
    # constant background) do compress
    compression = "lzf" if masks else None
    for k in keys:
        if zarr_format:
            root.create_array(
                f"{k}_db",
                shape=(n_frames, *shape),
                chunks=chunks,
                dtype="float32",
                fill_value=np.nan,
                compressors=checksummed(),
            )
        else:
            root.create_dataset(
                f"{k}_db",
                shape=(n_frames, *shape),
                maxshape=(None, *shape),
                chunks=chunks,
                dtype="float32",
                compression=compression,
                fletcher32=True,  # a damaged chunk is refused on read, not read as data
            )
    x, z, grid, axes = geometry
    put_array(root, "x", np.asarray(x, np.float32), zarr_format)
    put_array(root, "z", np.asarray(z, np.float32), zarr_format)
    for name, value in axes.items():
        put_array(root, f"axes_{name}", np.asarray(value, np.float64), zarr_format)
    for name, value in (masks or {}).items():
        put_array(root, f"mask_{name}", np.asarray(value, bool).astype(np.uint8), zarr_format)
    set_attrs(
        root,
        {
            "format": RESULT_FORMAT,
            MARKER: writer,
            "grid": grid,
            "n_frames": n_frames,
            "complete": False,
            "frames_done": 0,
        },
    )


def checksummed() -> tuple[Any, ...]:
    """zarr compressors of every result array: zstd with its content checksum, so a chunk
    altered on disk fails to decode (one line) instead of reading as other numbers."""
    from zarr.codecs import ZstdCodec

    return (ZstdCodec(level=0, checksum=True),)


def put_array(root, name: str, data: np.ndarray, zarr_format: bool) -> None:
    """A small dataset (positions, axes, masks) with a checksum: zstd's in zarr, Fletcher-32
    in HDF5 (chunked, so the filter applies)."""
    if zarr_format:
        root.create_array(name, data=data, compressors=checksummed())
    elif data.size:
        root.create_dataset(name, data=data, chunks=data.shape, fletcher32=True)
    else:
        root[name] = data


@contextlib.contextmanager
def store_lock(out: Path) -> Iterator[None]:
    """Hold ``.NAME.zarr.lock`` beside a zarr output for a whole write (filelock: an OS file
    lock, released by the OS if the process dies): every writer of a store (run-many for its
    whole run, run's ResultWriter) takes it, so a second writer is refused in one line instead
    of replacing a store another process is still writing."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(out.parent / f".{out.name}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(
            f"{out}: another usdehaze run-many (or run) is writing this store (lock "
            f"{lock.lock_file}); wait until it ends, then rerun to resume"
        ) from None
    except OSError as exc:
        raise UsageError(f"{out}: cannot lock the store ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def set_attrs(root, attrs: dict[str, Any]) -> None:
    """Attributes on an HDF5/zarr group; dicts and mixed lists stored as JSON strings."""
    for k, v in attrs.items():
        if isinstance(v, (dict, list, tuple)) and not (
            isinstance(v, (list, tuple)) and v and all(isinstance(i, (int, float)) for i in v)
        ):
            v = json.dumps(v, default=str)
        root.attrs[k] = v


class ResultWriter:
    """Stream dehazed frames into a result file; use as a context manager.

    ``with ResultWriter(path, n_frames, shape, x=..., z=...) as w: w.write(i, input_db=..., ...)``.
    Frames must be written in order 0, 1, 2...; on an exception the frames written so far are
    kept (``complete = False``) and the exception propagates. A failed write (disk full,
    permission) keeps nothing: the temporary is removed, the old file stays, and a one-line
    UsageError naming the file is raised. ``writer`` goes into the output marker.
    """

    def __init__(
        self,
        path: str | Path,
        n_frames: int,
        shape: tuple[int, int],
        *,
        x: np.ndarray,
        z: np.ndarray,
        grid: str = "cartesian",
        axes: dict[str, Any] | None = None,
        with_std: bool = False,
        attrs: dict[str, Any] | None = None,
        writer: str = "run",
        masks: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.path = Path(path)
        self._masks = dict(masks or {})
        self.writer = writer
        self._failed = False  # a write failed: nothing of this run is kept
        self.n_frames = int(n_frames)
        self.shape = tuple(shape)
        self.keys = IMAGE_KEYS + (STD_KEYS if with_std else ())
        self.frames_done = 0
        self._geometry = (np.asarray(x, np.float32), np.asarray(z, np.float32), grid, axes or {})
        self._attrs = dict(attrs or {})
        self._ctx = None
        self._root = None
        self._h5 = None
        self._lock = contextlib.ExitStack()  # the store lock of a zarr output while writing

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        """Add or replace root attributes. They are written when the file is finished, also
        when a run is interrupted, so what is known part-way (blank frames so far) is kept."""
        self._attrs.update(attrs)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> ResultWriter:
        self._lock = contextlib.ExitStack()
        if _is_zarr(self.path):  # a run-many may be writing this store: never replace it
            self._lock.enter_context(store_lock(self.path))
        try:
            self._ctx = atomic_path(self.path)
            tmp = self._ctx.__enter__()
        except OSError as exc:
            self._lock.close()
            raise write_error(self.path, exc) from exc
        except BaseException:
            self._lock.close()
            raise
        try:
            self._root = self._open(tmp)
        except BaseException as exc:
            self._drop(exc)
            self._lock.close()
            if isinstance(exc, OSError):
                raise write_error(self.path, exc) from exc
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from usdehaze.atomic import deferred_interrupts

        with self._lock, deferred_interrupts():  # a second Ctrl-C does not tear the save
            self._exit(exc_type, exc, tb)

    def _exit(self, exc_type, exc, tb) -> None:
        complete = exc_type is None and self.frames_done == self.n_frames
        keep = not self._failed and (self.frames_done > 0 or exc_type is None)
        try:
            if keep:
                self._finish(complete)
            self._close_root()
        except BaseException as err:  # the disk filled while finishing: keep nothing
            self._drop(err)
            if isinstance(err, OSError):
                raise write_error(self.path, err) from err
            raise
        if not keep:  # nothing worth keeping: drop the temp
            err = exc if exc is not None else RuntimeError(f"{self.path}: write failed")
            self._ctx.__exit__(type(err), err, tb)
            return
        try:
            self._ctx.__exit__(None, None, None)  # rename onto target
        except OSError as err:
            raise write_error(self.path, err) from err

    def _drop(self, exc: BaseException) -> None:
        """Close what is open and remove the temporary (the target is left as it was)."""
        self._failed = True
        try:
            self._close_root()
        except BaseException:  # noqa: BLE001 - the first error is the one reported
            pass
        self._root = None
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)

    def _open(self, tmp: Path):
        if _is_zarr(self.path):
            import zarr

            root = zarr.open_group(str(tmp), mode="w")
        else:
            from usdehaze.atomic import H5Output

            self._h5 = H5Output(tmp)  # a full disk gives an OSError, not a crash in libhdf5
            root = self._h5.file
        init_result_group(
            root,
            self.n_frames,
            self.shape,
            self.keys,
            self._geometry,
            _is_zarr(self.path),
            self.writer,
            self._masks,
        )
        return root

    def _write_zea_image(self) -> None:
        """The dehazed (tissue) image also in the zea ≥ 0.1 layout, so zea opens the file."""
        x, z, _, _ = self._geometry
        coords = np.zeros((*self.shape, 3), np.float32)
        coords[..., 0], coords[..., 2] = x, z
        g = self._root.require_group(ZEA_IMAGE)
        g.create_dataset(
            "values", data=np.minimum(self._root["tissue_db"][()], 0.0), chunks=(1, *self.shape)
        )
        g.create_dataset("coordinates", data=coords)
        self._root["tracks/track_0/transmit_only"] = False
        self._root.attrs["zea_version"] = "0.1.8"

    def write(self, i: int, **frames: np.ndarray) -> None:
        """Write frame ``i`` (must equal the number of frames written so far) for every key."""
        if i != self.frames_done:
            raise ValueError(
                f"frames must be written in order: expected {self.frames_done}, got {i}"
            )
        missing = [k for k in self.keys if k not in frames]
        if missing:
            raise ValueError(f"frame {i}: missing {missing}")
        for k in self.keys:  # a result never holds NaN/Inf: the run stops at the first one
            refuse_non_finite(self.path, i, k, frames[k], self.frames_done, ", complete = false")
        try:
            for k in self.keys:
                self._root[f"{k}_db"][i] = np.asarray(frames[k], np.float32)
            if self._h5 is not None:
                self._h5.check()
        except OSError as exc:
            self._failed = True  # __exit__ then drops the temporary and keeps the old file
            raise write_error(self.path, exc) from exc
        self.frames_done += 1

    def write_frames(self, i: int, **frames: np.ndarray) -> None:
        """Write frames ``i``, ``i + 1``, ... (each key (n, z, x)) in one write per key: the
        same file as n calls of :meth:`write`, which a batch holding NaN or Inf falls back to
        (the frames before the first bad one are kept)."""
        n = len(next(iter(frames.values()))) if frames else 0
        if i != self.frames_done:
            raise ValueError(
                f"frames must be written in order: expected {self.frames_done}, got {i}"
            )
        missing = [k for k in self.keys if k not in frames]
        if missing or not all(np.isfinite(frames[k]).all() for k in self.keys):
            for j in range(n):
                self.write(i + j, **{k: v[j] for k, v in frames.items()})
            return
        try:
            for k in self.keys:
                self._root[f"{k}_db"][i : i + n] = np.asarray(frames[k], np.float32)
            if self._h5 is not None:
                self._h5.check()
        except OSError as exc:
            self._failed = True
            raise write_error(self.path, exc) from exc
        self.frames_done += n

    def _finish(self, complete: bool) -> None:
        if self.frames_done < self.n_frames:
            for k in self.keys:
                self._root[f"{k}_db"].resize((self.frames_done, *self.shape))
        if not _is_zarr(self.path) and self.frames_done:
            self._write_zea_image()
        own = {MARKER: self.writer, "complete": complete, "frames_done": self.frames_done}
        attrs = {**self._attrs, **own}  # copied attrs never name another writer
        planned = attrs.get("source_frames")
        if isinstance(planned, (list, tuple)) and len(planned) > self.frames_done:
            # interrupted: list the source frames the file holds, and the ones asked for apart
            attrs["source_frames"] = [int(i) for i in planned[: self.frames_done]]
            attrs["source_frames_requested"] = [int(i) for i in planned]
        set_attrs(self._root, attrs)

    def _close_root(self) -> None:
        """Close the file; raises the first write error of an HDF5 file."""
        h5, self._h5, root, self._root = self._h5, None, self._root, None
        if h5 is not None:
            h5.close()
        elif root is not None and hasattr(root, "close"):
            root.close()


@dataclass
class Result:
    """A result file opened read-only: lazy dB arrays, geometry and the run's attributes."""

    path: Path
    arrays: dict[str, Any]
    x: np.ndarray
    z: np.ndarray
    grid: str
    axes: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    _handle: Any = None
    done: np.ndarray | None = None  # a run-many group: which frames are dehazed yet
    # (z, x) masks of a display-domain input: "sector" (dehazed and measured), "overlay" and
    # "colour" (burned-in pixels copied from the input, never measured)
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.arrays["input"].shape[0])

    def frames(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """dB frames of ``key`` (input, tissue, haze, tissue_std, haze_std)."""
        if key not in self.arrays:
            raise UsageError(
                f"{self.path}: key '{key}': not in this result file, expected one of {sorted(self.arrays)}"
            )
        stop = self.n_frames if stop is None else stop
        if self.done is not None:
            todo = [int(i) for i in np.flatnonzero(~self.done[start:stop]) + start]
            if todo:
                shown = f"{todo[:5]}"[:-1] + (", ...]" if len(todo) > 5 else "]")
                raise UsageError(
                    f"{self.path}: frame(s) {shown} not dehazed yet (an unfinished run-many "
                    f"store, {int(self.done.sum())}/{self.done.size} done); rerun usdehaze "
                    "run-many to finish them, or choose frames that are done"
                )
        from usdehaze.ultrasound.result_check import read_frames

        return read_frames(self.path, key, self.arrays[key], start, stop)

    def close(self) -> None:
        if self._handle is not None and hasattr(self._handle, "close"):
            self._handle.close()

    def __enter__(self) -> Result:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def is_result_file(path: str | Path) -> bool:
    """True when ``path`` is a usdehaze result file (HDF5 or zarr)."""
    from usdehaze.limits import special_file

    path = Path(path)
    if special_file(path) is not None:  # a FIFO would wait for a writer: never opened here
        return False
    try:
        if _is_zarr(path):
            import zarr

            return zarr.open_group(str(path), mode="r").attrs.get("format") == RESULT_FORMAT
        import h5py

        with h5py.File(path, "r") as f:
            return _attr(f.attrs.get("format")) == RESULT_FORMAT
    except Exception:
        return False


def _listing(root: Any, path: Path) -> tuple[list[str], dict[str, Any]]:
    """The names of a result's datasets and its attributes; unreadable metadata (a broken
    zarr.json or .zarray, a damaged HDF5 header) is one line naming the file."""
    from usdehaze.errors import first_line

    try:
        if hasattr(root, "array_keys"):
            names = list(root.array_keys())
        else:
            import h5py

            names = [n for n in root.keys() if isinstance(root.get(n), h5py.Dataset)]
        for n in names:
            root[n].shape  # noqa: B018 - opening each array reads (and checks) its metadata
        attrs = {k: _attr(v) for k, v in root.attrs.items()}
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - any parse error of damaged metadata
        from usdehaze.ultrasound.result_check import damaged

        key = _broken_metadata(path)
        if key is not None:
            raise damaged(path, key, f"metadata does not parse ({first_line(exc, 120)})") from None
        raise UsageError(
            f"{path}: unreadable metadata ({first_line(exc, 120)}) (a damaged result file)"
        ) from None
    return names, attrs


def _broken_metadata(path: Path) -> str | None:
    """The zarr array whose metadata file (zarr.json, .zarray) is not JSON, to name it."""
    import json

    if not path.is_dir():
        return None
    for child in sorted(path.iterdir()):
        for meta in ("zarr.json", ".zarray", ".zattrs"):
            f = child / meta
            if f.is_file():
                try:
                    json.loads(f.read_text())
                except (ValueError, UnicodeDecodeError):
                    return child.name
    return None


def _small(root: Any, path: Path, name: str) -> np.ndarray:
    """A small dataset (positions, axes, masks, done) read whole; a chunk that does not
    decode is one line naming it."""
    from usdehaze.errors import first_line
    from usdehaze.ultrasound.result_check import damaged

    try:
        return np.asarray(root[name][...])
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - decompression errors, truncated chunks
        raise damaged(path, name, f"does not decode ({first_line(exc, 120)})") from None


def load_result(path: str | Path) -> Result:
    """Open a result file read-only (arrays stay on disk until sliced)."""
    from usdehaze.limits import not_special

    path = not_special(path, "result file")
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not is_result_file(path):
        raise UsageError(
            f"{path}: not a usdehaze result file (attribute 'format' != '{RESULT_FORMAT}')"
        )
    from usdehaze.ultrasound.result_check import check_finite, check_result

    if _is_zarr(path):
        import zarr

        root = zarr.open_group(str(path), mode="r")
        handle = None
    else:
        import h5py

        from usdehaze.hdf5 import only_inside

        root = h5py.File(path, "r")
        handle = root
    try:
        if handle is not None:
            only_inside(root, path)
        names, attrs = _listing(root, path)
        check_result(root, path, names, attrs)
        arrays = {n[: -len("_db")]: root[n] for n in names if n.endswith("_db")}
        axes = {n[len("axes_") :]: _small(root, path, n) for n in names if n.startswith("axes_")}
        done = _small(root, path, "done").astype(bool) if "done" in names else None
        masks = {
            n[len("mask_") :]: _small(root, path, n).astype(bool)
            for n in names
            if n.startswith("mask_")
        }
        x, z = _small(root, path, "x"), _small(root, path, "z")
        check_finite(path, {"x": x, "z": z, **{f"axes_{k}": v for k, v in axes.items()}})
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    return Result(
        path=path,
        arrays=arrays,
        x=x,
        z=z,
        grid=str(attrs.get("grid", "cartesian")),
        axes=axes,
        attrs=attrs,
        _handle=handle,
        done=done,
        masks=masks,
    )
