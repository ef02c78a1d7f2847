"""`usdehaze gcnr` and `usdehaze show` on files written by the zea writer, against known truth."""

import json

import numpy as np
import pytest
from rois import px_roi, rect

from usdehaze.cli._app import run_app
from usdehaze.ultrasound.io import write_scan
from usdehaze.ultrasound.results import ResultWriter
from usdehaze.ultrasound.scan import parse_frames
from usdehaze.ultrasound.simulate import polar_grid

S_TARGET, S_BACKGROUND = 1.0, 2.0  # Rayleigh scales of the two halves
PX_ROI = px_roi(("left_vs_right", rect([0, 0], [99, 99]), rect([100, 0], [199, 99])))


def rayleigh_gcnr(s1: float, s2: float) -> float:
    """Exact 1 − overlap of Rayleigh(s1) and Rayleigh(s2), s1 < s2 (see tests/test_metrics.py)."""
    x0 = np.sqrt(2 * np.log(s2**2 / s1**2) / (1 / s1**2 - 1 / s2**2))
    return float(np.exp(-(x0**2) / (2 * s2**2)) - np.exp(-(x0**2) / (2 * s1**2)))


@pytest.fixture(scope="module")
def speckle(tmp_path_factory):
    """Cartesian scan, 3 frames of 100 × 200 px (0.2 mm): complex Gaussian speckle whose left
    half has envelope scale 1 and right half scale 2; pixel positions x ∈ ±20 mm, z from 10 mm."""
    d = tmp_path_factory.mktemp("speckle")
    rng = np.random.default_rng(0)
    iq = (rng.normal(size=(3, 100, 200)) + 1j * rng.normal(size=(3, 100, 200))).astype(np.complex64)
    iq[:, :, 100:] *= S_BACKGROUND / S_TARGET
    xs = (np.arange(200) - 99.5) * 0.2e-3
    zs = 10e-3 + np.arange(100) * 0.2e-3
    z, x = np.meshgrid(zs, xs, indexing="ij")
    scan = write_scan(d / "speckle.h5", iq, x, z, grid="cartesian", axes={"x": xs, "z": zs})
    roi = d / "px.json"
    roi.write_text(json.dumps(PX_ROI))
    mm = d / "mm.json"  # the same halves in millimetres (pixel centres ±0.1 mm from edges)
    mm_pairs = [
        {
            "name": "left_vs_right",
            "target": {"shape": "rectangle", "min": [-19.95, 9.95], "max": [-0.05, 29.85]},
            "background": {"shape": "rectangle", "min": [0.05, 9.95], "max": [19.95, 29.85]},
        }
    ]
    mm.write_text(json.dumps({"version": 1, "units": "mm", "pairs": mm_pairs}))
    return scan, roi, mm, iq


def gcnr_json(capsys, *args):
    capsys.readouterr()
    assert run_app(["gcnr", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_gcnr_matches_the_analytic_value_and_contrast(speckle, capsys):
    scan, roi, mm, iq = speckle
    before = scan.read_bytes()
    out = gcnr_json(capsys, "--roi", roi, scan)
    rows = out["pairs"]
    assert [r["frame"] for r in rows] == [0, 1, 2] and out["domain"] == "db"
    keys = {"name", "frame", "gcnr", "ks", "cnr", "cnr_db", "contrast_db"}
    assert keys | {"n_target", "n_background"} <= set(rows[0])
    assert all(r["n_target"] == r["n_background"] == 10_000 for r in rows)
    truth = rayleigh_gcnr(S_TARGET, S_BACKGROUND)
    for r in rows:
        assert abs(r["gcnr"] - truth) < 0.02  # 10 000 pixels a region: bias ≈ 0.002
        # mean powers 2·s² → contrast 20·log10(s_t / s_b) = −6.02 dB
        assert r["contrast_db"] == pytest.approx(20 * np.log10(S_TARGET / S_BACKGROUND), abs=0.2)
        assert r["cnr"] < 0  # target darker
    env = gcnr_json(capsys, "--roi", roi, scan, "--domain", "envelope", "--frames", "1")["pairs"]
    assert len(env) == 1 and abs(env[0]["gcnr"] - truth) < 0.02
    assert env[0]["contrast_db"] == pytest.approx(rows[1]["contrast_db"], abs=1e-6)
    # the same regions given in millimetres select the same pixels
    same = gcnr_json(capsys, "--roi", mm, scan)["pairs"]
    assert [r["gcnr"] for r in same] == [r["gcnr"] for r in rows]
    assert scan.read_bytes() == before


def test_gcnr_dynamic_range_and_bins(speckle, capsys):
    scan, roi, _, _ = speckle
    a = gcnr_json(capsys, "--roi", roi, scan, "--frames", "0", "--bins", "32")["pairs"][0]
    b = gcnr_json(capsys, "--roi", roi, scan, "--frames", "0", "--dynamic-range", "10")["pairs"][0]
    c = gcnr_json(capsys, "--roi", roi, scan, "--frames", "0")["pairs"][0]
    assert a["gcnr"] != c["gcnr"] and abs(a["gcnr"] - c["gcnr"]) < 0.05
    # a 10 dB range piles most of the darker half onto −10 dB: contrast shrinks
    assert b["contrast_db"] > c["contrast_db"] + 1
    capsys.readouterr()
    assert run_app(["gcnr", "--roi", str(roi), str(scan), "--frames", "2"]) == 0
    table = capsys.readouterr().out
    assert "left_vs_right" in table and "beamformed_data" in table  # key shown in the title


def test_gcnr_and_show_on_a_result_file(speckle, tmp_path, capsys):
    """Result files hold dB images; --dynamic-range clips them like a scan's."""
    scan, roi, _, iq = speckle
    from usdehaze.ultrasound.logcomp import to_db

    db = to_db(iq, 60.0)
    xs = (np.arange(200) - 99.5) * 0.2e-3
    zs = 10e-3 + np.arange(100) * 0.2e-3
    z, x = np.meshgrid(zs, xs, indexing="ij")
    res = tmp_path / "res.h5"
    with ResultWriter(res, 3, (100, 200), x=x, z=z, axes={"x": xs, "z": zs}) as w:
        for i in range(3):
            w.write(i, input=db[i], tissue=db[i], haze=np.full_like(db[i], -60))
    from_scan = gcnr_json(capsys, "--roi", roi, scan, "--dynamic-range", "30")["pairs"]
    from_res = gcnr_json(capsys, "--roi", roi, res, "--key", "input", "--dynamic-range", "30")
    assert from_res["key"] == "input"
    for a, b in zip(from_scan, from_res["pairs"]):
        for k in ("gcnr", "ks", "cnr", "cnr_db", "contrast_db"):
            assert a[k] == pytest.approx(b[k], abs=1e-5), k
    png = tmp_path / "res.png"
    assert run_app(["show", str(res), "--roi", str(roi), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_roi_drawn_on_another_file_is_said_and_still_measured(speckle, tmp_path, capsys):
    """A roi.json that records the scan it was drawn on (napari's Save): quiet on that scan and
    on a result made from it; over another file, one warning line naming both, the same
    figures (the regions still lie inside the image)."""
    scan, _, mm, _ = speckle
    d = json.loads(mm.read_text())
    res = tmp_path / "made_from_it.h5"
    xs, zs = (np.arange(200) - 99.5) * 0.2e-3, 10e-3 + np.arange(100) * 0.2e-3
    z, x = np.meshgrid(zs, xs, indexing="ij")
    flat = np.full((100, 200), -30.0)
    attrs = {"source": str(scan)}  # the scan a run read, as usdehaze run records it
    with ResultWriter(res, 1, (100, 200), x=x, z=z, axes={"x": xs, "z": zs}, attrs=attrs) as w:
        w.write(0, input=flat, tissue=flat, haze=flat)
    figures = {}
    for drawn_on in ("speckle.h5", "another.h5"):
        roi = tmp_path / f"{drawn_on}.roi.json"
        roi.write_text(json.dumps({**d, "scan": {"file": drawn_on, "grid": "cartesian"}}))
        for target in (scan, res):
            capsys.readouterr()
            assert run_app(["gcnr", "--roi", str(roi), str(target), "--json"]) == 0
            said = capsys.readouterr()
            err = said.err.strip().splitlines()
            figures[drawn_on, target] = json.loads(said.out)["pairs"]
            if drawn_on == "speckle.h5":
                assert err == [], (target, err)
                continue
            assert len(err) == 1 and "drawn on another.h5, not on" in err[0], err
            assert target.name in err[0] and "warning" in err[0]
    assert figures["speckle.h5", scan] == figures["another.h5", scan]


def _colour_pixels(png, rgb, tol=0.08):
    from matplotlib.image import imread

    img = imread(png)[..., :3]
    return int((np.abs(img - np.asarray(rgb)).max(axis=-1) < tol).sum())


@pytest.mark.parametrize("units", ["mm", "px"])
def test_show_outlines_rois_on_a_sector_scan(tmp_path, capsys, units):
    from matplotlib.colors import to_rgb

    from usdehaze.ultrasound.plot import ROLE_COLOURS

    x, z, axes = polar_grid((128, 64))
    rng = np.random.default_rng(1)
    iq = (rng.normal(size=(2, 128, 64)) + 1j * rng.normal(size=(2, 128, 64))).astype(np.complex64)
    scan = write_scan(tmp_path / "sector.h5", iq, x, z, grid="polar", axes=axes)
    if units == "mm":
        t = {"shape": "circle", "center": [0, 70], "radius": 10}
        b = {"shape": "annulus", "center": [0, 70], "inner": 15, "outer": 22}
    else:
        t = {"shape": "rectangle", "min": [20, 40], "max": [30, 80]}
        b = {"shape": "polygon", "points": [[35, 40], [55, 40], [45, 100]]}
    roi = tmp_path / "roi.json"
    roi.write_text(
        json.dumps(
            {"version": 1, "units": units, "pairs": [dict(name="p", target=t, background=b)]}
        )
    )
    png = tmp_path / "fig.png"
    capsys.readouterr()
    assert run_app(["show", str(scan), "--roi", str(roi), "-o", str(png), "--frame", "-1"]) == 0
    assert capsys.readouterr().out.strip() == str(png)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "roi.json", "sector.h5"]
    for role in ("target", "background"):
        assert _colour_pixels(png, to_rgb(ROLE_COLOURS[role])) > 50, role
    plain = tmp_path / "plain.png"
    assert run_app(["show", str(scan), "-o", str(plain)]) == 0
    assert _colour_pixels(plain, to_rgb(ROLE_COLOURS["target"])) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "SCAN", "-o", "OUT.jpeg"], "expected a .png, .pdf or .svg"),
        (["show", "SCAN", "-o", "OUT.png", "--frame", "7"], "out of range"),
        (["show", "SCAN", "-o", "OUT.png", "--roi", "FAR"], "pair 'far': target is outside"),
        (["gcnr", "--roi", "FAR", "SCAN"], "pair 'far': target is outside the image"),
        (["gcnr", "--roi", "ROI", "SCAN", "--bins", "1"], "--bins 1"),
        (["gcnr", "--roi", "ROI", "SCAN", "--dynamic-range", "0"], "--dynamic-range 0"),
        (["gcnr", "--roi", "ROI", "SCAN", "--key", "nope"], "key 'nope'"),
    ],
)
def test_user_errors_are_one_line(speckle, tmp_path, capsys, args, message):
    scan, roi, _, _ = speckle
    far = tmp_path / "far.json"
    d = json.loads(json.dumps(PX_ROI))
    d["pairs"][0]["name"] = "far"
    d["pairs"][0]["target"] = {"shape": "circle", "center": [900, 900], "radius": 5}
    far.write_text(json.dumps(d))
    names = {"SCAN": scan, "ROI": roi, "FAR": far}
    args = [str(names.get(a, a)).replace("OUT", str(tmp_path / "out")) for a in args]
    capsys.readouterr()
    assert run_app(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob("out*"))


def test_parse_frames_negative_index():
    assert parse_frames("-1", 5) == range(4, 5)
    assert parse_frames("1:-1", 5) == range(1, 4)
