"""Atomic output: write to a temporary sibling, then rename over the target.

A run interrupted midway leaves either the old file or a complete new one, never a torn file.
"""

from __future__ import annotations

import contextlib
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _replace(tmp: Path, target: Path) -> None:
    """Rename tmp onto target; a directory target is swapped via a backup name."""
    if tmp.is_dir() and target.exists():
        backup = target.with_name(f".{target.name}.old")
        _remove(backup)
        os.replace(target, backup)
        os.replace(tmp, target)
        _remove(backup)
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
