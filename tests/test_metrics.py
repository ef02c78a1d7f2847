"""Metrics against analytic ground truth and independent implementations."""

import numpy as np
import pytest
from scipy import stats

from usdehaze import metrics


def rayleigh_gcnr(s1: float, s2: float) -> float:
    """Exact gCNR of Rayleigh(s1) vs Rayleigh(s2): 1 − overlap, from the single pdf crossing."""
    x0 = np.sqrt(2 * np.log(s2**2 / s1**2) / (1 / s1**2 - 1 / s2**2))
    F = lambda x, s: 1 - np.exp(-(x**2) / (2 * s**2))  # noqa: E731
    overlap = (1 - F(x0, s1)) + F(x0, s2)  # s1 < s2: tail of the narrow one + head of the wide one
    return 1 - overlap


@pytest.mark.parametrize("s2", [2.0, 4.0])
def test_gcnr_of_two_rayleighs(s2):
    rng = np.random.default_rng(0)
    a, b = rng.rayleigh(1.0, 10_000), rng.rayleigh(s2, 10_000)
    assert abs(metrics.gcnr(a, b) - rayleigh_gcnr(1.0, s2)) < 0.01


def test_gcnr_extremes_and_symmetry():
    rng = np.random.default_rng(1)
    a = rng.normal(size=5000)
    assert metrics.gcnr(a, a + 100) == pytest.approx(1.0)
    # same distribution: only the histogram noise of 256 bins (~20 counts a bin) remains
    assert metrics.gcnr(a, rng.normal(size=5000)) < 0.15
    assert metrics.ks(a, rng.normal(size=5000)) < 0.04
    b = rng.normal(1, 1, 3000)
    assert metrics.gcnr(a, b) == pytest.approx(metrics.gcnr(b, a))


def test_gcnr_matches_zea():
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import zea.metrics as zea_metrics

    rng = np.random.default_rng(2)
    a, b = rng.rayleigh(1.0, 4000), rng.rayleigh(2.5, 6000)
    fn = zea_metrics.gcnr
    theirs = float(np.asarray(fn(a, b, bins=256)))
    assert metrics.gcnr(a, b, bins=256) == pytest.approx(theirs, abs=1e-9)


def test_ks_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 700), rng.normal(0.3, 1.2, 900)
    assert metrics.ks(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_cnr_conventions():
    t, b = np.array([1.0, 3.0]), np.array([0.0, 0.0])  # μ 2 vs 0, σ² 1 vs 0
    assert metrics.cnr(t, b) == pytest.approx(2.0)
    assert metrics.cnr_db(t, b) == pytest.approx(20 * np.log10(2 / np.sqrt(0.5)))
    assert metrics.contrast_db(np.array([-10.0]), np.array([0.0])) == pytest.approx(-10.0)


def test_psnr_ssim():
    x = np.zeros((16, 16))
    assert metrics.psnr(x + 0.1, x, 1.0) == pytest.approx(20.0)
    assert metrics.ssim(x, x, 1.0) == pytest.approx(1.0)
