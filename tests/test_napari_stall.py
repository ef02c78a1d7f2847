"""The GUI never waits on torch (issue 30 item 7): opening the Dehaze dock imports no torch and
costs the GUI thread little; the first Dehaze loads torch and the priors in its worker with a
status line, and the worker's ``import torch`` no longer freezes the GUI thread for the 1-2 s
the dynamic loader spent opening libtorch with the GIL held (usdehaze.napari._preload).

Each measurement runs in a fresh interpreter (this session has torch imported already)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from procs import run_script

ROOT = Path(__file__).resolve().parents[1]

IMPORT_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from usdehaze.napari._preload import preload_torch

    preload = sys.argv[1] == "preload"
    ticks, done, opened = [], threading.Event(), []

    def work():
        if preload:
            opened.append(preload_torch())
        import torch
        assert float(torch.ones(3).sum()) == 3.0  # torch works after the preload
        done.set()

    threading.Thread(target=work).start()
    while not done.is_set():  # the GUI thread: a tick every 5 ms when it gets the GIL
        ticks.append(time.perf_counter())
        time.sleep(0.005)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    print(json.dumps({"max_gap": max(gaps), "opened": opened}))
    """
)

LOAD_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, threading, time
    import napari  # a GUI process's heap (napari, Qt, vispy) for the collector to walk
    from usdehaze.napari._preload import collector_paused
    from usdehaze.napari._run import prepare
    from usdehaze.ultrasound.dehaze import DehazeConfig
    from usdehaze.ultrasound.simulate import demo_scan_path
    from usdehaze.napari._reader import read

    paused = sys.argv[1] == "paused"
    ((_, kwargs, _),) = read(str(demo_scan_path()))
    native = kwargs["metadata"]["usdehaze"]
    cfg = DehazeConfig(model="logsum", steps=2, device="cpu")
    passes, ticks, done = [], [], threading.Event()
    gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2
                        and passes.append(1))

    def work():
        if paused:
            prepare(native, cfg, lambda s: None)  # what the first Dehaze's worker loads
        else:
            import usdehaze.napari._run as run, contextlib
            run.collector_paused = contextlib.nullcontext  # the same loading, collector on
            prepare(native, cfg, lambda s: None)
        done.set()

    threading.Thread(target=work).start()
    while not done.is_set():  # the GUI thread: a tick every 5 ms when it gets the GIL
        ticks.append(time.perf_counter())
        time.sleep(0.005)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    print(json.dumps({"max_gap": max(gaps), "full_passes": len(passes),
                      "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
    """
)

GUI_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication
    from usdehaze.ultrasound.simulate import demo_scan_path

    tissue, haze = sys.argv[1], sys.argv[2]
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open(str(demo_scan_path()), plugin="usdehaze")
    app = QApplication.instance()
    out, ticks, statuses = {}, [], []
    sys.path.insert(0, PIPELINES)
    from bench_first_dehaze import dehaze_action  # the menu as a user finds it, as the bench

    action = dehaze_action(viewer)

    def open_dock():  # Plugins > usdehaze > Dehaze, as a user opens it
        c0 = time.thread_time()
        action.trigger()
        out["dock_cpu"] = time.thread_time() - c0
        out["torch_after_dock"] = "torch" in sys.modules
        (w,) = viewer.window.dock_widgets.values()
        w.model.setCurrentText("logsum")
        w.steps.setValue(2)
        w.device.setCurrentText("cpu")
        w.tissue_prior.setText(tissue)
        w.haze_prior.setText(haze)
        watch = QTimer(w)
        watch.timeout.connect(
            lambda: statuses[-1:] != [w.status.text()] and statuses.append(w.status.text())
        )
        watch.start(5)
        w._progress.connect(lambda *a: out.setdefault("first_step", time.perf_counter()))
        w.run_finished.connect(lambda r: (out.setdefault("result", r), app.quit()))
        QTimer.singleShot(300, lambda: (out.setdefault("t0", time.perf_counter()),
                                        w.run_button.click()))

    tick = QTimer()
    tick.timeout.connect(lambda: ticks.append(time.perf_counter()))
    tick.start(10)
    QTimer.singleShot(500, open_dock)
    QTimer.singleShot(240_000, app.quit)
    napari.run()
    t = [x for x in ticks if out["t0"] <= x <= out.get("first_step", 1e18)]
    out["max_gap_first_run"] = max(b - a for a, b in zip(t, t[1:]))
    out["statuses"] = statuses
    print("RESULT " + json.dumps(out))
    """
)


def _run(script: str, *args: str, tmp_path: Path) -> str:
    proc = run_script(script, *args, cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    return proc.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libc dlopen path: Linux")
def test_worker_importing_torch_does_not_freeze_the_gui_thread(tmp_path):
    """A thread importing torch froze a ticking main thread 1.1-2.3 s here (the loader opening
    libtorch_cpu with the GIL held); opened first through libc the longest gap is 0.13-0.5 s
    on this busy 2-core machine: under issue 30's 0.5 s. (The plain import is measured beside it
    for the message only: with libtorch already in the page cache it sometimes stalls as little
    as 0.18 s, so a ratio of the two was a flaky assertion; the 0.5 s bound is the target.)"""
    plain = json.loads(_run(IMPORT_SCRIPT, "plain", tmp_path=tmp_path).splitlines()[-1])
    pre = json.loads(_run(IMPORT_SCRIPT, "preload", tmp_path=tmp_path).splitlines()[-1])
    assert pre["opened"] == [True], pre
    assert pre["max_gap"] < 0.5, (pre, plain)


@pytest.mark.gui
def test_opening_the_dock_and_a_first_dehaze_keep_the_gui_responsive(tiny_priors, tmp_path):
    """Plugins > usdehaze > Dehaze in a fresh napari imports no torch and takes the GUI thread
    well under 0.5 s of CPU; the first Dehaze click says "loading torch…", then each stage, and
    finishes, the GUI thread never waiting 0.5 s (issue 30's target; napari's own redraws
    included). It waited 0.5-0.75 s while the collector made full passes over the heap torch's
    import grows (usdehaze.napari._preload.collector_paused); 0.16 s since, at load average 8.5
    on 2 cores (runs/stall/probe.py)."""
    script = GUI_SCRIPT.replace("PIPELINES", repr(str(ROOT / "pipelines")))
    out = _run(script, str(tiny_priors[0]), str(tiny_priors[1]), tmp_path=tmp_path)
    (line,) = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    got = json.loads(line.removeprefix("RESULT "))
    print(got)
    assert got["torch_after_dock"] is False, got
    assert got["dock_cpu"] < 0.5, got
    assert got["result"] == "done", got
    stages = [s for s in got["statuses"] if s]
    want = ["loading torch…", "loading the priors…", "dehazing 1 frame(s)…"]
    assert [s for s in stages if s in want] == want, stages
    assert got["max_gap_first_run"] < 0.5, got  # drawing went on (a frozen GUI stops ticking)


def test_loading_torch_and_the_priors_pauses_the_collector(tmp_path):
    """The first Dehaze's loading (torch, the checked config, the shipped priors) beside a
    ticking main thread, in a process holding napari: with the collector on, CPython made full
    passes over the growing heap, each stopping every thread (0.05-0.34 s each, the longest
    gaps of a first Dehaze, issue 30); paused, none is made, the heap is frozen afterwards and
    the collector is on again. Measured here (load average 8 on 2 cores): longest gap 0.35 s
    with the collector on, 0.035-0.05 s paused."""
    plain = json.loads(_run(LOAD_SCRIPT, "plain", tmp_path=tmp_path).splitlines()[-1])
    paused = json.loads(_run(LOAD_SCRIPT, "paused", tmp_path=tmp_path).splitlines()[-1])
    print({"plain": plain, "paused": paused})
    assert plain["full_passes"] >= 1 and plain["frozen"] == 0, plain
    assert paused["full_passes"] == 0, paused
    assert paused["enabled"] is True and paused["frozen"] > 100_000, paused
    assert paused["max_gap"] < 0.5, paused


def test_collector_paused_nests_and_release_hands_the_heap_back():
    """One pause for nested and concurrent loaders (the live worker beside a Dehaze run): the
    collector comes back on only when the last ends, as it was before (left off when it was
    off); release_frozen (the window closing) unfreezes."""
    import gc
    import threading

    from usdehaze.napari._preload import collector_paused, release_frozen

    assert gc.isenabled()
    inner_entered, leave_inner = threading.Event(), threading.Event()

    def other_loader():
        with collector_paused():
            inner_entered.set()
            leave_inner.wait(10)

    try:
        with collector_paused():
            assert not gc.isenabled()
            t = threading.Thread(target=other_loader)
            t.start()
            assert inner_entered.wait(10)
        assert not gc.isenabled()  # the other loader still loads
        leave_inner.set()
        t.join(10)
        assert gc.isenabled() and gc.get_freeze_count() > 0
        release_frozen()
        assert gc.get_freeze_count() == 0
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()  # the caller's choice kept
    finally:
        gc.enable()
        release_frozen()
