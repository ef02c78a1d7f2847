"""napari reader: scans (every layout load_scan reads) and usdehaze result files.

A scan opens as one B-mode image layer in dB (0 dB = frame maximum, limits [-60, 0]); a result
file as input / tissue / haze layers (and the posterior std when stored) sharing one group, so
the widgets link their contrast, placed at the frames they came from (``source_frames``). Sector
scans are scan-converted with their mm geometry. Scans and results longer than LAZY_FRAMES
frames are read lazily (dask): a frame is read, log-compressed and scan-converted when napari
shows it or a widget uses it, so a long cine loop opens at once and never sits in memory whole.
A file without pixel coordinates opens on the grid the reader inferred (from the file's
description) or assumed; the layer name says "(geometry assumed)" and a warning notification
says which.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.napari._layers import META_KEY, Native, image_layer_data
from usdehaze.ultrasound.logcomp import DEFAULT_DYNAMIC_RANGE

ReaderFunction = Callable[[Any], list[tuple]]
LAZY_FRAMES = 16  # scans and results with more frames are read on demand


def _single_path(path: Any) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, Path)):
        return None
    return Path(path)


def _can_read(path: Path) -> bool:
    from usdehaze.ultrasound.results import is_result_file

    if not path.exists():
        return False
    if is_result_file(path):
        return True
    from usdehaze.ultrasound.io import load_scan

    scan = load_scan(path)
    scan.close()
    return True


def check_readable(path: Path) -> None:
    """Raise the one line ``usdehaze info`` gives when usdehaze cannot open ``path`` (asked
    before a window opens, so a refused file never leaves one behind)."""
    try:
        ok = _can_read(path)
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - any other failure: the generic line
        ok = False
    if not ok:
        raise UsageError(f"{path}: not a scan or usdehaze result file usdehaze can read")


def offered(path: Path) -> bool:
    """Whether napari offers usdehaze this path: a folder (the manifest accepts directories)
    or a file whose name matches one of the manifest's patterns."""
    from fnmatch import fnmatch

    from usdehaze.ultrasound.io import filename_patterns

    if path.is_dir():
        return True
    name = path.name.lower()
    return path.is_file() and any(fnmatch(name, p) for p in filename_patterns())


def refusal(reason: str) -> ReaderFunction:
    """A reader that raises ``reason`` (the one line ``usdehaze info`` prints): napari shows
    it instead of its generic "refused the file"."""

    def refuse(path: Any) -> list[tuple]:
        raise UsageError(reason)

    return refuse


def napari_get_reader(path: Any) -> ReaderFunction | None:
    """The reader for ``path`` when it is a scan or result file usdehaze can open; for a file
    of a kind usdehaze reads (its suffix) that it cannot open, a reader raising the reason
    (napari only calls a reader the user or the reader preference chose); else None."""
    try:
        p = _single_path(path)
        if p is None:
            return None
        if _can_read(p):
            return read
    except UsageError as exc:  # the file is not one usdehaze reads: say why when asked
        return refusal(str(exc)) if p is not None and offered(p) else None
    except Exception:  # noqa: BLE001 - napari asks about any file; "no" is the answer
        return None
    return None


def _lazy_frames(
    n: int, shape: tuple[int, int], read: Callable[[int], np.ndarray], dtype: Any
) -> Any:
    """A dask array (n, z, x) whose frame i is ``read(i)`` (one frame, (z, x) or (1, z, x)),
    one chunk per frame; the file stays open while the array is referenced."""
    import dask.array as da

    nz, nx = shape

    def block(block_info=None) -> np.ndarray:
        i = block_info[None]["chunk-location"][0]
        return np.asarray(read(i), dtype).reshape(1, nz, nx)

    meta = np.empty((0, 0, 0), dtype)
    return da.map_blocks(block, chunks=((1,) * n, (nz,), (nx,)), dtype=dtype, meta=meta)


def scan_native(scan: Any, db: Any, **kwargs: Any) -> Native:
    """A scan's dB frames with its pixel geometry and path (``kwargs``: Native's others)."""
    geometry = (np.asarray(scan.x), np.asarray(scan.z), scan.grid, dict(scan.axes))
    return Native(db, *geometry, source=str(scan.path), **kwargs)


def scan_layer_data(
    path: str | Path,
    key: str | None = None,
    dynamic_range: float = DEFAULT_DYNAMIC_RANGE,
    lazy: bool | None = None,
) -> list[tuple]:
    """One B-mode layer for a scan (``key``: dataset or zea extra such as 'tissue');
    ``lazy``: frames read on demand (default: when the scan has more than LAZY_FRAMES)."""
    from usdehaze.ultrasound.images import db_reader
    from usdehaze.ultrasound.io import load_scan

    scan = load_scan(path, key)
    lazy = scan.n_frames > LAZY_FRAMES if lazy is None else lazy
    bmode = None
    if scan.domain == "display":  # the range its grey levels show (the file's, else assumed)
        from usdehaze.ultrasound.bmode import DisplayFrames

        dynamic_range = scan.display.assuming(dynamic_range).dynamic_range
        bmode = DisplayFrames.of(scan)
    try:
        read_db = db_reader(scan, dynamic_range)  # B-mode grey levels: their display map
        if lazy:
            n, shape = scan.n_frames, scan.shape
            iq = _lazy_frames(n, shape, lambda i: scan.frames(i, i + 1), np.complex64)
            db = _lazy_frames(n, shape, lambda i: read_db(i, i + 1), np.float32)
        else:
            iq = scan.frames(0, scan.n_frames)
            db = read_db(0, scan.n_frames)
        native = scan_native(
            scan,
            db,
            role="input",
            dynamic_range=dynamic_range,
            group=f"{scan.path}:{scan.key}",
            attrs={
                "layout": scan.layout,
                "key": scan.key,
                "magnitude_only": scan.magnitude_only,
                "domain": scan.domain,
            },
            iq=None if scan.magnitude_only else iq,
            bmode=bmode,
            note=scan.geometry_note or "",
        )
    finally:
        if not lazy:
            scan.close()
    name = Path(path).stem + (" (geometry assumed)" if native.note else "")
    return [image_layer_data(native, name)]


def result_layer_data(path: str | Path, lazy: bool | None = None) -> list[tuple]:
    """input, tissue, haze (and *_std) layers of a result file, one group; ``lazy``: frames
    read on demand (default: more than LAZY_FRAMES frames)."""
    from usdehaze.napari._layers import placement
    from usdehaze.ultrasound.results import IMAGE_KEYS, STD_KEYS, load_result

    res = load_result(path)
    lazy = res.n_frames > LAZY_FRAMES if lazy is None else lazy
    try:
        keys = [k for k in (*IMAGE_KEYS, *STD_KEYS) if k in res.arrays]
        if lazy:
            shape = tuple(res.arrays["input"].shape[1:])
            arrays = {
                k: _lazy_frames(
                    res.n_frames, shape, lambda i, k=k: res.frames(k, i, i + 1), np.float32
                )
                for k in keys
            }
        else:
            arrays = {k: res.frames(k) for k in keys}
        dr = float(res.attrs.get("dynamic_range", DEFAULT_DYNAMIC_RANGE))
        geometry = (np.asarray(res.x), np.asarray(res.z), res.grid, dict(res.axes))
        attrs = dict(res.attrs)
    finally:
        if not lazy:
            res.close()
    stem = Path(path).stem
    n = len(arrays["input"])
    frames = attrs.get("source_frames")
    where = placement(frames) if isinstance(frames, list) and len(frames) == n else {}
    out = []
    for k, db in arrays.items():
        native = Native(
            db,
            *geometry,
            source=str(path),
            role=k,
            dynamic_range=dr,
            group=str(path),
            input_db=arrays["input"],
            attrs=attrs,
            **where,
        )
        out.append(image_layer_data(native, f"{stem} {k}", visible=k in ("input", "tissue")))
    return out


def read(path: Any) -> list[tuple]:
    """Layer data tuples for one scan or result file."""
    from usdehaze.ultrasound.results import is_result_file

    p = _single_path(path)
    if is_result_file(p):
        return result_layer_data(p)
    layers = scan_layer_data(p)
    note = layers[0][1]["metadata"][META_KEY].note
    if note:  # the mm grid is inferred or invented: say so where the user looks
        from napari.utils.notifications import show_warning

        show_warning(f"usdehaze: {p.name}: {note}")
    return layers
