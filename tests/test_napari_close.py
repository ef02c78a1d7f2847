"""Closing napari's window or the Dehaze dock while a Dehaze run samples (issue 30 item 1): the
process survives (it died of a segmentation fault: the worker emitted the deleted widget's
signals) and the worker stops at its next step instead of sampling on. Run in a child process,
so that a crash is a failed test rather than the end of the session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from procs import run_script

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import random, sys, time
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QDockWidget
    from superqt.utils._qthreading import WorkerBase
    from usdehaze.napari._launch import open_viewer
    from usdehaze.napari._widget import DehazeWidget
    from usdehaze.ultrasound.simulate import demo_scan_path

    tissue, haze, cycles = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = QApplication.instance() or QApplication([])

    def dehaze_of(viewer):
        (w,) = [d for d in viewer.window.dock_widgets.values() if isinstance(d, DehazeWidget)]
        w.model.setCurrentText("logsum")
        w.steps.setValue(2000)  # minutes of sampling: only a stop ends it soon
        w.device.setCurrentText("cpu")
        w.tissue_prior.setText(tissue)
        w.haze_prior.setText(haze)
        return w

    def spin(seconds, until=lambda: False):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not until():
            app.processEvents()
            time.sleep(0.005)

    # closes at random moments (loading the priors, the OOD check, sampling), some by the dock
    random.seed(0)
    for k in range(cycles):
        viewer = open_viewer(demo_scan_path())
        viewer.window._qt_window.resize(1600, 1000)
        w = dehaze_of(viewer)
        w.run_button.click()
        worker = w.worker
        spin(random.uniform(0.0, 2.0))
        if k % 3 == 2:  # the dock's own close button, then the window
            (dock,) = [d for d in viewer.window._qt_window.findChildren(QDockWidget)
                       if d.widget() is w]
            dock.title.close_button.click()
            spin(0.2)
        t0 = time.perf_counter()
        viewer.window._qt_window.close()  # the window's close button
        spin(30, lambda: not worker.is_running)
        print(f"cycle {k}: stopped {not worker.is_running} in {time.perf_counter() - t0:.2f} s",
              flush=True)

    # the real application: the close quits napari, which waits for its workers
    viewer = open_viewer(demo_scan_path())
    w = dehaze_of(viewer)
    state = {}

    def on_step(*a):
        if not state:
            state["worker"], state["t0"] = w.worker, time.perf_counter()
            viewer.window._qt_window.close()

    w._progress.connect(on_step)
    QTimer.singleShot(100, w.run_button.click)
    napari.run()
    WorkerBase.await_workers(msecs=30_000)
    worker = state["worker"]
    print(f"app: stopped {not worker.is_running} in {time.perf_counter() - state['t0']:.2f} s",
          flush=True)
    """
)


def test_closing_the_window_or_dock_mid_run_stops_the_worker(tiny_priors, tmp_path):
    """Four closes at random moments of a run (one through the dock's close button) and one
    that quits the application during sampling: exit status 0, every worker stopped within
    seconds of a 2000-step run."""
    proc = run_script(SCRIPT, str(tiny_priors[0]), str(tiny_priors[1]), "4", cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("cycle", "app"))]
    assert proc.returncode == 0, (proc.returncode, lines, proc.stderr[-2000:])
    assert len(lines) == 5, (lines, proc.stderr[-2000:])
    for line in lines:
        stopped, seconds = line.split("stopped ")[1].split(" in ")
        assert stopped == "True", line
        assert float(seconds.split()[0]) < 15.0, line  # a stop, not the end of 2000 steps


LIVE_SCRIPT = textwrap.dedent(
    """
    import sys
    import napari
    from qtpy.QtCore import QTimer
    from usdehaze.napari._launch import finish_workers, open_viewer
    from usdehaze.napari._widget import DehazeWidget
    from usdehaze.ultrasound.simulate import demo_scan_path

    viewer = open_viewer(demo_scan_path())
    (w,) = [x for x in viewer.window.dock_widgets.values() if isinstance(x, DehazeWidget)]
    w.device.setCurrentText("cpu")
    seen = []

    def shown(i):  # the first live frame: its out-of-distribution check now runs
        if not seen:
            seen.append(i)
            viewer.window._qt_window.close()  # the window's close button

    w.live_shown.connect(shown)
    QTimer.singleShot(200, w.live_button.click)
    QTimer.singleShot(240_000, lambda: sys.exit(3))
    napari.run()
    print("shown", seen, "workers done", finish_workers(), flush=True)
    """
)


def test_closing_the_window_while_live_ends_the_process_cleanly(tmp_path):
    """Closed at the first live frame, while the live view's out-of-distribution check still
    runs in its worker (it cannot be stopped): the process aborted (SIGABRT) at exit when that
    worker finished after Qt deleted its signals; ``usdehaze view`` now waits for the workers
    after napari's loop ends (usdehaze.napari._launch.finish_workers), and exits with 0."""
    proc = run_script(LIVE_SCRIPT, cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "shown [" in proc.stdout and "workers done True" in proc.stdout, proc.stdout
