"""napari widgets: Dehaze (worker thread, progress, cancel, errors) and gCNR (ROI pairs, table,
roi.json round trip with ``usdehaze gcnr``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rois import annulus, circle, mm_roi, px_roi, rect

from usdehaze.cli._app import run_app
from usdehaze.napari._widget import DehazeWidget, GcnrWidget
from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.roi import load_roi
from usdehaze.ultrasound.simulate import demo_scan_path

ROOT = Path(__file__).resolve().parents[1]
DEMO_ROI = demo_scan_path().with_suffix(".roi.json")
pytestmark = pytest.mark.gui


@pytest.fixture
def demo(make_napari_viewer):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(demo_scan_path()), plugin="usdehaze")
    return viewer, layer


def _result(viewer, role):
    """The one result layer of ``role`` (named by the frame the slider showed)."""
    (layer,) = [ly for ly in viewer.layers if ly.name.startswith(f"demo_scan {role} (frame ")]
    return layer


# -- Dehaze --------------------------------------------------------------------------------------
def _dehaze_widget(viewer, tiny_priors, steps=2, seed=5, model="logsum"):
    """The widget with tiny priors: dB ones with a log-domain model unless told."""
    w = DehazeWidget(viewer)
    w.model.setCurrentText(model)
    w.steps.setValue(steps)
    w.seed.setValue(seed)
    w.device.setCurrentText("cpu")
    w.tissue_prior.setText(str(tiny_priors[0]))
    w.haze_prior.setText(str(tiny_priors[1]))
    return w


def _widget_config(priors, model, steps=2, seed=5):
    """The DehazeConfig that _dehaze_widget's form describes (to compare with the library)."""
    t, h = priors
    return DehazeConfig(
        model=model, steps=steps, seed=seed, device="cpu", tissue_prior=str(t), haze_prior=str(h)
    )


def test_dehaze_widget_end_to_end(demo, qtbot, tiny_priors):
    viewer, layer = demo
    viewer.dims.set_current_step(0, 2)
    w = _dehaze_widget(viewer, tiny_priors)
    assert w.layer_combo.currentText() == "demo_scan"
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["done"] and w.progress.value() == 100
    tissue = viewer.layers["demo_scan tissue (frame 2)"]  # named by its frames
    haze = viewer.layers["demo_scan haze (frame 2)"]
    t_nat, h_nat = tissue.metadata["usdehaze"], haze.metadata["usdehaze"]
    # the same numbers as the library (and hence ``usdehaze run``): batch seeded seed + frame
    cfg = _widget_config(tiny_priors, "logsum")
    db = layer.metadata["usdehaze"].db
    ref = Dehazer(cfg)(db[2:3], frames=[2])
    np.testing.assert_allclose(t_nat.db, ref["tissue"], atol=1e-2)
    np.testing.assert_allclose(h_nat.db, ref["haze"], atol=1e-2)
    np.testing.assert_array_equal(t_nat.input_db, db[2:3])
    # shown at the frame it came from, on the input's mm grid, contrast linked with the input
    assert tissue.data.shape == (1, *layer.data.shape[1:])
    assert tissue.translate[0] == 2 and tuple(tissue.scale) == tuple(layer.scale)
    layer.contrast_limits = (-50.0, -3.0)
    assert tuple(haze.contrast_limits) == (-50.0, -3.0)
    assert t_nat.attrs["source_frames"] == [2] and json.loads(t_nat.attrs["config"])["steps"] == 2


def test_dehaze_widget_notes_little_effect(demo, qtbot, tiny_priors, monkeypatch):
    """A result that does no harm but barely raises the regions' contrast: one info
    notification with usdehaze run's note, and harm_little_effect on its layers."""
    from napari.utils.notifications import notification_manager

    from usdehaze.ultrasound import harm

    viewer, _ = demo
    monkeypatch.setattr(harm, "CONTRAST_TOLERANCE_DB", 1e9)  # never harm ...
    monkeypatch.setattr(harm, "GCNR_TOLERANCE", 1e9)
    monkeypatch.setattr(harm, "CONTRAST_GAIN_DB", 1e9)  # ... and any gain counts as little
    w = _dehaze_widget(viewer, tiny_priors)
    before = len(notification_manager.records)
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["done"]
    msgs = [str(n.message) for n in notification_manager.records[before:]]
    attrs = _result(viewer, "tissue").metadata["usdehaze"].attrs
    assert attrs["harm_little_effect"] is True and attrs["harm_warning"] is False
    noted = [m for m in msgs if "little haze out" in m]
    assert len(noted) == 1 and noted[0].startswith("usdehaze dehaze: demo_scan: "), msgs


def test_dehaze_widget_iq_model_uses_the_scan_iq(demo, qtbot, tiny_iq_priors):
    from usdehaze.napari._dehaze_widget import layer_config
    from usdehaze.napari._layers import Native

    viewer, layer = demo
    viewer.dims.set_current_step(0, 1)
    w = _dehaze_widget(viewer, tiny_iq_priors, model="iq")
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["done"]
    native = layer.metadata["usdehaze"]
    assert np.iscomplexobj(native.iq) and native.iq.shape == native.db.shape
    cfg = _widget_config(tiny_iq_priors, "iq")
    ref = Dehazer(cfg).dehaze_iq(native.iq[1:2], frames=[1])
    got = viewer.layers["demo_scan tissue (frame 1)"].metadata["usdehaze"]
    np.testing.assert_allclose(got.db, ref["tissue"], atol=1e-2)
    assert json.loads(got.attrs["config"])["model"] == "iq"
    # a layer without IQ (a result's input, a magnitude-only scan) runs logsum and says so
    no_iq = Native(native.db, native.x, native.z)
    fallback, note = layer_config(no_iq, DehazeConfig(model="iq"))
    assert fallback.model == "logsum" and "magnitude-only" in note


def test_dehaze_widget_priors_folder(demo, qtbot, tiny_iq_priors, tmp_path, monkeypatch):
    """A priors folder (usdehaze adapt's -o DIR), typed or picked: the run uses its priors and
    records their checksums; a folder without both priors is one notification, no layers."""
    import shutil

    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QFileDialog

    viewer, _ = demo
    folder = tmp_path / "lab"
    folder.mkdir()
    for src, name in zip(tiny_iq_priors, ("tissue_iq", "haze_iq")):
        shutil.copy(src, folder / f"{name}.safetensors")
        shutil.copy(src.with_suffix(".json"), folder / f"{name}.json")
    w = DehazeWidget(viewer)
    w.steps.setValue(2)
    w.device.setCurrentText("cpu")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    w.priors_browse.click()
    assert w.priors.text() == str(folder) and w.config().priors == str(folder)
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["done"]
    got = _result(viewer, "tissue").metadata["usdehaze"]
    assert json.loads(got.attrs["config"])["priors"] == str(folder)
    (folder / "haze_iq.json").unlink()
    before = len(notification_manager.records)
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["error"]
    msgs = [str(n.message) for n in notification_manager.records[before:]]
    assert any("haze_iq.json" in m for m in msgs), msgs


def test_dehaze_result_saves_and_reopens(demo, qtbot, tiny_priors, tmp_path):
    from usdehaze.napari._writer import write_result
    from usdehaze.ultrasound.results import load_result

    viewer, layer = demo
    w = _dehaze_widget(viewer, tiny_priors)
    w.frames.setCurrentText("all frames")
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["done"]
    picked = [viewer.layers[f"demo_scan {r} (frames 0–3)"] for r in ("tissue", "haze")]
    out = tmp_path / "dehazed.h5"
    write_result(str(out), [ly.as_layer_data_tuple() for ly in picked])
    with load_result(out) as res:
        assert res.n_frames == 4 and res.grid == "polar"
        np.testing.assert_array_equal(res.frames("input"), layer.metadata["usdehaze"].db)
        np.testing.assert_array_equal(res.frames("tissue"), picked[0].metadata["usdehaze"].db)
        assert res.attrs["source_frames"] == [0, 1, 2, 3]
    reopened = viewer.open(str(out), plugin="usdehaze")
    assert [ly.metadata["usdehaze"].role for ly in reopened] == ["input", "tissue", "haze"]


def test_dehaze_cancel(demo, qtbot, tiny_priors):
    viewer, _ = demo
    w = _dehaze_widget(viewer, tiny_priors, steps=500)
    w._progress.connect(lambda v: w.cancel())
    n = len(viewer.layers)
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()
    assert sig.args == ["cancelled"] and len(viewer.layers) == n
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


def test_dehaze_errors_become_notifications(demo, qtbot, tiny_priors, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer, _ = demo
    w = _dehaze_widget(viewer, tiny_priors)
    w.tissue_prior.setText(str(tmp_path / "nowhere"))
    before = len(notification_manager.records)
    with qtbot.waitSignal(w.run_finished, timeout=60_000) as sig:
        w.run()  # fails in the worker thread while loading the prior
    assert sig.args == ["error"]
    msgs = [str(n.message) for n in notification_manager.records[before:]]
    assert any("nowhere" in m and m.startswith("usdehaze dehaze:") for m in msgs), msgs
    w.tissue_prior.setText(str(tiny_priors[0]))
    w.rule.setCurrentText("pigdm")  # invalid for the nonlinear logsum model: caught up front
    with qtbot.waitSignal(w.run_finished, timeout=5_000) as sig:
        w.run()
    assert sig.args == ["error"] and "logsum" in str(notification_manager.records[-1].message)
    assert len(viewer.layers) == 1


# -- gCNR ----------------------------------------------------------------------------------------
def _cli_gcnr(capsys, roi, frame, file=demo_scan_path()):
    capsys.readouterr()
    assert run_app(["gcnr", str(file), "--roi", str(roi), "--frames", str(frame), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["pairs"]


def _same(rows, cli):
    assert [r["name"] for r in rows] == [c["name"] for c in cli]
    for r, c in zip(rows, cli):
        for k in ("gcnr", "ks", "cnr", "cnr_db", "contrast_db", "n_target", "n_background"):
            assert r[k] == pytest.approx(c[k], rel=1e-6, abs=1e-9), k


def test_gcnr_table_matches_cli_and_follows_frame(demo, qtbot, capsys):
    viewer, _ = demo
    w = GcnrWidget(viewer)
    w.load_roi(DEMO_ROI)
    viewer.dims.set_current_step(0, 0)
    w.refresh()
    _same(w.rows, _cli_gcnr(capsys, DEMO_ROI, 0))
    assert w.table.rowCount() == 1 and w.table.item(0, 1).text() == f"{w.rows[0]['gcnr']:.3f}"
    with qtbot.waitSignal(w.updated, timeout=5_000):
        viewer.dims.set_current_step(0, 3)
    assert w.rows[0]["frame"] == 3
    _same(w.rows, _cli_gcnr(capsys, DEMO_ROI, 3))


def test_gcnr_table_shows_haze_contrast(demo):
    """Haze contrast = mean dB(background) − mean dB(target) on the layer's stored frame."""
    from usdehaze.napari._gcnr_widget import COLUMNS
    from usdehaze.napari._layers import native_of
    from usdehaze.ultrasound.roi import pair_masks

    viewer, layer = demo
    w = GcnrWidget(viewer)
    w.load_roi(DEMO_ROI)
    viewer.dims.set_current_step(0, 2)
    w.refresh()
    native = native_of(layer)
    ((_, t, b),) = pair_masks(load_roi(DEMO_ROI), native.x, native.z)
    img = np.asarray(native.db[w.rows[0]["frame"] - native.frame0], np.float64)
    expected = img[b].mean() - img[t].mean()
    assert expected > 1 and w.rows[0]["haze_contrast_db"] == pytest.approx(expected)
    col = [c[0] for c in COLUMNS].index("haze contrast dB")
    assert w.table.item(0, col).text() == f"{expected:.2f}"


def test_gcnr_updates_when_shapes_move(demo, qtbot, capsys, tmp_path):
    viewer, _ = demo
    w = GcnrWidget(viewer)
    shapes = w.load_roi(DEMO_ROI)
    w.refresh()
    before = dict(w.rows[0])
    data = list(shapes.data)
    data[0] = data[0] + np.array([0.0, 12.0])  # target 12 mm to the right, into the wall
    with qtbot.waitSignal(w.updated, timeout=5_000):
        shapes.data = data
    assert w.rows[0]["gcnr"] != pytest.approx(before["gcnr"])
    saved = w.save_roi(tmp_path / "moved.json")
    frame = w.rows[0]["frame"]
    _same(w.rows, _cli_gcnr(capsys, saved, frame))
    moved = load_roi(saved).pairs[0].target
    assert moved["shape"] == "circle"
    assert moved["center"][0] == pytest.approx(load_roi(DEMO_ROI).pairs[0].target["center"][0] + 12)


def test_gcnr_frame_steps_reuse_the_masks_and_edits_remake_them(demo, qtbot, capsys, monkeypatch):
    """The regions' masks are rasterised once per regions and grid: a frame step (the slider,
    a cine playing, the live view) measures the same masks on the new frame (15 of the ~23 ms
    a refresh took on the GUI thread); moving a region makes them again, and the table still
    equals ``usdehaze gcnr`` on every frame."""
    from usdehaze.ultrasound import roi as roi_mod

    made = []
    pair_masks = roi_mod.pair_masks
    monkeypatch.setattr(
        roi_mod, "pair_masks", lambda *a, **k: made.append(1) or pair_masks(*a, **k)
    )
    viewer, _ = demo
    w = GcnrWidget(viewer)
    shapes = w.load_roi(DEMO_ROI)
    viewer.dims.set_current_step(0, 0)
    w.refresh()
    n = len(made)
    for frame in (1, 2, 3):
        with qtbot.waitSignal(w.updated, timeout=5_000):
            viewer.dims.set_current_step(0, frame)
        _same(w.rows, _cli_gcnr(capsys, DEMO_ROI, frame))
    assert len(made) == n  # three frames measured, no mask made again
    data = list(shapes.data)
    data[0] = data[0] + np.array([0.0, 12.0])
    with qtbot.waitSignal(w.updated, timeout=5_000):
        shapes.data = data
    assert len(made) == n + 1


@pytest.mark.parametrize("roi_file", [DEMO_ROI, ROOT / "configs" / "roi_example.json"])
def test_roi_round_trip_is_exact(demo, tmp_path, roi_file):
    viewer, _ = demo
    w = GcnrWidget(viewer)
    w.load_roi(roi_file)
    saved = w.save_roi(tmp_path / "roi.json")
    a, b = load_roi(roi_file).to_dict(), load_roi(saved).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or _close_dicts(a, b)


def _close_dicts(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close_dicts(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close_dicts(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == pytest.approx(b, abs=1e-9)
    return a == b


def test_drawn_shapes_become_roi_the_cli_accepts(demo, capsys, tmp_path):
    viewer, _ = demo
    w = GcnrWidget(viewer)
    layer = w.new_roi_layer()
    # (z, x) mm: an axis-aligned rectangle, a non-circular ellipse, a rotated square, a polygon
    rect = np.array([[60, -10], [60, 0], [75, 0], [75, -10]], float)
    ellipse = np.array([[80, 5], [80, 25], [90, 25], [90, 5]], float)
    c, h = np.array([70.0, 15.0]), 5.0
    rot = c + h * np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], float)
    poly = np.array([[95, -20], [95, -5], [110, -12]], float)
    layer.add(
        [rect, ellipse, rot, poly],
        shape_type=["rectangle", "ellipse", "rectangle", "polygon"],
    )
    layer.features = {
        "role": ["target", "background", "target", "background"],
        "pair": ["a", "a", "b", "b"],
        "roi": [""] * 4,
    }
    w.select(image="demo_scan", shapes=layer.name)
    w.refresh()
    assert w.error == "" and [r["name"] for r in w.rows] == ["a", "b"]
    saved = w.save_roi(tmp_path / "drawn.json")
    pairs = {p.name: p for p in load_roi(saved).pairs}
    assert pairs["a"].target == {"shape": "rectangle", "min": [-10.0, 60.0], "max": [0.0, 75.0]}
    assert pairs["a"].background["shape"] == "polygon"
    assert pairs["b"].target["shape"] == "polygon" and len(pairs["b"].target["points"]) == 4
    _same(w.rows, _cli_gcnr(capsys, saved, w.rows[0]["frame"]))


def test_ellipse_and_annulus_rasterise_like_their_roi_shapes(demo):
    """Shapes converted for display come back with (nearly) the same pixels on the polar grid."""
    from usdehaze.napari._roi_shapes import roi_to_shapes, shape_to_roi
    from usdehaze.ultrasound.roi import pair_masks, roi_from_dict

    _, layer = demo
    nat = layer.metadata["usdehaze"]
    lv = ("lv_vs_myocardium", circle([0.0, 70.0], 8.0), annulus([0.0, 70.0], 18.0, 24.0))
    roi = roi_from_dict(mm_roi(lv))
    data, types, _ = roi_to_shapes(roi)
    # as edited shapes (no memo): the annulus is a keyhole polygon
    pair = roi.pairs[0]
    edited = roi_from_dict(
        mm_roi(("p", shape_to_roi(data[0], types[0]), shape_to_roi(data[1], types[1])))
    )
    assert (
        edited.pairs[0].target == pair.target and edited.pairs[0].background["shape"] == "polygon"
    )
    ((_, t0, b0),) = pair_masks(roi, nat.x, nat.z)
    ((_, t1, b1),) = pair_masks(edited, nat.x, nat.z)
    np.testing.assert_array_equal(t0, t1)
    assert (b0 != b1).sum() <= 0.01 * b0.sum()


def test_px_roi_is_placed_on_the_grid(demo, tmp_path, capsys):
    viewer, _ = demo
    w = GcnrWidget(viewer)
    px = px_roi(("px", rect([40, 120], [60, 150]), rect([70, 120], [90, 150])))
    (tmp_path / "px.json").write_text(json.dumps(px))
    w.select(image="demo_scan")
    w.load_roi(tmp_path / "px.json")
    w.refresh()
    cli = _cli_gcnr(capsys, tmp_path / "px.json", w.rows[0]["frame"])
    # a px rectangle is a curved patch in mm: the outline follows it to within the edge pixels
    assert w.rows[0]["n_target"] == pytest.approx(cli[0]["n_target"], rel=0.15)
    assert w.rows[0]["gcnr"] == pytest.approx(cli[0]["gcnr"], abs=0.1)


def test_gcnr_problems_show_in_status_not_tracebacks(demo, tmp_path):
    viewer, _ = demo
    w = GcnrWidget(viewer)
    layer = w.new_roi_layer()
    w.refresh()
    assert w.rows == [] and "no shapes" in w.error
    layer.add([np.array([[60, -10], [60, 0], [75, 0], [75, -10]], float)], shape_type="rectangle")
    w.refresh()
    assert "no background" in w.error and w.status.text() == w.error
    layer.selected_data = {0}
    w.pair_name.setText("lv")
    w.set_role("background")
    w.refresh()
    assert "pair 'lv': no target" in w.error
    assert list(layer.edge_color[0][:3]) == [0.0, 1.0, 1.0]  # cyan for background
    from usdehaze.errors import UsageError

    with pytest.raises(UsageError, match="no target"):
        w.save_roi(tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    # a broken roi.json from the Load button: a notification naming file and field
    from napari.utils.notifications import notification_manager

    (tmp_path / "broken.json").write_text('{"version": 1, "units": "cm", "pairs": []}')
    n = len(viewer.layers)
    w._guard(lambda: w.load_roi(tmp_path / "broken.json"), "load")
    assert "broken.json: key 'units'" in str(notification_manager.records[-1].message)
    assert len(viewer.layers) == n and "units" in w.status.text()


def test_roi_json_records_its_scan_and_another_scans_is_said(demo, tmp_path, capsys):
    """Issue 30 item 9: a roi.json saved from napari names the scan it was drawn on (and still
    works with ``usdehaze gcnr``); loading one drawn on another scan, or whose regions lie
    outside the image, is a warning (it loaded silently); the scan's own loads quietly."""
    from napari.utils.notifications import notification_manager

    viewer, _ = demo
    gcnr = GcnrWidget(viewer)
    gcnr.select(image="demo_scan")

    def warnings_of(path):
        before = len(notification_manager.records)
        gcnr.load_roi(path)
        gcnr.refresh()
        return [str(r.message) for r in notification_manager.records[before:]]

    assert warnings_of(DEMO_ROI) == []  # the scan's own regions (no scan recorded): fit
    saved = gcnr.save_roi(tmp_path / "saved.json")
    d = json.loads(saved.read_text())
    assert d["scan"]["file"] == "demo_scan.h5" and d["scan"]["grid"] == "polar"
    capsys.readouterr()
    assert run_app(["gcnr", str(demo_scan_path()), "--roi", str(saved), "--frames", "0"]) == 0
    assert warnings_of(saved) == []
    d["scan"]["file"] = "another_scan.h5"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(d))
    msgs = warnings_of(other)
    assert len(msgs) == 1 and "drawn on another_scan.h5, not on demo_scan.h5" in msgs[0]
    assert "another_scan.h5" in gcnr.status.text() and gcnr.rows  # said, and still measured
    far = json.loads(DEMO_ROI.read_text())
    far["pairs"][0]["target"]["center"][1] += 500.0  # 0.5 m deep: not this scan's region
    (tmp_path / "far.json").write_text(json.dumps(far))
    msgs = warnings_of(tmp_path / "far.json")
    assert len(msgs) == 1 and "lv_vs_myocardium: target lie outside layer 'demo_scan'" in msgs[0]
