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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that every clean partial save
    made for Ctrl-C (finished frames kept, temporaries removed) is made for SIGTERM too."""


def exit_signals() -> list[int]:
    """Make SIGTERM raise :class:`Terminated` (SIGINT keeps raising KeyboardInterrupt) and return
    the list into which both handlers record the signals received (for the exit code: 130 after
    SIGINT, 143 after SIGTERM). Main thread only; the command line calls it once at start."""
    received: list[int] = []

    def on_int(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    def on_term(signum, frame):
        received.append(signum)
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

    libhdf5 crashes (SIGSEGV, h5py issue #914) when it closes a file after a write failed (disk
    full, quota): so the first OSError is kept in ``error``, later writes are dropped, HDF5
    closes cleanly, and the caller raises ``error`` and removes the temporary."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed in close()
        self.error: OSError | None = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        while self.error is None and len(view):
            try:
                done = self._f.write(view)
            except OSError as exc:
                self.error = exc
                break
            if not done:  # nothing written and no error: the disk takes no more
                self.error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                break
            view = view[done:]
        return n

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)

    def readinto(self, buf) -> int:
        return self._f.readinto(buf)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.error is not None:
            return self._f.tell() if size is None else size
        try:
            return self._f.truncate(size)
        except OSError as exc:
            self.error = exc
            return self._f.tell() if size is None else size

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
