"""End-to-end benchmark of a dehazing run (``usdehaze bench run``): where a run's time goes.

One real ``run_dehaze`` (scan file → result file) timed stage by stage through the driver's
stage timer (usdehaze.ultrasound.driver: read, encode, ood check, network, decode, scan
conversion, result checks, write); start-up (imports, loading the method's networks) is reported
apart. Frames/s end to end count everything after loading; the ratio against the network stage
says how much of a run is not the network, and holds on a loaded machine where absolute figures
do not.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from usdehaze.ultrasound.driver import STAGES, StageTimer, timing


def _imports() -> float:
    """Seconds to import what a run needs that is not imported yet (0 when all is)."""
    t0 = time.perf_counter()
    import h5py  # noqa: F401
    import torch  # noqa: F401

    import usdehaze.ultrasound.dehaze  # noqa: F401
    import usdehaze.ultrasound.io  # noqa: F401
    import usdehaze.ultrasound.ood  # noqa: F401

    return time.perf_counter() - t0


def _process_start() -> float | None:
    """Seconds since this process started (the interpreter and the CLI's own imports), when
    psutil can tell."""
    try:
        import psutil

        return max(time.time() - psutil.Process().create_time(), 0.0)
    except Exception:  # noqa: BLE001 - optional figure
        return None


def run(
    scan_path: str | Path,
    cfg: Any,
    frames: str | None = None,
    key: str | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Dehaze ``scan_path`` (``frames``: a --frames spec) with ``cfg`` into ``out`` (default a
    temporary file) under the stage timer; returns the figures (seconds per stage and the
    totals)."""
    before = _process_start()
    imports = _imports()
    from usdehaze.ultrasound.dehaze import run_dehaze
    from usdehaze.ultrasound.io import load_scan
    from usdehaze.ultrasound.scan import parse_frames

    timer = StageTimer()
    with tempfile.TemporaryDirectory() as tmp, load_scan(Path(scan_path), key) as scan:
        sel = parse_frames(frames, scan.n_frames, scan_path)
        target = Path(out) if out is not None else Path(tmp) / "bench.dehazed.h5"
        t0 = time.perf_counter()
        with timing(timer):
            run_dehaze(scan, target, cfg, sel)
        wall = time.perf_counter() - t0
        shape = scan.shape
    sec = dict(timer.seconds)
    beside = dict(timer.beside)
    load = sec.pop("load", 0.0)
    e2e = wall - load  # everything after loading
    n = len(sel)
    other = e2e - sum(sec.values())
    network = sec.get("network", 0.0)
    return {
        "method": cfg.method,
        "frames": n,
        "shape": tuple(shape),
        "batch": cfg.batch,
        "threads": _threads(),
        "process_start_s": before,
        "imports_s": imports,
        "load_s": load,
        "seconds": e2e,
        "stages": {s: sec.get(s, 0.0) for s in STAGES} | {"other": max(other, 0.0)},
        "beside": beside,
        "frames_per_s": n / e2e if e2e > 0 else float("inf"),
        "network_frames_per_s": n / network if network > 0 else float("inf"),
        "vs_network": e2e / network if network > 0 else float("nan"),
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def report(r: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Print the figures: start-up apart, then ms/frame per stage, frames/s end to end and the
    ratio against the network alone."""
    n = r["frames"]
    start = r["process_start_s"]
    log(
        f"run --method {r['method']}: {n} frame(s) of {r['shape'][0]}x{r['shape'][1]}, batch "
        f"{r['batch']}, {r['threads']} torch thread(s), load average {_load()}"
    )
    log(
        "start-up (not counted below): "
        + (f"process and CLI {start - r['imports_s']:.2f} s, " if start is not None else "")
        + f"imports {r['imports_s']:.2f} s, loading {r['load_s']:.2f} s"
    )
    log(f"{'stage':<16} {'ms/frame':>9} {'share':>6}")
    total = r["seconds"]
    for name, s in r["stages"].items():
        log(f"{name:<16} {1e3 * s / n:9.1f} {100 * s / total:5.1f}%")
    for name, s in r["beside"].items():
        log(
            f"({name}: {1e3 * s / n:.1f} ms/frame in a thread beside the frames; the run waited "
            f"{1e3 * r['stages'].get(name, 0.0) / n:.1f} for it, counted above)"
        )
    log(
        f"end to end: {total:.2f} s, {r['frames_per_s']:.1f} frames/s; network alone "
        f"{r['network_frames_per_s']:.1f} frames/s; end to end / network = ×{r['vs_network']:.2f}"
    )


def _load() -> str:
    try:
        import os

        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        return "unknown"
