"""The Dehaze widget's live view (issue 17), driven as a user drives it: a click on the Live
toggle, the frame slider stepped with napari's arrow keys and played with its play button, a click on "Dehaze this frame (joint)"; the
live layer must hold the fast method's tissue of the frame shown, computed off the GUI thread,
newest frame first, and nothing more once live is off."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from qtpy.QtCore import Qt
from test_napari_gui import _click, shown  # noqa: F401 - the fixture

from usdehaze.napari._live import Latest

LIVE = "demo_scan tissue (live)"


def test_latest_keeps_only_the_newest_request():
    box = Latest()
    for i in range(3):
        box.put((i, 0.0))
    assert box.take(0.01) == (2, 0.0) and box.dropped == 2
    t0 = time.perf_counter()
    assert box.take(0.05) is None and time.perf_counter() - t0 >= 0.04  # waits, then none
    box.put((5, 0.0))
    box.close()
    assert box.take(1.0) is None  # closed: the worker stops at once


def _setup(dehaze, tiny_iq_priors, tiny_student):
    t, h = tiny_iq_priors
    dehaze.tissue_prior.setText(str(t))
    dehaze.haze_prior.setText(str(h))
    dehaze.student.setText(str(tiny_student))
    dehaze.device.setCurrentText("cpu")
    dehaze.model.setCurrentText("iq")
    dehaze.steps.setValue(2)


def _expected(dehaze, frame):
    """The fast method's tissue of ``frame``, as Dehazer computes it, in display pixels."""
    from usdehaze.napari._layers import display_converter
    from usdehaze.napari._live import live_config
    from usdehaze.ultrasound.dehaze import Dehazer

    native = dehaze.selected_layer().metadata["usdehaze"]
    d = Dehazer(live_config(dehaze.form_config()).validate())
    out = d.dehaze_iq(np.asarray(native.iq[frame : frame + 1]), frames=[frame])
    assert d.nfe == 1
    return display_converter(native)(out["tissue"])[0]


def _press(qtbot, viewer, key, times=1):
    """Step the frame slider with napari's arrow keys on the canvas, as a user does."""
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for _ in range(times):
        qtbot.keyClick(canvas, key)


def _live_off(qtbot, dehaze):
    """Live toggled off with a click; waits (5 s at most) for it to stop."""
    with qtbot.waitSignal(dehaze.live_stopped, timeout=5_000):
        _click(qtbot, dehaze.live_button)


@pytest.mark.gui
def test_live_toggle_shows_the_dehazed_frame_off_the_gui_thread(
    shown,  # noqa: F811
    qtbot,
    tiny_iq_priors,
    tiny_student,
    monkeypatch,
):
    from usdehaze.ultrasound import dehaze as lib

    viewer, dehaze, _ = shown
    _setup(dehaze, tiny_iq_priors, tiny_student)
    viewer.dims.set_current_step(0, 1)
    threads = []
    delay = {"s": 0.0}
    dehaze_iq = lib.Dehazer.dehaze_iq

    def spy(self, *a, **k):
        threads.append(threading.current_thread())
        time.sleep(delay["s"])
        return dehaze_iq(self, *a, **k)

    monkeypatch.setattr(lib.Dehazer, "dehaze_iq", spy)
    from usdehaze.napari import _live_view

    checks = []
    check = _live_view.layer_check

    def slow_check(*a, **k):  # the out-of-distribution check, made slow (7 s seen)
        checks.append(threading.current_thread())
        time.sleep(4.0)
        return check(*a, **k)

    monkeypatch.setattr(_live_view, "layer_check", slow_check)
    delay["s"] = 3.0  # a slow first frame: the click must not wait for it
    with qtbot.waitSignal(dehaze.live_shown, timeout=60_000) as sig:
        t0 = time.perf_counter()
        _click(qtbot, dehaze.live_button)
        assert time.perf_counter() - t0 < 3.0  # adds the live layer, starts the worker
        assert dehaze.live_button.isChecked() and dehaze.live is not None
        assert dehaze.live.stats.shown == 0 and dehaze.live_status.text().startswith("live:")
    assert sig.args == [1]
    delay["s"] = 0.0
    live = viewer.layers[LIVE]
    # over the input, in the same place: the cursor's mm and the regions mean the same on both
    np.testing.assert_allclose(
        live.extent.world[:, -2:], viewer.layers["demo_scan"].extent.world[:, -2:]
    )
    np.testing.assert_allclose(live.translate, viewer.layers["demo_scan"].translate[-2:])

    # the slider moved with the keyboard: the live layer follows, the frame shown is dehazed,
    # while the out-of-distribution check of frame 1 still runs in a worker of its own
    with qtbot.waitSignal(dehaze.live_shown, timeout=3_000) as sig:
        _press(qtbot, viewer, Qt.Key_Right)
    assert sig.args == [2] and viewer.dims.current_step[0] == 2
    assert dehaze.live.ood is None and len(checks) == 1  # frames went on during the check
    assert threads and threading.main_thread() not in threads
    assert checks[0] not in threads and checks[0] is not threading.main_thread()
    qtbot.waitUntil(lambda: dehaze.live.ood is not None, timeout=30_000)  # once, frame 1
    assert dehaze.live.ood.frames == [1] and len(checks) == 1
    monkeypatch.undo()
    np.testing.assert_allclose(live.data, _expected(dehaze, 2), atol=1e-4)
    assert live.metadata["usdehaze_live"]["frame"] == 2
    monkeypatch.setattr(lib.Dehazer, "dehaze_iq", spy)

    # frames faster than the worker: the GUI stays free, stale frames are skipped, the
    # newest one is shown last
    delay["s"] = 0.4
    stats = dehaze.live.stats
    dehazed = stats.dehazed
    t0 = time.perf_counter()
    _press(qtbot, viewer, Qt.Key_Left, times=2)  # 2 → 1 → 0 while the worker sleeps
    _press(qtbot, viewer, Qt.Key_Right, times=3)  # → 1 → 2 → 3
    assert time.perf_counter() - t0 < 1.5  # 5 slider moves; waiting for the network: >= 2 s
    qtbot.waitUntil(
        lambda: dehaze.live.shown_index == 3 and stats.dehazed > dehazed, timeout=30_000
    )
    qtbot.wait(1000)  # nothing else is queued
    assert dehaze.live.shown_index == 3
    assert stats.dehazed - dehazed < 5 and stats.dropped >= 1
    monkeypatch.undo()
    np.testing.assert_allclose(live.data, _expected(dehaze, 3), atol=1e-4)

    # the loop played with napari's play button: the live layer follows it, then shows the
    # frame the loop stopped at
    play = viewer.window._qt_viewer.dims.slider_widgets[0].play_button
    shown_before = stats.shown
    seen = []
    dehaze.live_shown.connect(seen.append)
    _click(qtbot, play)
    qtbot.waitUntil(lambda: len(set(seen)) >= 3, timeout=30_000)
    _click(qtbot, play)
    qtbot.waitUntil(lambda: not viewer.window._qt_viewer.dims.is_playing, timeout=5_000)
    qtbot.wait(300)  # the animation thread's last frame lands
    here = viewer.dims.current_step[0]
    qtbot.waitUntil(lambda: dehaze.live.shown_index == here, timeout=30_000)
    qtbot.wait(500)
    assert dehaze.live.shown_index == viewer.dims.current_step[0] == here
    assert stats.shown - shown_before >= 3
    np.testing.assert_allclose(live.data, _expected(dehaze, here), atol=1e-4)
    here_before_off = here

    # live off: the slider moves on, the live layer keeps its last frame
    with qtbot.waitSignal(dehaze.live_stopped, timeout=5_000) as sig:
        _click(qtbot, dehaze.live_button)
    assert sig.args == ["off"] and not dehaze.live_button.isChecked() and dehaze.live is None
    before = np.array(live.data)
    shown_count = stats.shown
    key = Qt.Key_Left if here_before_off > 0 else Qt.Key_Right
    _press(qtbot, viewer, key)
    qtbot.wait(800)
    now = viewer.dims.current_step[0]
    assert now != here_before_off
    np.testing.assert_array_equal(live.data, before)
    assert stats.shown == shown_count
    assert live.metadata["usdehaze_live"]["frame"] == here_before_off
    # on again: the same layer, now at the frame shown
    with qtbot.waitSignal(dehaze.live_shown, timeout=60_000) as sig:
        _click(qtbot, dehaze.live_button)
    assert sig.args == [now] and [ly.name for ly in viewer.layers].count(LIVE) == 1
    _live_off(qtbot, dehaze)


@pytest.mark.gui
def test_joint_button_dehazes_the_frame_shown_beside_live(
    shown,  # noqa: F811
    qtbot,
    tiny_iq_priors,
    tiny_student,
):
    import json

    viewer, dehaze, _ = shown
    _setup(dehaze, tiny_iq_priors, tiny_student)
    dehaze.frames.setCurrentText("all frames")  # the button takes the frame shown anyway
    dehaze.method.setCurrentText("fast")  # ... and the joint sampler whatever is picked
    viewer.dims.set_current_step(0, 2)
    with qtbot.waitSignal(dehaze.live_shown, timeout=60_000):
        _click(qtbot, dehaze.live_button)
    with qtbot.waitSignal(dehaze.run_finished, timeout=60_000) as sig:
        _click(qtbot, dehaze.joint_button)
    assert sig.args == ["done"]
    tissue = viewer.layers["demo_scan tissue (frame 2)"]
    native = tissue.metadata["usdehaze"]
    assert native.n_frames == 1 and native.source_frame(0) == 2
    assert json.loads(native.attrs["config"])["method"] == "joint" and native.attrs["nfe"] > 1
    assert dehaze.live is not None  # live keeps running beside the joint run
    _live_off(qtbot, dehaze)


@pytest.mark.gui
def test_live_errors_are_notifications_and_untoggle(
    shown,  # noqa: F811
    qtbot,
    tiny_iq_priors,
    tmp_path,
):
    from napari.utils.notifications import notification_manager

    viewer, dehaze, _ = shown
    _setup(dehaze, tiny_iq_priors, tmp_path / "missing.safetensors")
    before = len(notification_manager.records)
    with qtbot.waitSignal(dehaze.live_stopped, timeout=60_000) as sig:
        _click(qtbot, dehaze.live_button)
    assert sig.args == ["error"] and not dehaze.live_button.isChecked() and dehaze.live is None
    msgs = [str(r.message) for r in notification_manager.records[before:]]
    assert any(m.startswith("usdehaze live:") and "missing" in m for m in msgs), msgs


@pytest.mark.gui
def test_regions_stay_on_top_of_results_and_live(
    shown,  # noqa: F811
    qtbot,
    tiny_iq_priors,
    tiny_student,
):
    """Issue 30 item 2: after a Dehaze click and with Live on, the ROI layer (the scan's
    roi.json) and a shapes layer the user drew in stay above the tissue, haze and live layers,
    and the layer being drawn in stays the active one when live starts."""
    from napari.layers import Image, Shapes

    viewer, dehaze, gcnr = shown
    _setup(dehaze, tiny_iq_priors, tiny_student)
    _click(qtbot, gcnr.new_button)  # a second regions layer, the active one
    regions = [ly for ly in viewer.layers if isinstance(ly, Shapes)]
    assert len(regions) == 2
    with qtbot.waitSignal(dehaze.run_finished, timeout=60_000) as sig:
        _click(qtbot, dehaze.run_button)
    assert sig.args == ["done"]
    viewer.layers.selection.active = regions[1]  # back to drawing
    with qtbot.waitSignal(dehaze.live_shown, timeout=60_000):
        _click(qtbot, dehaze.live_button)
    assert viewer.layers.selection.active is regions[1]
    names = [ly.name for ly in viewer.layers]
    frame = f"frame {viewer.dims.current_step[0]}"  # the frame shown when Dehaze was clicked
    images = ["demo_scan", f"demo_scan haze ({frame})", f"demo_scan tissue ({frame})", LIVE]
    assert set(images) <= set(names)
    assert all(isinstance(ly, Image) for ly in viewer.layers[: len(images)])  # images first
    assert [ly for ly in viewer.layers[len(images) :]] == regions  # regions on top, in order
    assert names.index("demo_scan") < names.index(f"demo_scan tissue ({frame})")  # over input
    _live_off(qtbot, dehaze)


@pytest.mark.gui
def test_live_on_a_dicom_cine_runs_the_bmode_student_on_its_own_pixels(
    make_napari_viewer, qtbot, tmp_path
):
    """Issue 27 item 8 / issue 30: a DICOM cine opened through the plugin's reader plays live:
    the B-mode student (what ``usdehaze run`` picks for the cine) on the frame shown, the live
    layer on the input's pixel grid in mm, darker in the sector, overlays and everything
    outside the sector the input's own pixels; the frame shown equals ``usdehaze run``'s."""
    pydicom_data = pytest.importorskip("pydicom.data")
    from test_napari_gui import SIZE, _docked

    from usdehaze.napari._launch import open_viewer
    from usdehaze.napari._widget import DehazeWidget
    from usdehaze.ultrasound.dehaze import build_config, run_dehaze
    from usdehaze.ultrasound.io import load_scan
    from usdehaze.ultrasound.results import load_result

    path = pydicom_data.get_testdata_file("examples_ybr_color.dcm")
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    open_viewer(path, viewer=viewer)  # the plugin's reader, both docks, as usdehaze view
    qtbot.wait(300)
    dehaze = _docked(viewer, DehazeWidget)
    try:
        dehaze.device.setCurrentText("cpu")
        (inp,) = viewer.layers
        masks = inp.metadata["usdehaze"].bmode.masks
        assert masks["overlay"].any() and masks["colour"].any()  # text and colour to keep
        kept = ~masks["sector"] | masks["overlay"] | masks["colour"]
        viewer.dims.set_current_step(0, 3)
        with qtbot.waitSignal(dehaze.live_shown, timeout=120_000) as sig:
            _click(qtbot, dehaze.live_button)
        assert sig.args == [3]
        qtbot.waitUntil(lambda: dehaze.live.dehazer is not None, timeout=5_000)
        cfg = dehaze.live.dehazer.cfg
        assert (cfg.method, cfg.model) == ("fast", "bmode")  # the B-mode student
        live = viewer.layers[inp.name + " tissue (live)"]
        # the live frames come as the slider moves (napari's arrow keys on the canvas)
        for frame in (4, 5):
            with qtbot.waitSignal(dehaze.live_shown, timeout=30_000) as sig:
                _press(qtbot, viewer, Qt.Key_Right)
            assert sig.args == [frame]
        assert dehaze.live.stats.shown >= 3
        # on the input's pixel grid, in the same mm
        assert live.data.shape == inp.data.shape[1:]
        np.testing.assert_allclose(live.scale, inp.scale[1:])
        np.testing.assert_allclose(live.translate, inp.translate[1:])
        assert [str(u) for u in live.units] == ["millimeter"] * 2
        shown, before = np.asarray(live.data), np.asarray(inp.data[5])
        assert (shown <= before + 1e-5).all()  # the B-mode student's gain is never positive
        assert (shown[~kept] < before[~kept] - 1.0).sum() > 1000  # haze taken out of the fan
        np.testing.assert_array_equal(shown[kept], before[kept])  # overlays, colour, outside
        # what ``usdehaze run`` writes for that frame (its default method on a cine)
        out = run_dehaze(
            load_scan(path),
            tmp_path / "r.h5",
            build_config(None, {"device": "cpu"}),
            frames=range(5, 6),
        )
        res = load_result(out)
        try:
            np.testing.assert_allclose(shown, res.frames("tissue")[0], atol=1e-4)
        finally:
            res.close()
        # Dehaze on the frame shown (its default method on a cine): the same frame, also with
        # overlays and outside kept (before, the widget darkened them)
        dehaze.frames.setCurrentText("current frame")
        with qtbot.waitSignal(dehaze.run_finished, timeout=120_000) as sig:
            _click(qtbot, dehaze.run_button)
        assert sig.args == ["done"]
        tissue = viewer.layers[inp.name + " tissue (frame 5)"]
        np.testing.assert_allclose(tissue.data[0], shown, atol=1e-4)
        _live_off(qtbot, dehaze)
    finally:
        from superqt.utils._qthreading import WorkerBase

        dehaze.stop_live("test over")
        WorkerBase.await_workers(msecs=20_000)


@pytest.mark.gui
def test_live_hides_the_input_it_covers_and_gives_it_back(
    shown,  # noqa: F811
    qtbot,
    tiny_iq_priors,
    tiny_student,
):
    """Issue 30 item 3: while live is on, the input under the live layer (the same place and
    size: wholly covered) is hidden, so napari neither slices, uploads nor draws it on each
    frame step; the slider still steps the frames. Hiding the live layer (to see the input)
    shows the input, showing it hides the input again; live off shows the input again. An
    input the user hid stays hidden."""
    viewer, dehaze, _ = shown
    _setup(dehaze, tiny_iq_priors, tiny_student)
    scan = viewer.layers["demo_scan"]
    with qtbot.waitSignal(dehaze.live_shown, timeout=60_000):
        _click(qtbot, dehaze.live_button)
    live = viewer.layers[LIVE]
    assert live.visible and not scan.visible
    step = viewer.dims.current_step[0]
    with qtbot.waitSignal(dehaze.live_shown, timeout=30_000) as sig:
        _press(qtbot, viewer, Qt.Key_Right if step < 3 else Qt.Key_Left)
    assert sig.args == [viewer.dims.current_step[0]] and viewer.dims.current_step[0] != step
    live.visible = False  # the layer list's eye: the input is shown
    assert scan.visible
    live.visible = True
    assert not scan.visible
    _live_off(qtbot, dehaze)
    assert scan.visible and live.visible

    scan.visible = False  # the user's own choice
    with qtbot.waitSignal(dehaze.live_shown, timeout=60_000):
        _click(qtbot, dehaze.live_button)
    _live_off(qtbot, dehaze)
    assert not scan.visible
