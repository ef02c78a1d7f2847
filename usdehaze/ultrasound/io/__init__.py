"""Readers for beamformed IQ scans behind one entry point, and the zea-layout writer.

``load_scan(path, key=None)`` tries, in order: zea ≥ 0.1, zea legacy (usbmd), USTB UFF, and plain
HDF5/zarr arrays. Files are opened read-only and frames are read on demand.
"""

from __future__ import annotations

from pathlib import Path

from usdehaze.errors import UsageError
from usdehaze.ultrasound.io import legacy, plain, uff, zea
from usdehaze.ultrasound.io._common import open_h5
from usdehaze.ultrasound.io.zea import write_scan
from usdehaze.ultrasound.scan import Scan

LAYOUTS = ("zea", "zea-legacy", "uff", "plain")

__all__ = ["LAYOUTS", "load_scan", "write_scan"]


def _h5_datasets(f) -> dict:
    import h5py

    out = {}
    f.visititems(
        lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None
    )
    return out


# what a reader raises on a damaged or malformed file (beyond its own UsageErrors): HDF5 read and
# filter errors, zarr codec and metadata errors, arrays of the wrong kind deep in numpy
READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError, AttributeError)


def load_scan(path: str | Path, key: str | None = None) -> Scan:
    """Open a scan file read-only; ``key`` picks a dataset (or a zea extra like 'tissue').

    Anything wrong with the file is one UsageError naming it (and the key where the reader
    knows it); frames are read later, by ``Scan.frames``, with the same rule."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    try:
        return _load(path, key)
    except UsageError:  # the readers' own one-line errors (a UsageError is a ValueError)
        raise
    except MemoryError:
        raise UsageError(f"{path}: the file's metadata does not fit in memory") from None
    except RecursionError:
        raise UsageError(f"{path}: not a scan usdehaze can read (nested too deeply)") from None
    except READ_ERRORS as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        where = f"{path}: key '{key}'" if key else f"{path}"
        raise UsageError(
            f"{where}: unreadable or malformed scan file ({type(exc).__name__}: {first})"
        ) from None


def _load(path: Path, key: str | None) -> Scan:
    if path.is_dir() or path.suffix == ".zarr":
        return _load_zarr(path, key)
    f = open_h5(path)
    try:
        if zea.detect(f):
            return zea.read(path, f, key)
        if legacy.detect(f) and (key is None or key == legacy.KEY):
            return legacy.read(path, f, key)
        if uff.detect(f) and uff.owns(f, key):
            return uff.read(path, f, key)
        return plain.read(path, _h5_datasets(f), key, f.close, "hdf5")
    except BaseException:
        f.close()
        raise


def _load_zarr(path: Path, key: str | None) -> Scan:
    import zarr

    try:
        root = zarr.open(str(path), mode="r")
    except Exception:  # noqa: BLE001 - zarr raises several types for non-stores
        raise UsageError(f"{path}: not a zarr store") from None
    if hasattr(root, "shape"):  # a bare array
        return plain.read(path, {"": root}, key if key is not None else "", fmt="zarr")
    arrays = {}

    def walk(g, prefix=""):
        for name, a in g.arrays():
            arrays[prefix + name] = a
        for name, sub in g.groups():
            walk(sub, prefix + name + "/")

    walk(root)
    return plain.read(path, arrays, key, fmt="zarr")
