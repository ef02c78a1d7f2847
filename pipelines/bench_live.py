"""Does napari's live view keep up? Play a cine loop through the Dehaze widget's live toggle and
count the frames the slider showed, the frames dehazed (method fast) and the frames put on screen.

    python pipelines/bench_live.py                                  # the demo loop, 10 s at 30 frames/s
    python pipelines/bench_live.py --student my_student.safetensors --fps 60 --seconds 20
    python pipelines/bench_live.py --scan scan.h5 --device cuda

Runs a shown napari window (1600x1000) as ``usdehaze view SCAN`` opens it, on a virtual display
(Xvfb, started here when DISPLAY is unset), turns live on with a click, waits for the first live
frame, then plays the frame axis with napari's own player (``--fps``, looping) for ``--seconds``.
A 10 ms timer on the GUI thread measures how long the GUI ever went without handling events
(a blocked GUI shows as a long gap). Prints one table; ``--json`` also writes the figures.
Needs the napari extra (``pip install -e ".[napari]"``) and Xvfb where there is no display.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def ensure_display() -> subprocess.Popen | None:
    """Start Xvfb (1600x1000) when there is no display; the process, or None when not needed."""
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY"):
        return None
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if not shutil.which("Xvfb"):
        sys.exit("bench_live: no display and no Xvfb (apt-get install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number.isdigit():
        proc.terminate()
        sys.exit("bench_live: Xvfb did not start")
    os.environ["DISPLAY"] = f":{number}"
    return proc


def on_a_display(fn: Callable[[Any], T], arg: Any) -> T:
    """``fn(arg)`` with a display: Xvfb started for it when there is none, and stopped after."""
    xvfb = ensure_display()
    try:
        return fn(arg)
    finally:
        if xvfb is not None:
            xvfb.terminate()


def pump(seconds: float) -> None:
    """Run the Qt event loop for ``seconds``."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_for(cond, timeout: float) -> bool:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            return False
        pump(0.02)
    return True


def play(viewer, fps: float, seconds: float) -> dict:
    """Play the frame axis with napari's player for ``seconds``: frames the slider showed per
    second and the GUI thread's gaps (a 10 ms timer; a blocked GUI shows as a long gap)."""
    import numpy as np
    from qtpy.QtCore import QTimer

    steps = []
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    def stepped(event) -> None:
        steps.append(event.value[0])

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    viewer.dims.events.current_step.connect(stepped)
    qt_dims = viewer.window._qt_viewer.dims
    t0 = last[0] = time.perf_counter()
    timer.start()
    qt_dims.play(axis=0, fps=fps, loop_mode="loop")
    pump(seconds)
    qt_dims.stop()
    timer.stop()
    seconds = time.perf_counter() - t0
    viewer.dims.events.current_step.disconnect(stepped)
    pump(0.3)
    gap = np.asarray(gaps or [np.nan]) * 1e3
    return {
        "seconds": seconds,
        "slider_frames_per_s": len(steps) / seconds,
        "gui_gap_ms_max": float(np.nanmax(gap)),
        "gui_gap_ms_p99": float(np.nanpercentile(gap, 99)),
        "gui_gap_ms_p95": float(np.nanpercentile(gap, 95)),
    }


def bench(args: argparse.Namespace) -> dict:
    import napari
    import numpy as np
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from usdehaze.napari._launch import open_viewer
    from usdehaze.napari._widget import DehazeWidget

    viewer = napari.Viewer(title="usdehaze live bench", show=True)
    viewer.window._qt_window.resize(1600, 1000)
    open_viewer(args.scan, viewer=viewer)
    pump(0.3)
    (dehaze,) = [w for w in viewer.window.dock_widgets.values() if isinstance(w, DehazeWidget)]
    dehaze.device.setCurrentText(args.device)
    if args.student:
        dehaze.student.setText(str(args.student))
    if args.priors:
        dehaze.priors.setText(str(args.priors))
    errors: list[str] = []
    dehaze.live_stopped.connect(errors.append)
    QTest.mouseClick(dehaze.live_button, Qt.LeftButton)
    if not wait_for(lambda: errors or (dehaze.live and dehaze.live.stats.shown), 300):
        sys.exit("bench_live: no live frame within 300 s")
    if errors:
        sys.exit(f"bench_live: live stopped: {dehaze.live_status.text()}")
    s = dehaze.live
    st = s.stats
    base = (st.requests, st.dehazed, st.shown, s.mailbox.dropped, len(st.latency), len(st.work))
    live = play(viewer, args.fps, args.seconds)
    seconds = live["seconds"]
    latency = np.asarray(st.latency[base[4] :] or [np.nan]) * 1e3
    work = np.asarray(st.work[base[5] :] or [np.nan]) * 1e3
    native = s.layer.metadata["usdehaze"]
    out = {
        "scan": str(args.scan),
        "frames_in_loop": int(native.n_frames),
        "frame_shape": list(native.db.shape[1:]),
        "device": args.device,
        "play_fps": args.fps,
        **live,
        "requested_per_s": (st.requests - base[0]) / seconds,
        "dehazed_per_s": (st.dehazed - base[1]) / seconds,
        "shown_per_s": (st.shown - base[2]) / seconds,
        "skipped": int(s.mailbox.dropped - base[3]),
        "ms_per_frame_median": float(np.nanmedian(work)),
        "latency_ms_median": float(np.nanmedian(latency)),
        "latency_ms_p95": float(np.nanpercentile(latency, 95)),
        "status": dehaze.live_status.text(),
    }
    dehaze.stop_live()
    if args.baseline:  # the same playback with live off: what napari alone shows here
        out["baseline"] = play(viewer, args.fps, args.seconds)
    viewer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    from usdehaze.ultrasound.simulate import demo_scan_path
    from usdehaze.ultrasound.student import student_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scan", type=Path, default=demo_scan_path(), help="scan (default: demo)")
    p.add_argument("--student", type=Path, default=None, help="student (default: shipped)")
    p.add_argument("--priors", type=Path, default=None, help="priors folder (usdehaze adapt)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--fps", type=float, default=30.0, help="playback rate asked of napari")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to play")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the same playback with live off (napari's own frame rate here)",
    )
    args = p.parse_args(argv)
    if not args.scan.is_file() and not args.scan.is_dir():
        sys.exit(f"bench_live: {args.scan}: not found")
    student = student_path(args.priors, args.student)
    if not student.is_file():
        sys.exit(
            f"bench_live: {student}: no student there (train one: pipelines/distil_student.py)"
        )
    r = on_a_display(bench, args)
    print(
        f"live view, {r['scan']}: {r['frames_in_loop']}-frame loop of "
        f"{r['frame_shape'][0]}x{r['frame_shape'][1]}, played at {r['play_fps']:g} frames/s "
        f"for {r['seconds']:.1f} s, method fast on {r['device']} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    )
    b = r.get("baseline")
    print(
        f"  frames the slider showed  {r['slider_frames_per_s']:7.1f} /s"
        + (f"   (live off: {b['slider_frames_per_s']:.1f} /s)" if b else "")
    )
    print(f"  frames dehazed            {r['dehazed_per_s']:7.1f} /s")
    print(f"  frames shown (live layer) {r['shown_per_s']:7.1f} /s  ({r['skipped']} skipped)")
    print(f"  dehazing per frame        {r['ms_per_frame_median']:7.1f} ms (median, worker)")
    print(
        f"  slider → live layer       {r['latency_ms_median']:7.1f} ms median, "
        f"{r['latency_ms_p95']:.1f} ms p95"
    )
    print(
        f"  longest GUI gap           {r['gui_gap_ms_max']:7.1f} ms (p99 {r['gui_gap_ms_p99']:.1f} ms, "
        f"p95 {r['gui_gap_ms_p95']:.1f} ms"
        + (f"; live off: {b['gui_gap_ms_max']:.1f} ms" if b else "")
        + ")"
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main, needs=["napari"])
