"""READERS: the registered scan readers (name, suffixes, priority, detect, read) and the one pick.

``load_scan`` asks each reader, highest ``priority`` first, whether it ``detect``s the file (a
cheap look: a suffix, magic bytes, an HDF5 group) and reads it with the first that does. The
file suffixes napari's reader pattern lists and ``usdehaze adapt`` looks for in folders are the
readers' ``suffixes``, so adding a reader is one new module in this package (see
docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from usdehaze.core.registry import Registry
from usdehaze.errors import UsageError
from usdehaze.hdf5 import OutsideData
from usdehaze.ultrasound.io._common import HDF5_SUFFIXES
from usdehaze.ultrasound.scan import Scan


class Source:
    """A file or folder being opened (path, key) and what detecting it needs, read once: its
    first bytes and, for HDF5, the open file (kept by the reader that ``take_h5``s it)."""

    def __init__(self, path: Path, key: str | None) -> None:
        self.path, self.key = Path(path), key
        self._h5: Any = None
        self._h5_tried = False
        self._owned = False
        self._head: bytes | None = None

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()

    def head(self, n: int = 132) -> bytes:
        """The file's first ``n`` bytes (b"" for a folder or an unreadable file)."""
        if self._head is None or len(self._head) < n:
            try:
                with open(self.path, "rb") as fh:
                    self._head = fh.read(n)
            except OSError:
                self._head = b""
        return self._head[:n]

    def h5(self) -> Any:
        """The file opened as HDF5 (read-only), or None when it is not one."""
        if not self._h5_tried:
            self._h5_tried = True
            import h5py

            if self.path.is_file() and h5py.is_hdf5(self.path):
                from usdehaze.ultrasound.io._common import open_h5

                try:
                    self._h5 = open_h5(self.path)
                except OutsideData:  # HDF5 pointing at other files: refused by every reader
                    raise
                except UsageError:
                    self._h5 = None
        return self._h5

    def take_h5(self) -> Any:
        """The open HDF5 file, now the reader's to close (via its Scan); not HDF5: UsageError."""
        f = self.h5()
        if f is None:
            raise UsageError(f"{self.path}: not an HDF5 file (or unreadable)")
        self._owned = True
        return f

    def close(self) -> None:
        """Close the HDF5 file unless a reader took it."""
        if self._h5 is not None and not self._owned:
            self._h5.close()
        self._h5 = None


class Reader:
    """A registered reader: ``name`` (the scan's layout), ``suffixes`` it reads, ``priority``
    (higher is asked first), ``detect(src)`` and ``read(src) -> Scan``."""

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    # suffixes as common outside ultrasound (photos, microscopy TIFF, GIFs): napari is not told
    # usdehaze reads every such file (it would be offered, even preselected, for each one);
    # load_scan, the CLI and ``usdehaze view`` still read them
    generic: ClassVar[tuple[str, ...]] = ()
    priority: ClassVar[int] = 0
    description: ClassVar[str] = ""

    @classmethod
    def detect(cls, src: Source) -> bool:
        """Whether this reader reads ``src`` (cheap: suffix, magic bytes, a group's name)."""
        raise NotImplementedError

    @classmethod
    def read(cls, src: Source) -> Scan:
        """The Scan of ``src`` (frames read on demand); anything wrong: one UsageError."""
        raise NotImplementedError


class HDF5Reader(Reader):
    """A reader of one HDF5 layout, from its module's functions: ``detect_h5(f)`` (the open file
    holds the layout), ``owns(f, key)`` (the key, if any, points into it; default any) and
    ``read_h5(path, f, key)`` (the Scan, keeping ``f`` open)."""

    suffixes: ClassVar[tuple[str, ...]] = HDF5_SUFFIXES

    @staticmethod
    def detect_h5(f: Any) -> bool:
        """Whether the open HDF5 file holds this layout."""
        raise NotImplementedError

    @staticmethod
    def owns(f: Any, key: str | None) -> bool:
        """Whether ``key`` (None: the default) is one this reader reads."""
        return True

    @staticmethod
    def read_h5(path: Path, f: Any, key: str | None) -> Scan:
        """The Scan of the open file (kept open until the Scan closes)."""
        raise NotImplementedError

    @classmethod
    def detect(cls, src: Source) -> bool:
        f = src.h5()
        return f is not None and cls.detect_h5(f) and cls.owns(f, src.key)

    @classmethod
    def read(cls, src: Source) -> Scan:
        return cls.read_h5(src.path, src.take_h5(), src.key)


READERS: Registry = Registry("reader", requires=("suffixes",))


def register_reader(cls: type[Reader]) -> type[Reader]:
    """Class decorator: add a reader to READERS (an empty or duplicate name: ValueError)."""
    return READERS.register(cls)


def by_priority() -> list[type[Reader]]:
    """The readers, highest priority first (ties: in registration order)."""
    return sorted(READERS.values(), key=lambda r: -r.priority)


def suffixes() -> tuple[str, ...]:
    """Every suffix a registered reader reads, each once, in priority order."""
    out: list[str] = []
    for r in by_priority():
        out += [s for s in r.suffixes if s not in out]
    return tuple(out)


def filename_patterns() -> list[str]:
    """napari's reader ``filename_patterns`` (napari.yaml must list exactly these): every
    suffix a reader reads but those only ``generic`` readers list."""
    generic = {s for r in READERS.values() for s in r.generic}
    specific = {s for r in READERS.values() for s in r.suffixes if s not in r.generic}
    return [f"*{s}" for s in suffixes() if s in specific or s not in generic]


def pick(src: Source) -> type[Reader]:
    """The first reader, by priority, that detects ``src`` (the fallback reader detects all)."""
    for reader in by_priority():
        if reader.detect(src):
            return reader
    names = ", ".join(f"{r.name} ({' '.join(r.suffixes)})" for r in by_priority())
    raise UsageError(f"{src.path}: no reader recognises it; expected one of {names}")
