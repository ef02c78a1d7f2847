"""Metrics against analytic ground truth, hand-computed inputs and independent implementations."""

import numpy as np
import pytest
from scipy import stats

from usdehaze import metrics


def rayleigh_gcnr(s1: float, s2: float) -> float:
    """Exact gCNR of Rayleigh(s1) vs Rayleigh(s2), s1 < s2.

    The pdfs f_i(x) = x/s_i² · exp(−x²/2s_i²) cross once, where ln(s2²/s1²) = x²/2·(1/s1² − 1/s2²).
    Below the crossing x0 the narrow pdf is larger, so the overlap ∫ min(f1, f2) is the head of the
    wide one plus the tail of the narrow one: F2(x0) + 1 − F1(x0); gCNR = 1 − overlap.
    """
    x0 = np.sqrt(2 * np.log(s2**2 / s1**2) / (1 / s1**2 - 1 / s2**2))
    F = lambda x, s: 1 - np.exp(-(x**2) / (2 * s**2))  # noqa: E731
    overlap = F(x0, s2) + (1 - F(x0, s1))
    return 1 - overlap


@pytest.mark.parametrize("s2", [1.5, 2.0, 4.0])
@pytest.mark.parametrize("domain", ["envelope", "db"])
def test_gcnr_of_two_rayleighs(s2, domain):
    # 1 − overlap is invariant under any monotone map, so the dB image has the same exact value
    rng = np.random.default_rng(int(s2 * 10))
    a, b = rng.rayleigh(1.0, 10_000), rng.rayleigh(s2, 10_000)
    if domain == "db":
        a, b = 20 * np.log10(a), 20 * np.log10(b)
    assert abs(metrics.gcnr(a, b) - rayleigh_gcnr(1.0, s2)) < 0.01


def test_gcnr_extremes_and_symmetry():
    rng = np.random.default_rng(1)
    a = rng.normal(size=5000)
    assert metrics.gcnr(a, a + 100) == pytest.approx(1.0)
    assert metrics.gcnr(a, a) == 0.0 and metrics.ks(a, a) == 0.0
    assert metrics.gcnr(np.ones(10), np.ones(20)) == 0.0  # one constant value: no range
    b = rng.normal(1, 1, 3000)
    assert metrics.gcnr(a, b) == pytest.approx(metrics.gcnr(b, a))
    with pytest.raises(ValueError, match="empty"):
        metrics.gcnr(a, [])
    with pytest.raises(ValueError, match="NaN"):
        metrics.ks(a, [np.nan, 1.0])


def test_small_region_bias_is_what_the_docs_say():
    """Two samples of ONE distribution (true gCNR 0): 256-bin gCNR ≈ 0.2 at 1000 pixels each and
    ≈ 0.07 at 10 000 (docs/metrics.md); KS stays near its own small-sample level (≈ 1/sqrt(n))."""
    rng = np.random.default_rng(5)
    for n, lo, hi in ((1000, 0.17, 0.28), (10_000, 0.05, 0.09)):
        g = [metrics.gcnr(rng.rayleigh(1, n), rng.rayleigh(1, n)) for _ in range(10)]
        k = [metrics.ks(rng.rayleigh(1, n), rng.rayleigh(1, n)) for _ in range(10)]
        assert lo < np.mean(g) < hi, (n, np.mean(g))
        assert np.mean(k) < 1.6 / np.sqrt(n)
    # fewer bins, less bias: the reason `bins` is selectable
    a, b = rng.rayleigh(1, 1000), rng.rayleigh(1, 1000)
    assert metrics.gcnr(a, b, bins=32) < metrics.gcnr(a, b, bins=256)


@pytest.mark.parametrize("bins", [256, 50])
def test_gcnr_matches_zea(bins, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    import zea.metrics as zea_metrics

    rng = np.random.default_rng(2)
    a, b = rng.rayleigh(1.0, 4000), rng.rayleigh(2.5, 6000)
    for t, u in ((a, b), (20 * np.log10(a), 20 * np.log10(b))):
        theirs = float(np.asarray(zea_metrics.gcnr(t, u, bins=bins)))
        assert metrics.gcnr(t, u, bins=bins) == pytest.approx(theirs, abs=1e-12)


def test_ks_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 700), rng.normal(0.3, 1.2, 900)
    assert metrics.ks(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    ties = rng.integers(0, 5, 300).astype(float), rng.integers(1, 6, 200).astype(float)
    assert metrics.ks(*ties) == pytest.approx(stats.ks_2samp(*ties).statistic, abs=1e-12)


def test_cnr_conventions_by_hand():
    t, b = np.array([1.0, 3.0]), np.array([4.0, 6.0, 8.0])
    # μ_t = 2, σ_t² = 1; μ_b = 6, σ_b² = 8/3 (population variances)
    assert metrics.cnr(t, b) == pytest.approx(-4 / np.sqrt(1 + 8 / 3))
    assert metrics.cnr_db(t, b) == pytest.approx(20 * np.log10(4 / np.sqrt((1 + 8 / 3) / 2)))
    assert metrics.cnr(b, t) == pytest.approx(-metrics.cnr(t, b))


def test_contrast_is_the_mean_power_ratio_in_either_domain():
    env_t, env_b = np.array([1.0, 3.0]), np.array([1.0, 1.0, 1.0])  # mean powers 5 and 1
    assert metrics.contrast_db(env_t, env_b, "envelope") == pytest.approx(10 * np.log10(5))
    db_t, db_b = 20 * np.log10(env_t), 20 * np.log10(env_b)
    assert metrics.contrast_db(db_t, db_b, "db") == pytest.approx(10 * np.log10(5))
    s_db = metrics.region_stats(db_t, db_b, domain="db")
    s_env = metrics.region_stats(env_t, env_b, domain="envelope")
    assert s_db["contrast_db"] == pytest.approx(s_env["contrast_db"])
    assert s_db["n_target"] == 2 and s_db["n_background"] == 3
    with pytest.raises(ValueError, match="domain"):
        metrics.region_stats(db_t, db_b, domain="linear")


def test_psnr_ssim():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(32, 32))
    assert metrics.psnr(x + 0.1, x, 1.0) == pytest.approx(20.0)
    assert metrics.psnr(x + 0.1, x, 2.0) == pytest.approx(20.0 + 20 * np.log10(2))
    assert metrics.psnr(x, x, 1.0) == np.inf
    assert metrics.ssim(x, x, 1.0) == pytest.approx(1.0)
    noisy = x + 0.2 * rng.normal(size=x.shape)
    assert 0 < metrics.ssim(noisy, x, 1.0) < 0.9
    # (C, H, W): the mean of the per-channel SSIMs
    c, cn = np.stack([x, x**2, 1 - x]), np.stack([noisy, x**2, 1 - noisy])
    per = [metrics.ssim(cn[i], c[i], 1.0) for i in range(3)]
    assert metrics.ssim(cn, c, 1.0) == pytest.approx(np.mean(per))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(x, x[:5], 1.0)


def _heart(shape=(64, 48), seed=0):
    """A speckled dB image (−60..0) with a dark cavity (rows 16:40, cols 12:36) and masks."""
    rng = np.random.default_rng(seed)
    img = np.clip(20 * np.log10(rng.rayleigh(0.1, shape)), -60, 0)  # tissue around −20 dB
    cavity = np.zeros(shape, bool)
    cavity[16:40, 12:36] = True
    img[cavity] -= 30.0
    return img, cavity, ~cavity


def test_haze_removed_is_the_share_of_lost_contrast_that_comes_back():
    clean, cav, tis = _heart()
    c_clean = metrics.haze_contrast_db(clean[cav], clean[tis])
    assert c_clean == pytest.approx(clean[tis].mean() - clean[cav].mean())
    k = 12.0  # haze lifts the cavity by exactly k dB; a dehazer takes out 0, k/2 or all of it
    hazy = clean + k * cav
    c_hazy = metrics.haze_contrast_db(hazy[cav], hazy[tis])
    assert c_clean - c_hazy == pytest.approx(k)
    for taken, share in ((0.0, 0.0), (k / 2, 0.5), (k, 1.0), (-k / 4, -0.25)):
        out = hazy - taken * cav
        c_out = metrics.haze_contrast_db(out[cav], out[tis])
        assert metrics.haze_removed(c_out, c_hazy, c_clean) == pytest.approx(share, abs=1e-12)
    # smoothing speckle (a local mean that keeps each region's mean) removes no haze
    smooth = hazy.copy()
    for m in (cav, tis):
        smooth[m] = hazy[m].mean()
    assert metrics.gcnr(smooth[cav], smooth[tis]) > metrics.gcnr(hazy[cav], hazy[tis])
    c_smooth = metrics.haze_contrast_db(smooth[cav], smooth[tis])
    assert metrics.haze_removed(c_smooth, c_hazy, c_clean) == pytest.approx(0.0, abs=1e-9)


def test_haze_removed_pools_frames_and_refuses_when_there_was_no_haze():
    # frame 1 lost 10 dB and got 10 back, frame 2 lost 2 and got none: pooled 10/12, not 0.5
    pooled = metrics.haze_removed([30.0, 38.0], [20.0, 38.0], [30.0, 40.0])
    assert pooled == pytest.approx(10 / 12)
    assert np.isnan(metrics.haze_removed(25.0, 25.0, 25.0))  # no haze: nothing to take out
    assert np.isnan(metrics.haze_removed(26.0, 25.0, 25.3))  # 0.3 dB lost: below min_loss_db
    assert metrics.haze_removed(26.0, 25.0, 25.3, min_loss_db=0.1) == pytest.approx(1 / 0.3)
    # haze that raised the contrast: still the share of the way from hazy to clean
    assert metrics.haze_removed(35.0, 40.0, 30.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sizes"):
        metrics.haze_removed([1.0, 2.0], [1.0], [3.0])


def test_tissue_level_ignores_gain_and_smoothing_that_lowers_the_maximum():
    img, cav, tis = _heart(seed=1)
    level = metrics.tissue_level_db(img, tis, tis)
    assert level == pytest.approx(img[tis].mean() - np.median(img[tis]))
    assert metrics.tissue_level_db(img - 7.5, tis, tis) == pytest.approx(level)  # global gain
    # shave the brightest tissue pixels down to the 90th percentile: the max drops by several dB,
    # the median does not move, so a max-referenced level would shift and this one only by the
    # change of the region's mean
    shaved = img.copy()
    p90 = np.percentile(img[tis], 90)
    shaved[tis & (img > p90)] = p90
    assert img.max() - shaved.max() > 3
    assert np.median(shaved[tis]) == np.median(img[tis])
    expected = level + shaved[tis].mean() - img[tis].mean()
    assert metrics.tissue_level_db(shaved, tis, tis) == pytest.approx(expected)
    # a region 4 dB brighter than the rest reads 4 dB higher against the same reference
    brighter = img + 4.0 * cav
    assert metrics.tissue_level_db(brighter, cav, tis) - metrics.tissue_level_db(
        img, cav, tis
    ) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="boolean mask"):
        metrics.tissue_level_db(img, tis.astype(int), tis)
    with pytest.raises(ValueError, match="empty"):
        metrics.tissue_level_db(img, np.zeros_like(tis), tis)


def test_psnr_in_mask_sees_only_the_sector():
    rng = np.random.default_rng(6)
    ref = rng.uniform(-60, 0, (40, 30))
    sector = np.zeros(ref.shape, bool)
    sector[:, 5:25] = True
    out = ref + 3.0 * sector  # 3 dB off inside the sector ...
    out[~sector] = 0.0  # ... and nonsense outside it
    assert metrics.psnr_in_mask(out, ref, sector) == pytest.approx(20 * np.log10(60 / 3))
    assert metrics.psnr_in_mask(out, ref, sector, 40.0) == pytest.approx(20 * np.log10(40 / 3))
    assert metrics.psnr_in_mask(out, ref, np.ones_like(sector)) < 20 * np.log10(60 / 3)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr_in_mask(out, ref[:5], sector)


def test_speckle_sd_of_fully_developed_speckle_is_log_rayleigh():
    """Rayleigh amplitudes in dB (20 log10 A = 10 log10 I, I exponential) spread by
    π/√6 · 10/ln 10 ≈ 5.57 dB; a 3×3 mean filter over
    independent speckle lowers it (the statistic sees smoothing that gCNR rewards)."""
    from scipy.ndimage import uniform_filter

    from usdehaze.metrics import speckle_sd_db

    r = np.random.default_rng(0)
    amp = np.abs(r.standard_normal((400, 400)) + 1j * r.standard_normal((400, 400)))
    db = 20 * np.log10(amp)
    want = np.pi / np.sqrt(6) * 10 / np.log(10)
    assert abs(speckle_sd_db(db) - want) < 0.05
    assert speckle_sd_db(uniform_filter(db, 3)) < want / 2
