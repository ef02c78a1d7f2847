"""torch's C++ library loaded with the GIL released, and the cyclic garbage collector paused
while a worker loads torch and the priors, so napari's window keeps drawing meanwhile.

``import torch`` spends 1.7-2.3 s (on a busy 2-core machine) in the dynamic loader opening
``libtorch_cpu`` and running its static initialisers, all while holding the GIL: the GUI thread
froze that long at a first Dehaze or Live, although the import ran in a worker. Opening the
library first through libc's ``dlopen`` (a ctypes call, which releases the GIL) does that work
without the GIL; ``import torch`` then finds the library loaded. Nothing of Python runs in it.

The rest of the loading (torch's Python modules, the sampler, building and loading the
networks) adds some 300 000 objects to a GUI process's heap; CPython's collector walked the
whole heap each time it grew by a quarter, 5 full passes of 0.05-0.34 s each, stopping every
thread, the GUI thread too (runs/stall, issue 30: each longest gap of a first Dehaze fell on one
of them). :func:`collector_paused` keeps the collector off while a worker loads, then moves what
is on the heap to the collector's permanent generation (``gc.freeze``): the napari window,
torch and the networks stay for the session anyway, and later passes walk only what is new.
:func:`release_frozen` (the usdehaze window closing) hands them back, so a closed viewer's
cycles are collected again.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

LIBRARIES = ("libtorch_cpu.so", "libtorch_cpu.dylib")  # the heavy one (its dependencies too)


def torch_library() -> Path | None:
    """The path of torch's main C++ library, without importing torch; None when not found."""
    try:
        spec = find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    lib = Path(spec.origin).parent / "lib"
    return next((lib / n for n in LIBRARIES if (lib / n).is_file()), None)


def preload_torch() -> bool:
    """Open torch's C++ library with the GIL released (see the module's docstring); True when
    it was opened here. A no-op once torch is imported, or where libc's dlopen is not found."""
    if "torch" in sys.modules or os.name != "posix":
        return False
    path = torch_library()
    if path is None:
        return False
    try:
        dlopen = ctypes.CDLL(None).dlopen  # a foreign call: ctypes releases the GIL for it
    except (OSError, AttributeError):
        return False
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    # RTLD_LOCAL, as when torch._C pulls it in: its symbols stay out of the global scope
    return bool(dlopen(os.fsencode(path), os.RTLD_NOW | os.RTLD_LOCAL))


_collector = {"depth": 0, "enabled": True, "frozen": False}
_collector_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the body runs (a worker loading torch, the config
    and the priors; nested and concurrent uses share one pause), then the heap frozen
    (``gc.freeze``: the next full passes skip it) and the collector on again as it was."""
    with _collector_lock:
        if _collector["depth"] == 0:
            _collector["enabled"] = gc.isenabled()
            gc.disable()
        _collector["depth"] += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector["depth"] -= 1
            if _collector["depth"] == 0:
                gc.freeze()
                _collector["frozen"] = True
                if _collector["enabled"]:
                    gc.enable()


def release_frozen() -> None:
    """Hand the frozen heap back to the collector (the window closed: its cycles may go)."""
    with _collector_lock:
        if _collector["frozen"] and _collector["depth"] == 0:
            gc.unfreeze()
            _collector["frozen"] = False
