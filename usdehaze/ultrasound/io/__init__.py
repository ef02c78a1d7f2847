"""Scan readers behind one entry point, registered in ``READERS``, and the zea-layout writer.

``load_scan(path, key=None)`` asks the registered readers (``registry.py``), highest priority
first, which one detects the file: DICOM, videos and image stacks (B-mode grey levels), zea ≥ 0.1,
zea legacy (usbmd), USTB UFF, then plain HDF5/zarr arrays. Files are opened read-only and frames
are read on demand. Every module of this package but the private ones (``_*``), ``registry`` and
writers (``write_*``) is imported here, so a new reader is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from usdehaze.errors import UsageError
from usdehaze.limits import not_special
from usdehaze.ultrasound.io.registry import (
    READERS,
    Reader,
    Source,
    by_priority,
    filename_patterns,
    pick,
    register_reader,
    suffixes,
)
from usdehaze.ultrasound.io.zea import write_scan
from usdehaze.ultrasound.scan import Scan

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _m.name.startswith(("_", "write_")) and _m.name != "registry":
        importlib.import_module(f"{__name__}.{_m.name}")

# the layouts load_scan tries, in the order it asks them (derived from the registry)
LAYOUTS = tuple(r.name for r in by_priority())

__all__ = [
    "LAYOUTS",
    "READERS",
    "Reader",
    "Source",
    "filename_patterns",
    "load_scan",
    "register_reader",
    "suffixes",
    "write_scan",
]

# what a reader raises on a damaged or malformed file (beyond its own UsageErrors): HDF5 read and
# filter errors, zarr codec and metadata errors, arrays of the wrong kind deep in numpy
READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError, AttributeError)


def load_scan(path: str | Path, key: str | None = None) -> Scan:
    """Open a scan file read-only; ``key`` picks a dataset (or a zea extra like 'tissue').

    Anything wrong with the file is one UsageError naming it (and the key where the reader
    knows it); frames are read later, by ``Scan.frames``, with the same rule."""
    path = not_special(path, "scan file")
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    src = Source(path, key)
    try:
        scan = pick(src).read(src)
    except BaseException as exc:
        src.close()
        raise _one_line(exc, path, key) from None
    src.close()  # the HDF5 file stays open only when the scan took it
    return scan


def _one_line(exc: BaseException, path: Path, key: str | None) -> BaseException:
    """The error a failed read raises: its own UsageError, or one line for anything else."""
    if isinstance(
        exc, UsageError
    ):  # the readers' own one-line errors (a UsageError is a ValueError)
        return exc
    if isinstance(exc, MemoryError):
        return UsageError(f"{path}: the file's metadata does not fit in memory")
    if isinstance(exc, RecursionError):
        return UsageError(f"{path}: not a scan usdehaze can read (nested too deeply)")
    if isinstance(exc, READ_ERRORS):
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        where = f"{path}: key '{key}'" if key else f"{path}"
        return UsageError(
            f"{where}: unreadable or malformed scan file ({type(exc).__name__}: {first})"
        )
    return exc  # KeyboardInterrupt, SystemExit: as they are
