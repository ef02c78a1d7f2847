"""Limits on what a file or an option may ask for, and the value checks every entry point shares.

Every limit is stated in the error it raises, so a refused input says what would have been
accepted. A value is checked where it enters (option, config key, file field), never deep in a
computation where NaN or a huge allocation would otherwise surface as a traceback or a wrong
result marked complete.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

from usdehaze.errors import UsageError

MAX_ROI_BYTES = 1 << 20  # a roi.json is a few hundred bytes; 1 MiB leaves room for drawn outlines
MAX_POLYGON_POINTS = 2_000  # per polygon: rasterising costs one pass over the image per edge
MAX_ROI_PAIRS = 100
MAX_JSON_DEPTH = 32  # nesting of a roi.json or a prior's JSON (they need 4)
MAX_PRIOR_JSON_BYTES = 4 << 20
MAX_YAML_BYTES = 1 << 20  # config files are a few kB
MAX_YAML_ALIASES = 100  # YAML aliases (*name); a few are handy, thousands are an alias bomb
MAX_YAML_NODES = 100_000  # values in a config once aliases are expanded
MAX_BINS = 1 << 16  # gCNR histogram bins (the default is 256)
MAX_EVALUATE_FRAMES = 10_000  # held-out frames of usdehaze evaluate (each takes seconds)
MAX_SIMULATE_FRAMES = 10_000  # frames of usdehaze simulate (about 1 MB each in memory)
MAX_HAZE_DB = 60.0  # |haze power| relative to the myocardium that usdehaze simulate accepts
MAX_SAMPLER = {"steps": 10_000, "samples": 1_000, "batch": 4_096}  # a run's sampler settings
MAX_THREADS = 1_024  # --threads: CPU threads for the networks
SEED_MAX = 2**32 - 1  # seeds are 0 ... 2**32 - 1 (numpy's and torch's common range)


def number(
    value: Any,
    where: str,
    *,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite float (bools refused); ``positive``: > 0; ``minimum``: >= minimum;
    ``maximum``: <= maximum.

    ``where`` names the file and key (or the option) for the one-line error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        v = float(value) if ok else math.nan
    except OverflowError:  # an integer beyond any float
        v = math.nan
    if not ok or not math.isfinite(v):
        raise UsageError(f"{where}: expected a finite number, got {value!r}")
    if positive and not v > 0:
        raise UsageError(f"{where}: expected a positive number, got {value!r}")
    _within(v, where, f"{value!r}", (minimum, "a number >= {:g}"), (maximum, "a number <= {:g}"))
    return v


def integer(
    value: Any, where: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an int (bools and floats refused) within [minimum, maximum]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{where}: expected an integer, got {value!r}")
    _within(value, where, f"{value}", (minimum, "at least {}"), (maximum, "at most {} (the limit)"))
    return value


def _within(
    v: float, where: str, got: str, low: tuple[float | None, str], high: tuple[float | None, str]
) -> None:
    """Refuse ``v`` below ``low`` or above ``high`` (bound, what is expected, formatted with the
    bound; a None bound: none): number() and integer() word their bounds each their own way."""
    (minimum, at_least), (maximum, at_most) = low, high
    if minimum is not None and v < minimum:
        raise UsageError(f"{where}: expected {at_least.format(minimum)}, got {got}")
    if maximum is not None and v > maximum:
        raise UsageError(f"{where}: expected {at_most.format(maximum)}, got {got}")


def seed(value: Any, where: str) -> int:
    """A random seed: an integer in 0 ... 2**32 - 1."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= SEED_MAX:
        raise UsageError(f"{where}: expected a seed between 0 and {SEED_MAX}, got {value!r}")
    return value


def non_finite_key(obj: Any, prefix: str = "") -> str | None:
    """The dotted key of the first NaN or infinite float inside nested dicts and lists, or None."""
    stack = [(prefix, obj)]
    while stack:
        key, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return key or "(top level)"
        if isinstance(v, dict):
            items = [(f"{key}.{k}" if key else str(k), x) for k, x in v.items()]
            stack.extend(reversed(items))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed([(f"{key}[{i}]", x) for i, x in enumerate(v)]))
    return None


def available_memory() -> int:
    """Bytes of memory available now (Linux: MemAvailable; elsewhere physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_frame_size(where: str, nz: int, nx: int, bytes_per_pixel: int = 64) -> None:
    """Refuse a declared (z, x) frame whose pixel grid and working copies (``bytes_per_pixel``
    each: positions, a few complex frames) would not fit in the memory available now."""
    need = int(nz) * int(nx) * bytes_per_pixel
    have = available_memory()
    if need > have // 2:
        raise UsageError(
            f"{where}: declared frames of {nz} x {nx} pixels need about {gib(need)}, more than "
            f"half the {gib(have)} of memory available (the limit)"
        )


SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file(path: Any) -> str | None:
    """What ``path`` is when it (or what its links lead to) is a FIFO, device or socket, else
    None (a regular file, a folder, nothing there). Only stat: nothing is opened."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((name for test, name in SPECIAL_FILES if test(mode)), None)


def not_special(path: Any, what: str = "input file") -> Path:
    """``path`` as a Path unless it is a FIFO, device or socket: opening one waits for a writer
    (or reads forever), so every reader of user files refuses it here first, in one line."""
    kind = special_file(path)
    if kind is not None:
        raise UsageError(f"{path}: {kind}, not a {what} (expected a regular file or a folder)")
    return Path(path)


def bounded_file(path: Any, what: str, max_bytes: int) -> Path:
    """``path`` as a Path once it is a file of at most ``max_bytes`` (a ``what``, e.g. 'ROI
    file'): the one size check of the config, ROI and JSON readers."""
    path = not_special(path, what)
    if not path.is_file():
        raise UsageError(f"{path}: no such {what}")
    size = path.stat().st_size
    if size > max_bytes:
        raise UsageError(
            f"{path}: {size} bytes, larger than the {max_bytes} bytes a {what} may have (the limit)"
        )
    return path
