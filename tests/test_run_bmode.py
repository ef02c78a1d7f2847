"""B-mode cines end to end (issue 27): a DICOM cine in, a result file, a derived DICOM and a
video out, dehazed inside the imaging region only, overlays and the outside copied back."""

from __future__ import annotations

import json

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("av")

from test_io_dicom import write_cine  # noqa: E402

from usdehaze.cli._app import run_app  # noqa: E402
from usdehaze.ultrasound import harm  # noqa: E402
from usdehaze.ultrasound.dehaze import DehazeConfig  # noqa: E402
from usdehaze.ultrasound.driver import FrameDriver  # noqa: E402
from usdehaze.ultrasound.io import load_scan  # noqa: E402
from usdehaze.ultrasound.results import load_result  # noqa: E402


def write_fan_cine(path, n=3, rows=96, cols=128, seed=0):
    """An 8-bit multi-frame cine written by pydicom: speckle in a fan below (0, cols/2), a dark
    hazy cavity, a static burned-in text block top-left and a caliper inside the fan."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    rho, phi = np.hypot(r + 10, c - cols / 2), np.arctan2(c - cols / 2, r + 10)
    fan = (np.abs(phi) < np.deg2rad(38)) & (rho > 20) & (rho < rows + 4)
    cavity = ((r - 50) / 18) ** 2 + ((c - cols / 2) / 14) ** 2 < 1
    level = np.where(cavity, 60.0, 150.0)
    frames = np.where(fan, np.clip(rng.rayleigh(level / 1.25, (n, rows, cols)), 0, 254), 0)
    frames = frames.astype(np.uint8)
    frames[:, 3:9, 3:40] = np.where((np.arange(37) % 3) == 0, 255, 0)[None, None]
    frames[:, 70, 50:60] = 255  # a caliper line inside the fan
    write_cine(path, frames, regions=False, PatientID="P1")
    return frames


def _priors(tiny_bmode_priors):
    t, h = tiny_bmode_priors
    return [
        "--model",
        "bmode",
        "--tissue-prior",
        str(t),
        "--haze-prior",
        str(h),
        "--steps",
        "2",
        "-q",
    ]


def test_a_dicom_cine_dehazes_into_a_result_on_its_own_pixels(tmp_path, tiny_bmode_priors):
    src = tmp_path / "cine.dcm"
    frames = write_fan_cine(src)
    raw = src.read_bytes()
    out = tmp_path / "cine.dehazed.h5"
    assert run_app(["run", str(src), "-o", str(out), *_priors(tiny_bmode_priors)]) == 0
    assert src.read_bytes() == raw
    with load_scan(src) as scan, load_result(out) as r:
        keep = ~(scan.masks["sector"] & ~scan.masks["overlay"])
        assert r.attrs["complete"] and r.attrs["config"]["model"] == "bmode"
        assert r.attrs["display"]["dynamic_range"] == 60.0
        assert np.array_equal(r.masks["sector"], scan.masks["sector"])
        assert np.array_equal(r.masks["overlay"], scan.masks["overlay"])
        inp, tissue = r.frames("input"), r.frames("tissue")
        assert inp.shape == frames.shape
        np.testing.assert_allclose(inp, scan.display.to_db(frames), atol=1e-5)
        assert np.array_equal(tissue[:, keep], inp[:, keep])  # outside and overlays: the input
        assert (r.frames("haze")[:, keep] == -60).all()
        assert r.masks["overlay"][3:9, 3:40].any() and keep[70, 50:60].all()  # text, caliper
        assert {"wreck_warning", "wreck_frames", "fallback"} <= set(r.attrs)
        # flicker: mean |Δ dB| of consecutive frames in the dehazed region, input and result
        region = ~keep
        want = np.mean([np.abs(inp[i + 1] - inp[i])[region].mean() for i in range(len(inp) - 1)])
        assert r.attrs["flicker_input_db"] == pytest.approx(want, rel=1e-5)
        assert r.attrs["flicker_tissue_db"] >= 0


def test_b_mode_input_runs_the_display_model_and_says_so(tmp_path):
    from usdehaze.ultrasound.methods import for_scan

    src = tmp_path / "cine.dcm"
    write_fan_cine(src)
    with load_scan(src) as scan:
        cfg, note = for_scan(DehazeConfig(), scan)
        assert cfg.model == "bmode" and "scan-converted B-mode" in note
        joint = DehazeConfig(method="joint", model="bmode")
        assert for_scan(joint, scan) == (joint, None)
        auto, said = for_scan(DehazeConfig(model="bmode"), scan)  # the default picks the student
        assert (auto.method, auto.model) == ("fast", "bmode") and "method auto" in said
        for own in ({"samples": 2}, {"priors": "lab"}):  # what only the sampler gives stays joint
            assert for_scan(DehazeConfig(model="bmode", **own), scan)[0].method == "joint"
        dps, _ = for_scan(DehazeConfig(method="dps"), scan)
        assert dps.model == "bmode"  # a single prior on B-mode reads the bmode tissue prior


def test_dicom_and_video_outputs(tmp_path, tiny_bmode_priors):
    import imageio.v3 as iio

    src = tmp_path / "cine.dcm"
    frames = write_fan_cine(src)
    dcm = tmp_path / "cine.dehazed.dcm"
    assert (
        run_app(["run", str(src), "-o", str(dcm), "--frames", "0:2", *_priors(tiny_bmode_priors)])
        == 0
    )
    ds = pydicom.dcmread(dcm)
    px = ds.pixel_array
    assert px.shape == (2, *frames.shape[1:]) and ds.PatientID == "P1"
    assert "usdehaze" in ds.DerivationDescription
    with load_scan(src) as scan:
        keep = ~(scan.masks["sector"] & ~scan.masks["overlay"])
    assert np.array_equal(px[:, keep], frames[:2][:, keep])  # overlays and outside: bit-exact
    mp4 = tmp_path / "cine.mp4"
    assert run_app(["run", str(src), "-o", str(mp4), *_priors(tiny_bmode_priors)]) == 0
    video = iio.imread(mp4, plugin="pyav")
    assert video.shape[0] == 3 and video.shape[2] >= 2 * frames.shape[2]
    assert iio.immeta(mp4, plugin="pyav")["fps"] == pytest.approx(25.0)  # FrameTime 40 ms


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-o", "{d}/x.png"], "expected a result file"),
        (["--method", "fast", "--student", "{w}/student_iq.safetensors"], "student for model 'iq'"),
        (["--model", "logsum", "--priors", "{d}"], "never saw"),
        (["--fallback", "maybe"], "--fallback 'maybe'"),
    ],
)
def test_b_mode_refusals_are_one_line(tmp_path, capsys, args, said):
    src = tmp_path / "cine.dcm"
    write_fan_cine(src)
    raw = src.read_bytes()
    capsys.readouterr()
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    code = run_app(["run", str(src), *[a.format(d=tmp_path, w=WEIGHTS_DIR) for a in args], "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0], err
    assert src.read_bytes() == raw
    assert not list(tmp_path.glob("*.dehazed*")) and not (tmp_path / "x.png").exists()


def test_fast_on_a_cine_runs_the_shipped_b_mode_student(tmp_path, capsys):
    """usdehaze run cine.dcm -o out.dcm --method fast: the shipped B-mode student, one network
    evaluation per frame, overlays and the outside copied back bit for bit, the frames' change
    recorded beside the input's."""
    src = tmp_path / "cine.dcm"
    frames = write_fan_cine(src, n=4)
    h5, dcm = tmp_path / "cine.dehazed.h5", tmp_path / "cine.dehazed.dcm"
    assert run_app(["run", str(src), "-o", str(h5), "--method", "fast", "-q"]) == 0
    assert run_app(["run", str(src), "-o", str(dcm), "--method", "fast", "-q"]) == 0
    with load_result(h5) as res:
        a = res.attrs
        assert (a["method"], a["config"]["model"], int(a["nfe"])) == ("fast", "bmode", 1)
        assert "student" in a["prior_checksums"]
        assert np.isfinite([a["flicker_input_db"], a["flicker_tissue_db"]]).all()
        # the do-no-harm check judged the cine as a display image: by depth rings in its fan
        assert np.isfinite(a["harm_ring_change_db"]) and a["harm_frames"] == [0, 1, 2, 3]
        # its verdict is made on the brightest pixels' figures (usdehaze.ultrasound.harm)
        rb, b = float(a["harm_ring_bright_db"]), float(a["harm_bright_db"])
        assert np.isfinite([rb, b]).all()
        assert bool(a["harm_warning"]) == (
            rb < -harm.DISPLAY_RING_BRIGHT_FALL_DB or b < -harm.DISPLAY_BRIGHT_FALL_DB
        )
        flicker = {k: round(float(a[f"flicker_{k}_db"]), 3) for k in ("input", "tissue")}
    capsys.readouterr()
    assert run_app(["info", str(h5), "--json"]) == 0  # info says what the checks measured
    assert json.loads(capsys.readouterr().out)["flicker_db"] == flicker
    px = pydicom.dcmread(dcm).pixel_array
    with load_scan(src) as scan:
        keep = ~(scan.masks["sector"] & ~scan.masks["overlay"])
    assert np.array_equal(px[:, keep], frames[:, keep])


def test_a_dicom_output_needs_a_dicom_input(tmp_path, capsys, small_scan):
    from usdehaze.ultrasound.io import write_scan

    p = tmp_path / "scan.h5"
    s = small_scan
    write_scan(p, s.frames(), s.x, s.z, grid=s.grid, axes=s.axes)
    code = run_app(["run", str(p), "-o", str(tmp_path / "o.dcm"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "derived copy of a DICOM input" in err


class _Wrecker:
    """A stand-in dehazer whose tissue estimate darkens the brightest structures by 15 dB."""

    priors = {"tissue": object()}
    nfe = 0
    cfg = DehazeConfig()

    def __call__(self, db, callback=None, frames=None):
        bright = db > np.percentile(db, 80, axis=(1, 2), keepdims=True)
        tissue = np.where(bright, db - 15, db).astype(np.float32)
        return {"tissue": tissue, "haze": np.full_like(db, -60.0)}


def _frames(n=2, seed=3):
    rng = np.random.default_rng(seed)
    z, x = np.mgrid[0:64, 0:64]
    level = np.where(((z - 32) / 12) ** 2 + ((x - 32) / 10) ** 2 < 1, -40.0, -12.0)
    level = level + np.where(np.abs(z - 50) < 3, 8, 0)  # a bright wall
    return np.clip(level + rng.normal(0, 3, (n, 64, 64)), -60, 0).astype(np.float32)


@pytest.mark.parametrize("fallback", ["none", "input", "stop"])
def test_a_wrecked_frame_is_flagged_replaced_or_stops_the_run(fallback):
    from usdehaze.errors import UsageError

    said = []
    driver = FrameDriver(_Wrecker(), warn=said.append, name="cine", fallback=fallback)
    db = _frames()
    if fallback == "stop":
        with pytest.raises(UsageError, match="looks wrecked"):
            driver.dehaze([0, 1], db, db=True)
        return
    res = driver.dehaze([0, 1], db, db=True)
    a = driver.finish()
    assert a["wreck_warning"] and a["wreck_flagged_frames"] == [0, 1]
    assert any("wrecks 2 of 2" in m for m in said)
    if fallback == "input":
        assert np.array_equal(res["tissue"], db) and a["fallback_frames"] == [0, 1]
    else:
        assert not np.array_equal(res["tissue"], db) and a["fallback_frames"] == []


def test_metrics_of_a_cine_read_the_display_map_and_skip_overlays(tmp_path):
    import json

    from usdehaze.ultrasound.contrast import roi_stats
    from usdehaze.ultrasound.images import open_images
    from usdehaze.ultrasound.roi import load_roi

    src = tmp_path / "cine.dcm"
    frames = write_fan_cine(src)
    with load_scan(src) as scan:
        zs, xs = scan.z[3:9, 3:40] * 1e3, scan.x[3:9, 3:40] * 1e3  # the burned-in text
        assert scan.masks["overlay"][3:9, 3:40][frames[0, 3:9, 3:40] == 255].all()
    roi = tmp_path / "r.json"  # a target box around the burned-in text, a background in tissue
    box = {"shape": "rectangle", "min": [float(xs.min()), float(zs.min())],
           "max": [float(xs.max()), float(zs.max())]}  # fmt: skip
    back = {"shape": "circle", "center": [0.0, 25.0], "radius": 2.0}
    roi.write_text(json.dumps({"version": 1, "units": "mm", "pairs": [
        {"name": "text", "target": box, "background": back}]}))  # fmt: skip
    with open_images(src) as img:
        np.testing.assert_allclose(img.read_db(0, 1)[0], frames[0] / 255 * 60 - 60, atol=1e-4)
        rows = roi_stats(img, load_roi(roi), range(1))
    # only the black between the letters is left of the target: the text is never measured
    assert rows[0]["n_target"] > 0 and rows[0]["contrast_db"] < -20


def test_run_many_refuses_a_cine_in_one_line(tmp_path, capsys):
    src = tmp_path / "cine.dcm"
    write_fan_cine(src)
    raw = src.read_bytes()
    capsys.readouterr()
    code = run_app(["run-many", str(src), "-o", str(tmp_path / "many.zarr"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "usdehaze run CINE" in err[0], err
    assert src.read_bytes() == raw and not (tmp_path / "many.zarr").exists()


def test_a_cine_layer_runs_the_display_model_in_napari(tmp_path):
    """The napari reader marks a cine's layer as display-domain; the Dehaze widget's config
    for it is the display model's, never the dB priors' (issue 28's wreck)."""
    pytest.importorskip("napari")
    from usdehaze.napari._dehaze_widget import layer_config
    from usdehaze.napari._layers import META_KEY
    from usdehaze.napari._reader import scan_layer_data

    src = tmp_path / "cine.dcm"
    frames = write_fan_cine(src)
    _, meta, _ = scan_layer_data(src)[0]
    native = meta["metadata"][META_KEY]
    np.testing.assert_allclose(np.asarray(native.db), frames / 255 * 60 - 60, atol=1e-4)
    assert native.attrs["domain"] == "display"
    cfg, note = layer_config(native, DehazeConfig())
    assert cfg.model == "bmode" and "B-mode" in note
