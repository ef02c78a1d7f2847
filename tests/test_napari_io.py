"""napari plugin I/O: reader (scans of every kind, result files), sample data, writer, manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from usdehaze.napari._layers import Native
from usdehaze.napari._reader import napari_get_reader
from usdehaze.ultrasound.geometry import ScanConverter
from usdehaze.ultrasound.io import load_scan
from usdehaze.ultrasound.logcomp import to_db
from usdehaze.ultrasound.results import ResultWriter, load_result
from usdehaze.ultrasound.simulate import demo_scan_path

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui


def _iq(n=3, nz=24, nx=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, nz, nx)) + 1j * rng.normal(size=(n, nz, nx))).astype(np.complex64)


def test_sector_scan_opens_scan_converted_in_mm(make_napari_viewer):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(demo_scan_path()), plugin="usdehaze")
    with load_scan(demo_scan_path()) as scan:
        db = to_db(scan.frames(0, scan.n_frames))
        conv = ScanConverter.for_axes(scan.axes["theta"], scan.axes["r"], scan.axes["origin"])
        extent = scan.extent_mm
    np.testing.assert_allclose(layer.data, conv(db, fill=-60.0), atol=1e-5)
    assert tuple(layer.contrast_limits) == (-60.0, 0.0)
    assert layer.data.max() > -1.0 and layer.data.min() == pytest.approx(
        -60.0, abs=1e-3
    )  # bilinear peak, blank sides
    # world coordinates are mm: the last pixel centre sits at the sector's deepest point
    (_, z0, x0), (_, dz, dx) = layer.translate, layer.scale
    assert dz == pytest.approx(dx) and dz == pytest.approx(1e3 * np.diff(conv.z).mean(), rel=1e-3)
    assert 0.3 < dz < 1.0  # a sector of about 120 mm on a grid of a few hundred pixels
    assert x0 == pytest.approx(extent[0], abs=dx) and -x0 == pytest.approx(extent[1], abs=dx)
    assert z0 + dz * (layer.data.shape[1] - 1) == pytest.approx(extent[3], abs=dz)
    native = layer.metadata["usdehaze"]
    assert isinstance(native, Native) and native.grid == "polar" and native.role == "input"
    np.testing.assert_array_equal(native.db, db)
    assert native.source == str(demo_scan_path())


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_plain_cartesian_scan_keeps_its_grid(make_napari_viewer, tmp_path, suffix):
    iq = _iq()
    path = tmp_path / f"plain{suffix}"
    if suffix == ".h5":
        with h5py.File(path, "w") as f:
            f["iq"] = iq
            f["iq"].attrs["pitch"] = 2e-4
    else:
        import zarr

        zarr.open_group(str(path), mode="w").create_array("iq", shape=iq.shape, dtype="complex64")[
            :
        ] = iq
    assert napari_get_reader(str(path)) is not None
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="usdehaze")
    np.testing.assert_allclose(layer.data, to_db(iq), atol=1e-6)
    with load_scan(path) as scan:
        xs = scan.axes["x"]
    assert layer.scale[1] == pytest.approx(np.diff(xs).mean() * 1e3)
    assert layer.translate[2] == pytest.approx(xs[0] * 1e3)


def _info_reason(capsys, path):
    """The one line ``usdehaze info PATH`` gives for a file it refuses (exit status 2)."""
    from usdehaze.cli._app import run_app

    capsys.readouterr()
    assert run_app(["info", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line.removeprefix("usdehaze: error: ")


def test_get_reader_never_raises_and_refuses_with_the_info_line(tmp_path, capsys):
    """Asking never raises; a file of a kind usdehaze reads (its suffix) that it cannot open
    gets a reader raising the line ``usdehaze info`` prints (napari shows it, not "refused the
    file"); a missing file, several files or a non-path get None."""
    from usdehaze.errors import UsageError

    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["x"] = np.zeros(3)
    (tmp_path / "dir.zarr").mkdir()
    for p in ("text.h5", "empty.h5", "dir.zarr"):
        refuse = napari_get_reader(str(tmp_path / p))
        assert refuse is not None, p
        with pytest.raises(UsageError) as exc:
            refuse(str(tmp_path / p))
        assert str(exc.value) == _info_reason(capsys, tmp_path / p) and "\n" not in str(exc.value)
    assert napari_get_reader(str(tmp_path / "missing.h5")) is None
    (tmp_path / "notes.txt").write_text("hello")  # not a kind usdehaze reads: no reader
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader([str(demo_scan_path())] * 2) is None
    assert napari_get_reader(42) is None
    assert napari_get_reader([str(demo_scan_path())]) is not None


def _menu(qtbot, viewer, title):
    """Click File > ``title`` (patch its dialogs first); what napari's handler would show, with
    its frames dropped (they would keep the viewer alive past napari's leak check)."""
    import gc
    import sys

    bar = viewer.window._qt_window.menuBar()
    (file_menu,) = [a.menu() for a in bar.actions() if a.text().replace("&", "") == "File"]
    (action,) = [a for a in file_menu.actions() if a.text().startswith(title)]
    with qtbot.capture_exceptions() as caught:
        action.trigger()
    raised = caught[0][1] if caught else None
    e = raised
    while e is not None:
        e.__traceback__ = None
        e = e.__context__
    caught.clear()
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):  # set by the hook
        if hasattr(sys, name):
            setattr(sys, name, None)
    gc.collect()  # (napari's leak check collects only the young generations)
    return raised


def _file_open(qtbot, viewer, path, accept=True):
    """File > Open File(s)... picking ``path``; napari's Choose reader dialog, when it comes,
    answered OK on the reader it preselected (Cancel when not ``accept``): (for each dialog its
    readers, the one preselected and its message), what was raised."""
    from unittest import mock

    from napari._qt.dialogs import qt_reader_dialog as qrd
    from qtpy.QtWidgets import QDialog, QLabel

    seen = []

    def exec_(dialog):
        buttons = dialog.reader_btn_group.buttons()
        text = " ".join(label.text() for label in dialog.findChildren(QLabel))
        checked = dialog.reader_btn_group.checkedButton()
        seen.append(([b.text() for b in buttons], checked.text() if checked else None, text))
        return QDialog.Accepted if accept else QDialog.Rejected

    pick = mock.patch.object(
        type(viewer.window._qt_viewer), "_open_file_dialog_uni", lambda *a, **k: [str(path)]
    )
    with pick, mock.patch.object(qrd.QtReaderDialog, "exec_", exec_):
        raised = _menu(qtbot, viewer, "Open File(s)")
    return seen, raised


def _file_save(qtbot, viewer, path):
    """File > Save Selected Layers..., typing ``path`` in the dialog with the usdehaze result
    filter chosen: (the filters offered, what was raised)."""
    from unittest import mock

    from qtpy.QtWidgets import QFileDialog

    offered = []

    def dialog(*args, filter="", **kwargs):
        offered.append(filter)
        (mine,) = [f for f in filter.split(";;") if "usdehaze" in f]
        return str(path), mine

    with mock.patch.object(QFileDialog, "getSaveFileName", dialog):
        raised = _menu(qtbot, viewer, "Save Selected Layers")
    return offered, raised


def test_file_open_in_plain_napari_preselects_usdehaze(make_napari_viewer, qtbot, tmp_path):
    """Plain napari (no usdehaze widget open): File > Open of an .h5 or .hdf5 scan asks which
    reader, usdehaze listed first and preselected (napari builtins, which cannot read HDF5,
    were), and OK opens it; nothing of usdehaze is in napari's reader preferences."""
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    copy = tmp_path / "scan.hdf5"
    copy.write_bytes(demo_scan_path().read_bytes())
    for path in (demo_scan_path(), copy):
        seen, raised = _file_open(qtbot, viewer, path)
        assert raised is None, raised
        ((readers, chosen, _),) = seen  # napari's own reader claims the suffix too
        assert "usdehaze" in chosen and readers[0] == chosen and len(readers) > 1, seen
        assert viewer.layers[-1].name == path.stem and "usdehaze" in viewer.layers[-1].metadata
    assert "usdehaze" not in get_settings().plugins.extension2reader.values()


def test_file_open_with_the_plugin_in_use_opens_in_usdehaze_without_asking(
    make_napari_viewer, qtbot, tmp_path, capsys, monkeypatch
):
    """Issue 30 item 3: with a usdehaze widget open (Plugins > usdehaze, or usdehaze view),
    File > Open of any scan suffix napari's own reader also claims (.h5, .hdf5, .dcm, .mp4,
    .zarr...) opens in usdehaze with no Choose reader dialog. The user's own reader choice for a
    suffix is kept; the session's entries go when the window closes, from napari's settings
    file too (napari saves the whole settings when a dock is added). A .h5 usdehaze cannot read: napari's dialog, with usdehaze's
    one-line reason (``usdehaze info``'s), offering the other readers."""
    from napari.settings import get_settings

    from usdehaze.napari._prefer import shared_patterns

    settings = get_settings()
    monkeypatch.setattr(settings, "config_path", tmp_path / "napari-settings.yaml")
    settings.plugins.extension2reader = {"*.mp4": "napari"}  # the user's own choice
    viewer = make_napari_viewer()
    assert {"*.h5", "*.hdf5", "*.dcm", "*.mp4", "*.zarr"} <= set(shared_patterns())
    viewer.window.add_plugin_dock_widget("usdehaze", "Dehaze")  # as Plugins > usdehaze does
    prefs = dict(settings.plugins.extension2reader)
    assert prefs["*.mp4"] == "napari", prefs  # the user's choice stays
    assert {prefs[p] for p in ("*.h5", "*.hdf5", "*.dcm", "*.zarr")} == {"usdehaze"}, prefs

    copy = tmp_path / "scan.hdf5"
    copy.write_bytes(demo_scan_path().read_bytes())
    for path in (demo_scan_path(), copy):
        n = len(viewer.layers)
        seen, raised = _file_open(qtbot, viewer, path)
        assert seen == [] and raised is None, (seen, raised)  # no dialog: opened at once
        assert len(viewer.layers) == n + 1
        assert viewer.layers[-1].name == path.stem and "usdehaze" in viewer.layers[-1].metadata

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    n = len(viewer.layers)
    seen, raised = _file_open(qtbot, viewer, tmp_path / "other.h5", accept=False)
    ((readers, _, message),) = seen
    assert "usdehaze" not in " ".join(readers) and readers, seen  # the others offered
    assert _info_reason(capsys, tmp_path / "other.h5") in message, seen
    assert raised is None and len(viewer.layers) == n

    viewer.close()  # the window closes: the session's entries go, the file without them
    assert settings.plugins.extension2reader == {"*.mp4": "napari"}
    on_disk = yaml.safe_load(settings.config_path.read_text())
    assert on_disk["plugins"]["extension2reader"] == {"*.mp4": "napari"}, on_disk


def test_still_images_are_left_to_napari_but_view_opens_them(make_napari_viewer, tmp_path):
    """PNG and other photo formats are not in the manifest's patterns (napari would offer, even
    preselect, usdehaze for every photo); ``usdehaze view`` opens one through the same reader."""
    from usdehaze.napari._launch import open_layers
    from usdehaze.ultrasound.io import filename_patterns

    pats = filename_patterns()
    assert {"*.h5", "*.hdf5", "*.dcm", "*.mp4", "*.zarr"} <= set(pats)
    assert not {"*.png", "*.jpg", "*.tif", "*.gif"} & set(pats)
    iio = pytest.importorskip("imageio.v3")
    img = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)
    iio.imwrite(tmp_path / "frame.png", img)
    viewer = make_napari_viewer()
    (layer,) = open_layers(viewer, tmp_path / "frame.png")
    assert layer.name.startswith("frame") and layer.metadata["usdehaze"].role == "input"


def _result(path, n=2, shape=(24, 16), with_std=False):
    rng = np.random.default_rng(1)
    keys = ["input", "tissue", "haze"] + (["tissue_std", "haze_std"] if with_std else [])
    arrays = {k: -60 * rng.random((n, *shape)).astype(np.float32) for k in keys}
    theta, r = np.linspace(-0.5, 0.5, shape[1]), np.linspace(0.01, 0.05, shape[0])
    R, T = np.meshgrid(r, theta, indexing="ij")
    x, z = R * np.sin(T), R * np.cos(T)
    with ResultWriter(
        path,
        n,
        shape,
        x=x,
        z=z,
        grid="polar",
        axes={"theta": theta, "r": r, "origin": [0.0, 0.0]},
        with_std=with_std,
        attrs={"dynamic_range": 60.0, "seed": 3},
    ) as w:
        for i in range(n):
            w.write(i, **{k: v[i] for k, v in arrays.items()})
    return arrays


@pytest.mark.parametrize("with_std", [False, True])
def test_result_file_opens_as_linked_layers(make_napari_viewer, tmp_path, with_std):
    from usdehaze.napari._widget import GcnrWidget

    arrays = _result(tmp_path / "res.h5", with_std=with_std)
    viewer = make_napari_viewer()
    GcnrWidget(viewer)  # a docked widget links groups as layers arrive
    layers = viewer.open(str(tmp_path / "res.h5"), plugin="usdehaze")
    roles = [ly.metadata["usdehaze"].role for ly in layers]
    assert roles == list(arrays)
    for ly in layers:
        np.testing.assert_array_equal(
            ly.metadata["usdehaze"].db, arrays[ly.metadata["usdehaze"].role]
        )
        assert ly.name == f"res {ly.metadata['usdehaze'].role}"
    by = {ly.metadata["usdehaze"].role: ly for ly in layers}
    by["tissue"].contrast_limits = (-40.0, -5.0)
    assert tuple(by["haze"].contrast_limits) == (-40.0, -5.0)
    assert tuple(by["input"].contrast_limits) == (-40.0, -5.0)
    if with_std:
        assert tuple(by["tissue_std"].contrast_limits) != (-40.0, -5.0)


def test_writer_round_trip(make_napari_viewer, tmp_path):
    from usdehaze.napari._writer import write_result

    arrays = _result(tmp_path / "res.h5")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "res.h5"), plugin="usdehaze")
    picked = [ly for ly in layers if ly.metadata["usdehaze"].role in ("tissue", "haze")]
    out = tmp_path / "again.h5"
    assert write_result(str(out), [ly.as_layer_data_tuple() for ly in picked]) == [str(out)]
    with load_result(out) as res, load_result(tmp_path / "res.h5") as ref:
        for k in ("input", "tissue", "haze"):
            np.testing.assert_array_equal(res.frames(k), arrays[k])
        np.testing.assert_array_equal(res.x, ref.x)
        assert res.grid == "polar" and res.attrs["seed"] == 3 and res.attrs["complete"]
    # through napari's own save, the plugin picked by extension
    viewer.layers.selection = set(picked)
    saved = viewer.layers.save(str(tmp_path / "third.h5"), selected=True, plugin="usdehaze")
    assert saved == [str(tmp_path / "third.h5")]
    with load_result(tmp_path / "third.h5") as res:
        np.testing.assert_array_equal(res.frames("haze"), arrays["haze"])


def test_writer_needs_tissue_and_haze(make_napari_viewer, tmp_path):
    from usdehaze.napari._writer import SaveRefused, write_result

    _result(tmp_path / "res.h5")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "res.h5"), plugin="usdehaze")
    with pytest.raises(SaveRefused, match="no haze layer"):
        write_result(str(tmp_path / "o.h5"), [layers[1].as_layer_data_tuple()])
    assert not (tmp_path / "o.h5").exists()


def test_writer_never_over_a_file_usdehaze_did_not_write(make_napari_viewer, tmp_path):
    """issue 16: the napari writer checks its path like every command (usdehaze.outputs)."""
    import h5py

    from usdehaze.napari._writer import SaveRefused, write_result

    _result(tmp_path / "res.h5")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "res.h5"), plugin="usdehaze")
    picked = [ly.as_layer_data_tuple() for ly in layers if ly.metadata["usdehaze"].role != "input"]
    theirs = tmp_path / "theirs.h5"
    with h5py.File(theirs, "w") as f:
        f["data"] = np.arange(4)
    before = theirs.read_bytes()
    with pytest.raises(SaveRefused, match="usdehaze did not write"):
        write_result(str(theirs), picked)
    assert theirs.read_bytes() == before
    with pytest.raises(SaveRefused, match="would overwrite the input"):
        write_result(str(tmp_path / "res.h5"), picked)  # the file the layers came from
    for _ in range(2):  # its own output: replaced
        assert write_result(str(tmp_path / "new.h5"), picked)
    with load_result(tmp_path / "new.h5") as res:
        assert res.attrs["usdehaze_output"] == "napari"


def test_file_save_never_replaces_a_scan_and_keeps_its_refusals(
    make_napari_viewer, qtbot, tmp_path
):
    """Issue 30 item 8, as a user saves (File > Save Selected Layers...): a name without suffix
    gets .h5; a result usdehaze wrote is replaced; a scan is not, even one usdehaze wrote (the
    demo scan, a simulate output), and the refusal reaches the user as one line, through the
    dialog and through napari's API (``layers.save``, which drops a writer's ValueError); one
    selected layer is offered the usdehaze writer, which says what to select."""
    import yaml

    from usdehaze.cli._app import run_app
    from usdehaze.napari._writer import SUFFIXES, SaveRefused

    manifest = yaml.safe_load((ROOT / "usdehaze/napari/napari.yaml").read_text())
    (writer,) = manifest["contributions"]["writers"]
    assert tuple(writer["filename_extensions"]) == SUFFIXES

    arrays = _result(tmp_path / "res.h5")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "res.h5"), plugin="usdehaze")
    picked = [ly for ly in layers if ly.metadata["usdehaze"].role in ("tissue", "haze")]
    viewer.layers.selection = set(picked)
    for _ in range(2):  # the second replaces the result the first wrote
        offered, raised = _file_save(qtbot, viewer, tmp_path / "saved")
        assert raised is None, raised
    assert not (tmp_path / "saved").exists()
    with load_result(tmp_path / "saved.h5") as res:
        np.testing.assert_array_equal(res.frames("tissue"), arrays["tissue"])

    demo = tmp_path / "demo_copy.h5"
    demo.write_bytes(demo_scan_path().read_bytes())
    assert run_app(["simulate", str(tmp_path / "sim.h5"), "--frames", "1"]) == 0
    for scan in (demo, tmp_path / "sim.h5"):
        before = scan.read_bytes()
        _, raised = _file_save(qtbot, viewer, scan)
        assert isinstance(raised, SaveRefused) and "is a scan" in str(raised), raised
        assert scan.name in str(raised) and "\n" not in str(raised)
        with pytest.raises(SaveRefused, match="is a scan"):  # napari's API path
            viewer.layers.save(str(scan), selected=True, plugin="usdehaze")
        assert scan.read_bytes() == before

    viewer.layers.selection = {picked[0]}
    offered, raised = _file_save(qtbot, viewer, tmp_path / "one.h5")
    assert any("usdehaze" in f for f in offered)
    assert isinstance(raised, SaveRefused) and "select usdehaze tissue and haze" in str(raised)
    assert not (tmp_path / "one.h5").exists()


def test_sample_data_scan_and_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    from usdehaze.napari._widget import GcnrWidget

    viewer.open_sample("usdehaze", "demo")
    viewer.open_sample("usdehaze", "demo_truth")
    assert [ly.name for ly in viewer.layers] == [
        "demo_scan",
        "ROI demo_scan.roi",  # the demo's regions come with it (issue 30 item 9)
        "demo tissue (truth)",
        "demo haze (truth)",
    ]
    gcnr = GcnrWidget(viewer)
    gcnr.select(image="demo_scan", shapes="ROI demo_scan.roi")
    gcnr.refresh()
    assert [r["name"] for r in gcnr.rows] == ["lv_vs_myocardium"] and gcnr.error == ""
    images = [ly for ly in viewer.layers if ly.name != "ROI demo_scan.roi"]
    hazy, tissue, haze = (ly.metadata["usdehaze"].db for ly in images)
    assert hazy.shape == tissue.shape == haze.shape == (4, 256, 128)
    # same 0 dB reference as the hazy input: the haze adds power, so the truth lies below it
    p = 10 ** (tissue / 10) + 10 ** (haze / 10)
    mean_gap = np.mean(10 * np.log10(p) - hazy)
    assert abs(mean_gap) < 3.0
    assert tissue.max() <= 0.0 and hazy.reshape(4, -1).max(axis=1).tolist() == [0.0] * 4


def test_npe2_validate_and_import_stays_light():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "usdehaze"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert res.returncode == 0 and "valid" in res.stdout, res.stdout + res.stderr
    code = (
        "import sys, usdehaze, usdehaze.napari, usdehaze.cli;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'vispy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr


def test_sector_scans_are_shown_smooth_and_cartesian_ones_as_stored(make_napari_viewer, tmp_path):
    """Issue 30 extra: linear display interpolation for scan-converted sector images; a
    Cartesian scan keeps napari's nearest (its pixels are the data's)."""
    from usdehaze.ultrasound.io import write_scan

    viewer = make_napari_viewer()
    (sector,) = viewer.open(str(demo_scan_path()), plugin="usdehaze")
    assert sector.metadata["usdehaze"].grid == "polar" and sector.interpolation2d == "linear"
    x, z = np.meshgrid(np.linspace(-0.01, 0.01, 16), np.linspace(0.005, 0.03, 24))
    iq = (np.ones((2, 24, 16)) + 1j).astype(np.complex64)
    path = write_scan(tmp_path / "flat.h5", iq, x, z)
    (flat,) = viewer.open(str(path), plugin="usdehaze")
    assert flat.metadata["usdehaze"].grid == "cartesian" and flat.interpolation2d == "nearest"
