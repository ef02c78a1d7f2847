"""torch's C++ library loaded with the GIL released, so napari's window keeps drawing while a
worker thread imports torch.

``import torch`` spends 1.7-2.3 s (on a busy 2-core machine) in the dynamic loader opening
``libtorch_cpu`` and running its static initialisers, all while holding the GIL: the GUI thread
froze that long at a first Dehaze or Live, although the import ran in a worker. Opening the
library first through libc's ``dlopen`` (a ctypes call, which releases the GIL) does that work
without the GIL; ``import torch`` then finds the library loaded. Nothing of Python runs in it.
"""

from __future__ import annotations

import ctypes
import os
import sys
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
