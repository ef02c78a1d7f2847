"""The physics-based corpus: acquisitions, channel delays, PSFs, rendering, speckle statistics,
samples and shards (pymust, the ``sim`` extra)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymust")

from usdehaze.ultrasound.corpus import physics  # noqa: E402
from usdehaze.ultrasound.corpus.acquisition import (  # noqa: E402
    VALIDATION,
    Acquisition,
    draw_acquisition,
    too_close_to_validation,
)
from usdehaze.ultrasound.corpus.build import Task, plan, run_task  # noqa: E402
from usdehaze.ultrasound.corpus.psf import compute_psfs  # noqa: E402
from usdehaze.ultrasound.corpus.render import render  # noqa: E402
from usdehaze.ultrasound.corpus.speckle_stats import correlation_length, rayleigh_snr  # noqa: E402
from usdehaze.ultrasound.corpus.store import cases, prior_tiles, read_shard, shards  # noqa: E402

# a small, quick acquisition: 32 elements, a 30° sector from 30 to 60 mm on a 64 × 48 grid
SMALL = Acquisition(
    "small", 3.0e6, 32, 2.6e-4, 70.0, 30.0, 0.03, 0.06, "diverging", 0.05, "hann", 0.5, (64, 48)
)


def test_training_draws_never_resemble_a_validation_acquisition():
    rng = np.random.default_rng(0)
    for k in range(300):
        a = draw_acquisition(rng, f"a{k}")
        assert not too_close_to_validation(a.fc, a.n_elements, a.transmit)
        assert 2e6 <= a.fc <= 5e6 and 60 <= a.sector_deg <= 90 and 0.10 <= a.r_max <= 0.16
        assert Acquisition.from_dict(a.to_dict()) == a
    assert all(too_close_to_validation(v.fc, v.n_elements, v.transmit) for v in VALIDATION)


def test_delay_rf_moves_a_band_limited_pulse_by_a_fractional_delay():
    fs, fc = 4 * 3e6, 3e6
    t = np.arange(512) / fs
    pulse = lambda t0: np.cos(2 * np.pi * fc * (t - t0)) * np.exp(-(((t - t0) / 0.6e-6) ** 2))  # noqa: E731
    rf = np.stack([pulse(5e-6), pulse(8e-6)], axis=1)
    delays = np.array([1.37e-6, 2.51e-6])
    out = physics.delay_rf(rf, delays, fs)
    want = np.stack([pulse(5e-6 + 1.37e-6), pulse(8e-6 + 2.51e-6)], axis=1)
    assert np.max(np.abs(out - want)) < 1e-3


@pytest.fixture(scope="module")
def small_psfs():
    return compute_psfs(SMALL)


def test_psfs_peak_at_their_scatterer_and_have_unit_energy(small_psfs):
    p = small_psfs.psfs
    centre = (p.shape[2] // 2, p.shape[3] // 2)
    for k in range(p.shape[0]):
        for j in range(p.shape[1]):
            peak = np.unravel_index(np.abs(p[k, j]).argmax(), p[k, j].shape)
            assert abs(peak[0] - centre[0]) <= 1 and abs(peak[1] - centre[1]) <= 1
            assert np.sum(np.abs(p[k, j]) ** 2) == pytest.approx(1.0, rel=1e-4)


def test_render_places_the_psf_at_a_sub_pixel_scatterer(small_psfs):
    from dataclasses import replace

    u = small_psfs.upsample
    one = small_psfs.psfs[2, 1]
    table = replace(small_psfs, psfs=np.broadcast_to(one, small_psfs.psfs.shape).copy())
    i, j, di, dj = 30, 20, 1, 2  # scatterer at fine position (i·u + di, j·u + dj)
    field = np.zeros((SMALL.shape[0] * u, SMALL.shape[1] * u), complex)
    field[i * u + di, j * u + dj] = 1.0
    img = render(SMALL, table, field)
    cr, cc = one.shape[0] // 2, one.shape[1] // 2
    for a in range(-3, 4):
        for b in range(-3, 4):
            fr, fc = cr + a * u - di, cc + b * u - dj  # the PSF sample that pixel (i+a, j+b) sees
            assert img[i + a, j + b] == pytest.approx(one[fr, fc], abs=1e-6)


def test_correlation_length_and_rayleigh_snr_of_gaussian_speckle():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    s = 2.0  # PSF amplitude σ (pixels): intensity autocovariance exp(-Δ²/2s²), FWHM 2.355 s
    w = rng.standard_normal((2, 512, 512))
    iq = gaussian_filter(w[0], s) + 1j * gaussian_filter(w[1], s)
    env = np.abs(iq)
    assert correlation_length(env, 0) == pytest.approx(2.355 * s, rel=0.06)
    assert correlation_length(env, 1) == pytest.approx(2.355 * s, rel=0.06)
    assert rayleigh_snr(env) == pytest.approx(1.913, abs=0.03)


@pytest.mark.slow
def test_shards_resume_and_give_cases_and_prior_tiles(tmp_path):
    cfg = {
        "train": {"seed": 3, "acquisitions": 1, "samples_per_acquisition": 2, "haze_db": [-20, -5]},
        "val": {"seed": 4, "samples_per_acquisition": 1, "haze_db": [-12.0]},
    }
    tasks = plan(cfg)
    assert [t.split for t in tasks] == ["train", "val", "val"]
    small = Task("train", SMALL.to_dict(), (-20.0, -6.0), 7)
    path = run_task(small, tmp_path)
    mtime = path.stat().st_mtime_ns
    assert run_task(small, tmp_path) == path and path.stat().st_mtime_ns == mtime  # resumed
    assert not list(tmp_path.rglob(".*tmp*"))
    d = read_shard(path)
    assert d["tissue"].shape == (2, *SMALL.shape) and d["tissue"].dtype == np.complex64
    for k, level in enumerate((-20.0, -6.0)):
        cav, myo = d["cavity"][k], d["myocardium"][k]
        assert cav.any() and myo.any() and not (cav & myo).any()
        # the haze sits at its drawn level in the cavity (up to the shared residual gain map)
        ratio = np.mean(np.abs(d["haze"][k][cav]) ** 2) / np.mean(np.abs(d["tissue"][k][myo]) ** 2)
        assert abs(10 * np.log10(ratio) - level) < 6.0
    cs = cases(tmp_path / "train")
    assert len(cs) == 2 and shards(tmp_path / "train") == [path]
    c = cs[0]
    np.testing.assert_allclose(c["iq"], d["tissue"][0] + d["haze"][0])
    assert c["input"].max() == pytest.approx(0.0, abs=1e-4)  # referenced to the hazy maximum
    assert (c["clean"][c["target"]].mean()) < c["input"][c["target"]].mean()
    tiles = prior_tiles(tmp_path / "train", tile=32, per_frame=3)
    assert tiles["tissue"].shape == (6, 2, 32, 32) == tiles["haze"].shape
    assert np.abs(tiles["tissue"]).max() <= 1.0 and np.abs(tiles["haze"]).max() <= 1.0


def test_render_gives_each_scatterer_the_psf_of_its_own_position(small_psfs):
    """A scatterer at one angle node keeps that node's PSF over its whole response, even where
    its response reaches pixels nearer another node (weights belong to scatterers, not pixels)."""
    from dataclasses import replace

    u = small_psfs.upsample
    psfs = small_psfs.psfs.copy()
    psfs[:, :] = small_psfs.psfs[2, 2]
    psfs[:, 3] = np.roll(small_psfs.psfs[2, 2], 5, axis=1)  # another node: a shifted PSF
    table = replace(small_psfs, psfs=psfs)
    _, th = SMALL.axes()
    fine_th = th[0] + np.arange(SMALL.shape[1] * u) * (th[1] - th[0]) / u
    jj = int(np.argmin(np.abs(fine_th - table.angles[2])))
    i = 30
    field = np.zeros((SMALL.shape[0] * u, SMALL.shape[1] * u), complex)
    field[i * u, jj] = 1.0
    only_node = replace(table, psfs=np.broadcast_to(psfs[:, 2:3], psfs.shape).copy())
    # weight on node 2 at the scatterer is ~1: the image is node 2's PSF alone
    np.testing.assert_allclose(
        render(SMALL, table, field), render(SMALL, only_node, field), atol=0.02 * np.abs(psfs).max()
    )
