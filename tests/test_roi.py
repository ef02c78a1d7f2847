"""roi.json: validation with named fields, rasterisation on cartesian and polar grids, round trip."""

import json
import re

import numpy as np
import pytest
from rois import annulus, circle, mm_roi, px_roi, rect

from usdehaze.errors import UsageError
from usdehaze.ultrasound.roi import load_roi, pair_masks, rasterise, roi_from_dict, save_roi
from usdehaze.ultrasound.simulate import polar_grid

GOOD = mm_roi(
    ("a", circle([0, 60], 6), annulus([0, 60], 9, 14)),
    (
        "b",
        rect([-10, 30], [10, 40]),
        {"shape": "polygon", "points": [[-20, 90], [20, 90], [0, 120]]},
    ),
)


def test_round_trip(tmp_path):
    p = save_roi(GOOD, tmp_path / "roi.json")
    roi = load_roi(p)
    assert [pp.name for pp in roi.pairs] == ["a", "b"] and roi.units == "mm"
    assert roi.pairs[1].background["points"] == [[-20.0, 90.0], [20.0, 90.0], [0.0, 120.0]]
    assert load_roi(save_roi(roi, tmp_path / "again.json")).to_dict() == roi.to_dict()


def test_masks_on_polar_grid_follow_physical_positions():
    x, z, _ = polar_grid((256, 128))
    roi = roi_from_dict(GOOD)
    (_, t, b), _ = pair_masks(roi, x, z)
    d = np.hypot(x * 1e3, z * 1e3 - 60)
    assert np.array_equal(t, d <= 6)
    assert np.array_equal(b, (d >= 9) & (d <= 14))
    # area check: pixel count × pixel area ≈ π r²
    assert 0.8 < t.sum() / (np.pi * 36 / _pixel_area_mm2(x, z, t)) < 1.2


def _pixel_area_mm2(x, z, mask):
    dr = np.gradient(np.hypot(x, z), axis=0) * 1e3
    dth = np.gradient(np.arctan2(x, z), axis=1)
    r = np.hypot(x, z) * 1e3
    return float(np.mean((dr * r * dth)[mask]))


def test_px_units():
    roi = roi_from_dict(px_roi(("p", rect([0, 0], [9, 9]), rect([10, 10], [19, 19]))))
    x = np.zeros((30, 30))
    [(_, t, b)] = pair_masks(roi, x, x)
    assert t.sum() == 100 and t[:10, :10].all() and b[10:20, 10:20].all()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(version=2), "key 'version'"),
        (lambda d: d.update(units="cm"), "key 'units'"),
        (lambda d: d["pairs"][0]["target"].pop("radius"), "pair 'a': target.radius: missing"),
        (
            lambda d: d["pairs"][1]["background"].update(points=[[0, 0]]),
            "pair 'b': background.points",
        ),
        (lambda d: d["pairs"][0]["background"].update(inner=20), "pair 'a': background.inner"),
        (lambda d: d["pairs"][0].pop("background"), "pair 'a': field 'background' missing"),
        (lambda d: d["pairs"][1].update(name="a"), "pairs[1].name: 'a' is used by an earlier"),
        (lambda d: d["pairs"][1].update(name=""), "pairs[1].name: expected a non-empty string"),
        (lambda d: d["pairs"][0]["target"].update(radius=True), "pair 'a': target.radius"),
        (lambda d: d["pairs"][0]["target"].update(center=[0]), "pair 'a': target.center"),
        (lambda d: d["pairs"][1]["target"].update(max=[-20, 40]), "pair 'b': target.max"),
        (lambda d: d["pairs"][0]["target"].update(shape="ellipse"), "pair 'a': target.shape"),
    ],
)
def test_errors_name_pair_and_field(mutate, message):
    d = json.loads(json.dumps(GOOD))
    mutate(d)
    with pytest.raises(UsageError, match=re.escape(message)):
        roi_from_dict(d, "roi.json")


def test_small_or_outside_regions_are_errors(tmp_path):
    x, z, _ = polar_grid((256, 128))
    d = json.loads(json.dumps(GOOD))
    d["pairs"][0]["target"] = {"shape": "circle", "center": [500, 500], "radius": 3}
    with pytest.raises(UsageError, match="pair 'a': target is outside the image"):
        pair_masks(roi_from_dict(d, "roi.json"), x, z)
    d["pairs"][0]["target"] = {"shape": "circle", "center": [0, 60], "radius": 1}
    with pytest.raises(UsageError, match="only .* pixels"):
        pair_masks(roi_from_dict(d, "roi.json"), x, z)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="bad.json: not valid JSON"):
        load_roi(bad)


def test_polygon_rasteriser_against_exact_pixel_sets():
    rows, cols = np.indices((40, 50))
    x, z = cols * 1e-3, rows * 1e-3  # 1 mm pixels: mm and px coordinates coincide
    square = {"shape": "polygon", "points": [[5.5, 4.5], [20.5, 4.5], [20.5, 9.5], [5.5, 9.5]]}
    rect = {"shape": "rectangle", "min": [5.5, 4.5], "max": [20.5, 9.5]}
    assert np.array_equal(rasterise(square, x, z, "mm"), rasterise(rect, x, z, "mm"))
    assert rasterise(rect, x, z, "px").sum() == 15 * 5
    # concave L (clockwise, so orientation does not matter): the square minus its top-right part
    ell = [[0.5, 0.5], [0.5, 30.5], [30.5, 30.5], [30.5, 20.5], [10.5, 20.5], [10.5, 0.5]]
    m = rasterise({"shape": "polygon", "points": ell}, x, z, "px")
    expect = (cols >= 1) & (cols <= 30) & (rows >= 1) & (rows <= 30)
    expect &= ~((cols >= 11) & (rows <= 20))
    assert np.array_equal(m, expect) and m.sum() == 30 * 30 - 20 * 20
    # triangle on a fine grid: pixel count ≈ area (0.1 mm pixels, area 200 mm²)
    fr, fc = np.indices((400, 400))
    tri = {"shape": "polygon", "points": [[5, 5], [25, 5], [5, 25]]}
    n = rasterise(tri, fc * 1e-4, fr * 1e-4, "mm").sum()
    assert abs(n * 0.01 - 200) < 2
    annulus = {"shape": "annulus", "center": [25, 20], "inner": 5, "outer": 10}
    d = np.hypot(cols - 25, rows - 20)
    assert np.array_equal(rasterise(annulus, x, z, "px"), (d >= 5) & (d <= 10))


def test_shipped_example_fits_the_demo_scan():
    from pathlib import Path

    from usdehaze.ultrasound.io import load_scan

    root = Path(__file__).resolve().parents[1]
    roi = load_roi(root / "configs" / "roi_example.json")
    with load_scan(root / "usdehaze" / "data" / "demo_scan.h5") as scan:
        masks = pair_masks(roi, scan.x, scan.z, "demo_scan.h5")
    assert len(masks) == 2 and all(t.sum() > 300 and b.sum() > 300 for _, t, b in masks)
    assert not any((t & b).any() for _, t, b in masks)
