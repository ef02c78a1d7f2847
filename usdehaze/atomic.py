"""Atomic output: write to a temporary sibling, then rename over the target.

A run interrupted midway leaves either the old file or a complete new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    Works for files and for directory stores (zarr). On any exception (KeyboardInterrupt
    included) the temporary is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates it (file or directory)
    try:
        yield tmp
        _replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def save_torch(state: object, target: str | os.PathLike) -> None:
    """``torch.save`` of a checkpoint through :func:`atomic_path`: a failed write (a full disk:
    torch raises RuntimeError 'file write failed', or an OSError) is one line naming the
    target, the previous checkpoint kept, instead of a traceback from inside torch."""
    import torch

    from usdehaze.outputs import write_error

    try:
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
    except OSError as exc:
        raise write_error(target, exc) from exc
    except RuntimeError as exc:
        if "write" not in str(exc).lower():
            raise
        raise write_error(target, exc) from exc


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that every clean partial save
    made for Ctrl-C (finished frames kept, temporaries removed) is made for SIGTERM too."""


def exit_signals() -> list[int]:
    """Make SIGTERM raise :class:`Terminated` (SIGINT keeps raising KeyboardInterrupt) and return
    the list into which both handlers record the signals received (for the exit code: 130 after
    SIGINT, 143 after SIGTERM). Main thread only; the command line calls it once at start."""
    received: list[int] = []

    # only the first signal stops the work; a second Ctrl-C while the partial result is being
    # saved is recorded, not raised (it tore the save and ended in a traceback or exit -2)
    def on_int(signum, frame):
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt

    def on_term(signum, frame):
        received.append(signum)
        if len(received) == 1:
            raise Terminated

    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, on_int)
        signal.signal(signal.SIGTERM, on_term)
    return received


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, so files written as a set (a
    prior's weights and its config) are renamed together, never half; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.getsignal(s) for s in held}
    for s in held:
        if old[s] is not None:  # None: a handler installed from C, left alone
            signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s in held:
            if old[s] is not None:
                signal.signal(s, old[s])
        if caught:
            signal.raise_signal(caught[0])  # now delivered to the handler it was meant for


class _GuardedFile:
    """A file object for h5py's ``fileobj`` driver that never lets HDF5 see a failed write.

    libhdf5 crashes (SIGSEGV, h5py issue #914) when a write fails under it (disk full, quota),
    and it also crashes when a write it believes done reads back as something else. So the
    first OSError is kept in ``error`` and from then on the file is continued in memory: later
    writes go to pages held here (each page read from the disk file once, when first touched),
    reads see them, and HDF5 finishes and closes on a file consistent with what it wrote. The
    caller raises ``error`` and removes the temporary; the memory held is what HDF5 writes after
    the failure (a run stops at the next frame), never the whole file."""

    PAGE = 1 << 16

    def __init__(self, path: Path) -> None:
        self._f = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed in close()
        self.error: OSError | None = None
        self._pages: dict[int, bytearray] | None = None  # set once a write has failed
        self._pos = 0
        self._size = 0

    # -- after a failure: the file continued in memory -------------------------------------
    def _fail(self, exc: OSError) -> None:
        self.error = exc
        self._pages = {}
        self._pos = self._f.tell()
        self._size = os.fstat(self._f.fileno()).st_size

    def _page(self, k: int) -> bytearray:
        page = self._pages.get(k)
        if page is None:
            self._f.seek(k * self.PAGE)
            data = self._f.read(self.PAGE) or b""
            page = bytearray(data) + bytearray(self.PAGE - len(data))
            self._pages[k] = page
        return page

    def _write_memory(self, view: memoryview) -> None:
        pos, end = self._pos, self._pos + len(view)
        while pos < end:
            k, off = divmod(pos, self.PAGE)
            n = min(self.PAGE - off, end - pos)
            self._page(k)[off : off + n] = view[pos - self._pos : pos - self._pos + n]
            pos += n
        self._pos = end
        self._size = max(self._size, end)

    def _read_memory(self, size: int) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        out = bytearray()
        while self._pos < end:
            k, off = divmod(self._pos, self.PAGE)
            n = min(self.PAGE - off, end - self._pos)
            out += self._page(k)[off : off + n]
            self._pos += n
        return bytes(out)

    # -- the file object h5py uses -----------------------------------------------------------
    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        while self._pages is None and len(view):
            try:
                done = self._f.write(view)
            except OSError as exc:
                self._fail(exc)
                break
            if not done:  # nothing written and no error: the disk takes no more
                self._fail(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
                break
            view = view[done:]
        if self._pages is not None and len(view):
            self._write_memory(view)
        return n

    def read(self, size: int = -1) -> bytes:
        if self._pages is None:
            return self._f.read(size)
        return self._read_memory(size)

    def readinto(self, buf) -> int:
        if self._pages is None:
            return self._f.readinto(buf)
        out = memoryview(buf).cast("B")
        data = self._read_memory(len(out))
        out[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._pages is None:
            return self._f.seek(offset, whence)
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._f.tell() if self._pages is None else self._pos

    def truncate(self, size: int | None = None) -> int:
        if self._pages is None:
            try:
                return self._f.truncate(size)
            except OSError as exc:
                self._fail(exc)
        size = self._pos if size is None else size
        for k in [k for k in self._pages if k * self.PAGE >= size]:
            del self._pages[k]  # beyond the new end: reads as zeros if the file grows again
        if size % self.PAGE and size // self.PAGE in self._pages:
            off = size % self.PAGE
            self._pages[size // self.PAGE][off:] = bytearray(self.PAGE - off)
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._f.close()


class H5Output:
    """An HDF5 file being written (``.file``, an ``h5py.File``) that survives a full disk:
    :meth:`check` raises the first write error; :meth:`close` closes and then raises it."""

    def __init__(self, path: str | os.PathLike) -> None:
        import h5py

        self._raw = _GuardedFile(Path(path))
        try:
            self.file = h5py.File(self._raw, "w")
        except BaseException:
            self._raw.close()
            raise

    def check(self) -> None:
        if self._raw.error is not None:
            raise self._raw.error

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self._raw.close()
        self.check()

    def __enter__(self):
        return self.file

    def __exit__(self, *exc) -> None:
        self.close()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _replace(tmp: Path, target: Path) -> None:
    """Rename tmp onto target; a directory target is swapped via a backup name, and only when
    a usdehaze writer made it (usdehaze.outputs): a folder of anything else is never deleted."""
    if target.is_dir() and not target.is_symlink():
        from usdehaze.errors import UsageError
        from usdehaze.outputs import MARKER, is_usdehaze_output

        if not is_usdehaze_output(target):
            raise UsageError(
                f"{target}: an existing folder that usdehaze did not write (no '{MARKER}' "
                "marker); it is left alone: remove it yourself or choose another output"
            )
        backup = target.with_name(f".{target.name}.old")
        _remove(backup)
        os.replace(target, backup)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(backup, target)  # the old store back in place
            raise
        _remove(backup)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o777 if tmp.is_dir() else 0o666  # a folder keeps its x bits
        os.chmod(tmp, mode & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
