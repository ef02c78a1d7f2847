"""The B-mode display chain, the near-field clutter and the corpus rendered as B-mode: the chain
with everything off is the linear display map exactly, each stage does what it says, draws are
seeded, the validation split draws a combination the training never does."""

import dataclasses

import numpy as np
import pytest

from usdehaze.ultrasound.corpus.acquisition import VALIDATION
from usdehaze.ultrasound.corpus.bmode import bmode_cases, bmode_tiles, render_sample
from usdehaze.ultrasound.corpus.clutter import NearFieldClutter
from usdehaze.ultrasound.corpus.display_chain import (
    DisplayChain,
    displace,
    grey_to_unit,
    jpeg,
    motion_offsets,
)
from usdehaze.ultrasound.display import DisplayMap
from usdehaze.ultrasound.logcomp import db_to_unit

R = np.linspace(0.01, 0.08, 96)
THETA = np.linspace(-0.5, 0.5, 48)
GEOM = {"r": R, "theta": THETA}


def _db(n=1, seed=0, dr=60.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-dr - 10, 3, (n, R.size, THETA.size))


def _flat(value, n=1):
    return np.full((n, R.size, THETA.size), value)


def test_everything_off_is_the_linear_display_map_exactly_and_back_within_quantisation():
    for dr in (40.0, 60.0, 80.0):
        chain = DisplayChain.off(dr, pixel_mm=0.3)
        db = _db(2, dr=dr)
        grey, sector = chain.render(db, GEOM)
        conv = chain.converter(GEOM)
        cart = conv(np.clip(db, -dr, 0).astype(np.float32))
        dmap = DisplayMap(dr)
        assert grey.dtype == np.uint8 and grey.shape == cart.shape
        np.testing.assert_array_equal(grey[:, sector], dmap.to_grey(cart[:, sector]))
        assert (grey[:, ~sector] == 0).all()
        back = dmap.to_db(grey[:, sector])
        assert np.abs(back - cart[:, sector]).max() <= dr / 255 / 2 + 1e-4


def test_shapes_pixel_spacing_and_sector():
    chain = DisplayChain.off(60.0, pixel_mm=0.25)
    grey, sector = chain.render(_db(3), GEOM)
    conv = chain.converter(GEOM)
    assert grey.shape == (3, *sector.shape) and sector.shape == conv.inside.shape
    np.testing.assert_allclose(np.diff(conv.x), 0.25e-3, rtol=1e-6)
    assert 0.2 < sector.mean() < 0.9  # a sector, not the whole box
    grey2, _ = chain.render(_db(1)[0], GEOM)  # a single (r, θ) frame too
    assert grey2.shape == (1, *sector.shape)
    with pytest.raises(ValueError, match="polar frames"):
        chain.render(np.zeros(5), GEOM)


def test_gain_tgc_and_gamma_move_grey_levels_as_stated():
    dr = 60.0
    base = DisplayChain.off(dr, pixel_mm=0.4)
    g0, s = base.render(_flat(-27.0), GEOM)
    g_gain, _ = dataclasses.replace(base, gain_db=6.0).render(_flat(-27.0), GEOM)
    assert np.all(g0[:, s] == round(33 / dr * 255)) and np.all(g_gain[:, s] == round(39 / dr * 255))
    for gamma in (0.7, 1.4):
        g, _ = dataclasses.replace(base, gamma=gamma).render(_flat(-30.0), GEOM)
        assert np.all(g[:, s] == round(255 * 0.5**gamma))
    chain = dataclasses.replace(base, tgc_db=(4.0, -4.0, 4.0, 0.0))
    curve = chain.tgc(200)
    assert np.abs(curve).max() <= 4.0 + 1e-9 and np.abs(np.diff(curve, 2)).max() < 0.05
    assert curve[0] == pytest.approx(4.0) and curve[-1] == pytest.approx(0.0)


def test_filters_persistence_and_jpeg_change_pixels():
    db = _db(3, seed=1)
    off = DisplayChain.off(60.0, pixel_mm=0.3)
    g0, s = off.render(db, GEOM)
    for change in (
        {"speckle_filter": "median"},
        {"speckle_filter": "gaussian", "speckle_sigma": 1.0},
        {"edge_amount": 0.5},
        {"persistence": 3},
        {"jpeg_quality": 50},
    ):
        g, _ = dataclasses.replace(off, **change).render(db, GEOM)
        diff = np.abs(g.astype(int) - g0)[:, s]
        assert diff.mean() > 0.5, change
    g_jpeg, _ = dataclasses.replace(off, jpeg_quality=95).render(db, GEOM)
    assert 0 < np.abs(g_jpeg.astype(int) - g0).mean() < 20
    # persistence: the last frame is the mean (in dB) of the last p frames
    flats = np.concatenate([_flat(-11.0), _flat(-20.0), _flat(-44.0)])
    g, _ = dataclasses.replace(off, persistence=2).render(flats, GEOM)
    assert np.all(g[2][s] == round(28 / 60 * 255)) and np.all(g[0][s] == round(49 / 60 * 255))
    with pytest.raises(ValueError, match="speckle_filter"):
        dataclasses.replace(off, speckle_filter="wiener").render(db, GEOM)


def test_jpeg_round_trip_is_lossy_but_close():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (64, 80)).astype(np.uint8)
    out = jpeg(g, 50)
    assert out.shape == g.shape and out.dtype == np.uint8 and not np.array_equal(out, g)


def test_draws_are_seeded_within_ranges_and_validation_is_held_out():
    a = DisplayChain.draw(np.random.default_rng(5))
    assert a == DisplayChain.draw(np.random.default_rng(5))
    assert a != DisplayChain.draw(np.random.default_rng(6))
    rng = np.random.default_rng(0)
    train = [DisplayChain.draw(rng, "train") for _ in range(400)]
    val = [DisplayChain.draw(rng, "val") for _ in range(100)]
    for c in train + val:
        assert 40 <= c.dynamic_range <= 80 and -6 <= c.gain_db <= 6
        assert 0.7 <= c.gamma <= 1.4 and 0.2 <= c.pixel_mm <= 0.5 and 1 <= c.persistence <= 3
        assert all(abs(v) <= 4 for v in c.tgc_db) and 0 <= c.edge_amount <= 0.5
        assert c.jpeg_quality is None or 50 <= c.jpeg_quality <= 95
    # training: every filter and JPEG occur, never a median filter followed by JPEG
    assert {c.speckle_filter for c in train} == {"none", "median", "gaussian"}
    assert any(c.jpeg_quality for c in train) and any(c.jpeg_quality is None for c in train)
    assert not any(c.speckle_filter == "median" and c.jpeg_quality for c in train)
    assert all(c.speckle_filter == "median" and c.jpeg_quality for c in val)
    with pytest.raises(ValueError, match="split"):
        DisplayChain.draw(rng, "test")


def test_grey_to_unit_is_the_db_models_unit_range_at_any_dynamic_range():
    g = np.arange(256, dtype=np.uint8)
    u = grey_to_unit(g)
    assert u[0] == -1 and u[-1] == 1
    for dr in (40.0, 60.0, 75.0):
        np.testing.assert_allclose(db_to_unit(DisplayMap(dr).to_db(g), dr), u, atol=1e-6)


def test_motion_offsets_end_at_the_frame_itself():
    rng = np.random.default_rng(0)
    offs = motion_offsets(3, rng)
    assert len(offs) == 3 and not np.any(offs[-1]) and np.all(np.abs(offs[0]) <= 1.4)
    frames = displace(_db()[0], offs)
    assert frames.shape == (3, R.size, THETA.size)
    np.testing.assert_array_equal(frames[-1], _db()[0])
    assert not np.array_equal(frames[0], frames[-1])


def test_near_field_clutter_decays_with_depth_at_its_level():
    rng = np.random.default_rng(0)
    n_r, n_th = 400, 64
    r = np.linspace(0.01, 0.13, n_r)
    haze = (rng.normal(size=(n_r, n_th)) + 1j * rng.normal(size=(n_r, n_th))).astype(np.complex64)
    c = NearFieldClutter(level_db=-6.0, decay_mm=30.0, lateral_db=0.0, roll=0.5)
    iq = c.iq(haze, r, myocardium_power=2.0, rng=rng)
    assert iq.shape == haze.shape and iq.dtype == np.complex64
    p = np.abs(iq) ** 2
    near = p[:20].mean() / (2.0 * 10 ** (-0.6))
    assert 0.6 < near < 1.2  # the apex band sits at the drawn level
    # power over depth: exp(−Δr / L); 30 mm further down it is e times weaker
    k = int(np.searchsorted(r, r[0] + 0.03))
    ratio = p[k - 10 : k + 10].mean() / p[:20].mean()
    assert np.exp(-1) * 0.7 < ratio < np.exp(-1) * 1.3
    assert p[-20:].mean() < 0.05 * p[:20].mean()
    d = NearFieldClutter.draw(np.random.default_rng(1), "val")
    assert -18 <= d.level_db <= -6 and 25 <= d.decay_mm <= 50


def _sample(seed=0, haze_scale=0.3):
    acq = dataclasses.replace(VALIDATION[0], shape=(96, 48))
    rng = np.random.default_rng(seed)
    n_r, n_th = acq.shape
    shape = (n_r, n_th)
    tissue = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    haze = haze_scale * (rng.normal(size=shape) + 1j * rng.normal(size=shape))
    cavity = np.zeros(shape, bool)
    cavity[40:60, 18:30] = True
    tissue[cavity] *= 0.02
    myo = np.zeros(shape, bool)
    myo[40:60, 32:40] = True
    return {
        "tissue": tissue,
        "haze": haze.astype(np.complex64),
        "cavity": cavity,
        "myocardium": myo,
        "tissue_mask": ~cavity,
        "acquisition": acq.to_dict(),
        "params": {"haze_db": -12.0},
        "name": "x/0",
    }


def test_render_sample_one_chain_for_the_three_versions_and_seeded():
    s = _sample()
    a = render_sample(s, np.random.default_rng(3), "val")
    b = render_sample(s, np.random.default_rng(3), "val")
    for k in ("tissue", "haze", "hazy", "sector", "cavity"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["chain"] == b["chain"] and a["clutter"] is not None  # every val frame has clutter
    assert a["tissue"].shape == a["haze"].shape == a["hazy"].shape == a["sector"].shape
    assert a["cavity"].any() and not (a["cavity"] & ~a["sector"]).any()
    # the hazy cavity is brighter than the tissue-only one: haze (and clutter) filled it
    assert a["hazy"][a["cavity"]].mean() > a["tissue"][a["cavity"]].mean() + 10


def test_clutter_brightens_the_apex_of_the_haze(monkeypatch):
    """The same frame and chain with the clutter at 0 dB and at −80 dB (nothing)."""
    from usdehaze.ultrasound.corpus import bmode

    s = _sample(haze_scale=0.05)
    out = {}
    for level in (0.0, -80.0):
        c = NearFieldClutter(level, 30.0, 0.0, 0.5)
        monkeypatch.setattr(
            bmode.NearFieldClutter, "draw", classmethod(lambda cls, rng, sp, c=c: c)
        )
        out[level] = render_sample(s, np.random.default_rng(0), "val")
    assert out[0.0]["chain"] == out[-80.0]["chain"]
    top = out[0.0]["sector"].copy()
    top[top.shape[0] // 4 :] = False
    bottom = out[0.0]["sector"] & ~top
    assert out[0.0]["haze"][top].mean() > out[-80.0]["haze"][top].mean() + 20
    gain_top = out[0.0]["haze"][top].mean() - out[-80.0]["haze"][top].mean()
    gain_bottom = out[0.0]["haze"][bottom].mean() - out[-80.0]["haze"][bottom].mean()
    assert gain_bottom < gain_top  # it decays with depth
    assert out[0.0]["hazy"][top].mean() >= out[-80.0]["hazy"][top].mean()


def test_tiles_and_cases_from_a_corpus_folder(tmp_path):
    from usdehaze.ultrasound.corpus.store import write_shard

    samples = []
    for k in range(2):
        s = _sample(seed=k)
        samples.append({key: s[key] for key in ("tissue", "haze", "cavity", "myocardium")})
        samples[-1]["tissue_mask"] = s["tissue_mask"]
        samples[-1]["params"] = s["params"]
    write_shard(tmp_path / "a.npz", _sample()["acquisition"], samples)
    tiles, records = bmode_tiles(tmp_path, tile=32, per_frame=3, seed=0)
    assert set(tiles) == {"tissue", "haze", "hazy"} and len(records) == 2
    for arr in tiles.values():
        assert arr.shape == (6, 1, 32, 32) and arr.dtype == np.float32
        assert arr.min() >= -1 and arr.max() <= 1
    again, _ = bmode_tiles(tmp_path, tile=32, per_frame=3, seed=0)
    np.testing.assert_array_equal(again["haze"], tiles["haze"])
    cases = bmode_cases(tmp_path)
    assert len(cases) == 2
    c = cases[0]
    assert c["input"].shape == c["clean"].shape == c["target"].shape == c["sector"].shape
    assert c["input"].min() >= -60 and c["input"].max() <= 0
