"""Display-domain frames around the sampler: crop, overlay fill, composition, pixels out."""

from __future__ import annotations

import numpy as np

from usdehaze.ultrasound import bmode
from usdehaze.ultrasound.display import DisplayMap


def _scene(n=2, shape=(60, 80)):
    rng = np.random.default_rng(1)
    z, x = np.mgrid[: shape[0], : shape[1]]
    sector = (z - 5) ** 2 + (x - 40) ** 2 < 50**2
    sector &= np.abs(x - 40) < (z - 5) * 0.9 + 1
    grey = np.where(sector, rng.integers(40, 200, (n, *shape)), 0).astype(np.float32)
    overlay = np.zeros(shape, bool)
    overlay[30:33, 35:45] = True  # a caliper line inside the fan
    overlay[2:6, 2:20] = True  # text outside it
    grey[:, overlay] = 255
    return grey, {"sector": sector, "overlay": overlay}


def test_region_crops_to_the_sector_and_excludes_overlays():
    grey, masks = _scene()
    reg = bmode.region(grey.shape[1:], masks, multiple=8)
    r0, r1, c0, c1 = reg.box
    assert (r1 - r0) % 8 == 0 and (c1 - c0) % 8 == 0
    assert reg.dehaze[r0:r1, c0:c1].sum() == reg.dehaze.sum()  # the crop holds the region
    assert not reg.dehaze[masks["overlay"]].any()
    assert not reg.dehaze[~masks["sector"]].any()


def test_sampler_never_sees_overlays_and_composition_keeps_them():
    grey, masks = _scene()
    d = DisplayMap(60.0)
    reg = bmode.region(grey.shape[1:], masks)
    db = bmode.sampler_frames(grey, d, reg)
    r0, r1, c0, c1 = reg.box
    cut = masks["overlay"][r0:r1, c0:c1] & masks["sector"][r0:r1, c0:c1]
    assert cut.any() and (db[:, cut] < 0).all()  # the saturated caliper is filled from tissue
    est = db - 5.0  # an "estimate": 5 dB darker everywhere it was run
    full = bmode.compose(d.to_db(grey), est, reg)
    assert np.array_equal(full[:, reg.keep], d.to_db(grey)[:, reg.keep])
    assert np.allclose(full[:, reg.dehaze], d.to_db(grey)[:, reg.dehaze] - 5.0)
    px = bmode.to_pixels(full, grey.astype(np.uint8), d, reg)
    assert np.array_equal(px[:, reg.keep], grey.astype(np.uint8)[:, reg.keep])  # bit-exact
    assert np.abs(px[:, reg.dehaze].astype(int) - (grey[:, reg.dehaze] - 5 * 255 / 60)).max() <= 1


def test_colour_pixels_come_back_untouched():
    grey, masks = _scene(n=1)
    rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    colour = np.zeros(grey.shape[1:], bool)
    colour[40:44, 38:42] = True
    rgb[:, colour] = [200, 30, 30]
    masks["colour"] = colour
    d = DisplayMap()
    reg = bmode.region(grey.shape[1:], masks)
    px = bmode.to_pixels(d.to_db(grey) - 3, rgb, d, reg)
    assert px.shape == rgb.shape
    assert (px[:, colour] == [200, 30, 30]).all()
    assert (px[:, reg.dehaze, 0] == px[:, reg.dehaze, 2]).all()  # grey where dehazed


def test_the_db_view_of_a_layer_is_the_runs_view_of_its_grey_levels():
    """napari's B-mode layers hold dB frames (the display map of the grey levels): their view
    (DisplayDbView, built from DisplayFrames) crops, fills and composes them exactly as
    ``usdehaze run``'s DisplayView does the grey levels."""
    grey, masks = _scene()
    d = DisplayMap(50.0, source="file")  # the file's range, not the assumed 60 dB
    frames = bmode.DisplayFrames(grey.shape[1:], masks, d)
    run, layer = bmode.DisplayView(frames, 8), bmode.DisplayDbView(frames, 8)
    db = d.to_db(grey)
    np.testing.assert_array_equal(layer.encode(db), run.encode(grey))
    assert (layer.encode(db) == -50.0).any()  # the floor is the file's range
    est = {"tissue": run.encode(grey) - 4.0, "haze": run.encode(grey) - 20.0}
    a, b = layer.full(db, est), run.full(grey, est)
    for k in ("input", "tissue", "haze"):
        np.testing.assert_array_equal(a[k], b[k])
    assert np.array_equal(a["tissue"][:, run.region.keep], db[:, run.region.keep])
