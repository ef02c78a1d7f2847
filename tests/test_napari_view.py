"""``usdehaze view`` (viewer with both widgets docked) and the documentation screenshot.

``USDEHAZE_SCREENSHOT=docs/img/napari.png pytest tests/test_napari_view.py -k screenshot``
dehazes with the shipped priors (30 steps) and writes the screenshot there; without it the test
uses tiny priors and writes under tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from usdehaze.cli._app import run_app
from usdehaze.napari._launch import open_viewer
from usdehaze.napari._widget import DehazeWidget, GcnrWidget
from usdehaze.ultrasound.simulate import demo_scan_path

pytestmark = pytest.mark.gui


def _docked(viewer, cls):
    found = [w for w in viewer.window.dock_widgets.values() if isinstance(w, cls)]
    assert len(found) == 1
    return found[0]


def test_open_viewer_docks_widgets_and_loads_the_scans_roi(make_napari_viewer):
    viewer = open_viewer(demo_scan_path(), viewer=make_napari_viewer())
    assert [ly.name for ly in viewer.layers] == ["demo_scan", "ROI demo_scan.roi"]
    _docked(viewer, DehazeWidget)
    gcnr = _docked(viewer, GcnrWidget)
    assert gcnr.image_combo.currentText() == "demo_scan"
    assert [r["name"] for r in gcnr.rows] == ["lv_vs_myocardium"] and gcnr.error == ""


def test_view_command_errors_are_one_line(tmp_path, capsys):
    assert run_app(["view", "--help"]) == 0
    assert "napari" in capsys.readouterr().out
    assert run_app(["view", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5: no such file" in capsys.readouterr().err
    (tmp_path / "notes.h5").write_text("not a scan")
    assert run_app(["view", str(tmp_path / "notes.h5")]) == 2
    err = capsys.readouterr().err
    assert run_app(["info", str(tmp_path / "notes.h5")]) == 2  # the same reason, one line
    assert err == capsys.readouterr().err and "notes.h5" in err and err.count("\n") == 1
    assert run_app(["view", str(demo_scan_path()), "--roi", str(tmp_path / "r.json")]) == 2


def test_screenshot(make_napari_viewer, qtbot, tiny_priors, tmp_path):
    target = os.environ.get("USDEHAZE_SCREENSHOT")
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # the layout checked in test_napari_gui
    open_viewer(demo_scan_path(), viewer=viewer)
    dehaze = _docked(viewer, DehazeWidget)
    gcnr = _docked(viewer, GcnrWidget)
    viewer.dims.set_current_step(0, 1)
    if target:
        dehaze.steps.setValue(30)
    else:
        dehaze.steps.setValue(2)
        dehaze.model.setCurrentText("logsum")  # tiny dB priors
        dehaze.tissue_prior.setText(str(tiny_priors[0]))
        dehaze.haze_prior.setText(str(tiny_priors[1]))
    dehaze.device.setCurrentText("cpu")
    with qtbot.waitSignal(dehaze.run_finished, timeout=300_000) as sig:
        dehaze.run()
    assert sig.args == ["done"]
    # input | tissue | haze side by side, the ROI drawn over each (grid cells of two layers)
    roi = viewer.layers["ROI demo_scan.roi"]
    for name in ("demo_scan tissue (frame 1)", "demo_scan haze (frame 1)"):
        copy = gcnr.new_roi_layer(
            list(roi.data),
            shape_type=list(roi.shape_type),
            features=roi.features,
            name=f"ROI ({name.split()[1]})",
        )
        viewer.layers.move(viewer.layers.index(copy), viewer.layers.index(name) + 1)
    # cells fill from the bottom layer in pairs (image, ROI above it): input | tissue | haze
    order = [
        "demo_scan",
        roi.name,
        "demo_scan tissue (frame 1)",
        "ROI (tissue)",
        "demo_scan haze (frame 1)",
    ]
    for i, name in enumerate(order):
        viewer.layers.move(viewer.layers.index(name), i)
    viewer.layers.selection.active = viewer.layers["demo_scan"]
    gcnr.select(image="demo_scan tissue (frame 1)", shapes=roi.name)
    gcnr.refresh()
    assert gcnr.rows and gcnr.rows[0]["frame"] == 1
    grid = viewer.canvas.grid
    grid.enabled = True
    grid.stride = 2
    grid.shape = (3, 1)  # one above the other: the dock column leaves a tall canvas
    grid.spacing = 0.05
    viewer.reset_view()
    qtbot.wait(300)
    out = Path(target) if target else tmp_path / "napari.png"
    img = viewer.screenshot(str(out), canvas_only=False, flash=False)
    assert out.is_file() and img.ndim == 3 and img.shape[1] >= 1000
    assert np.ptp(img[..., :3]) > 100  # not a blank window


def test_view_of_a_result_file_loads_its_scans_roi(make_napari_viewer, tmp_path):
    """Issue 30 item 9: ``usdehaze view X.dehazed.h5`` shows ``X.roi.json`` (it looked for
    ``X.dehazed.roi.json`` only); a result elsewhere finds the roi.json of the scan it records
    as its source."""
    import shutil

    from usdehaze.napari._launch import default_roi
    from usdehaze.ultrasound.results import ResultWriter

    scan = Path(shutil.copy(demo_scan_path(), tmp_path / "x.h5"))
    roi = Path(shutil.copy(demo_scan_path().with_suffix(".roi.json"), tmp_path / "x.roi.json"))
    x, z = np.meshgrid(np.linspace(-0.02, 0.02, 8), np.linspace(0.01, 0.05, 6))
    db = np.full((1, 6, 8), -20.0, np.float32)
    paths = {"beside": tmp_path / "x.dehazed.h5", "elsewhere": tmp_path / "out" / "r.h5"}
    for path in paths.values():
        path.parent.mkdir(exist_ok=True)
        with ResultWriter(path, 1, (6, 8), x=x, z=z, attrs={"source": str(scan)}) as w:
            w.write(0, input=db[0], tissue=db[0], haze=db[0])
    assert default_roi(paths["beside"]) == roi
    assert default_roi(paths["elsewhere"]) == roi
    assert default_roi(scan) == roi
    roi.unlink()
    assert default_roi(paths["beside"]) is None
    shutil.copy(demo_scan_path().with_suffix(".roi.json"), roi)
    viewer = open_viewer(paths["beside"], viewer=make_napari_viewer())
    assert "ROI x.roi" in viewer.layers
    assert _docked(viewer, GcnrWidget).roi_combo.currentText() == "ROI x.roi"
