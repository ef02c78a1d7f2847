"""The simulator's physics: speckle statistics, haze level, additivity, determinism, ROI."""

import numpy as np
from scipy import stats

from usdehaze.ultrasound.roi import pair_masks, roi_from_dict
from usdehaze.ultrasound.simulate import simulate_cardiac, simulate_cyst


def test_homogeneous_speckle_is_rayleigh():
    sim = simulate_cyst(1, seed=3, haze_db=-60)
    env = np.abs(sim.tissue_iq[0, 150:250, 10:118])  # deep homogeneous band below the cysts' rows
    cysts = [(cx, cz, r) for cx, cz, r in sim.params["cysts"]]
    x, z = sim.x[150:250, 10:118], sim.z[150:250, 10:118]
    keep = np.ones_like(env, bool)
    for cx, cz, r in cysts:
        keep &= np.hypot(x - cx, z - cz) > 1.5 * r
    e = env[keep]
    snr = e.mean() / e.std()
    assert abs(snr - 1.913) < 0.08  # Rayleigh: sqrt(π/(4 − π))
    sample = e[::7] / np.sqrt(np.mean(e**2) / 2)  # thin out correlated neighbours
    assert stats.kstest(sample, "rayleigh").statistic < 0.05


def test_haze_level_and_additivity():
    for level in (-16.0, -6.0):
        sim = simulate_cardiac(2, seed=1, haze_db=level)
        ((_, t, b),) = pair_masks(roi_from_dict(sim.roi), sim.x, sim.z)
        np.testing.assert_array_equal(sim.hazy_iq, sim.tissue_iq + sim.haze_iq)
        from usdehaze.ultrasound.simulate import _wall_mask

        wall = _wall_mask(sim.x, sim.z, sim.params)
        ratio = 10 * np.log10(
            np.mean(np.abs(sim.haze_iq) ** 2) / np.mean(np.abs(sim.tissue_iq[:, wall]) ** 2)
        )
        assert abs(ratio - level) < 1.0
        # haze fills the ventricle: far more power there than the blood alone
        lv_t = np.mean(np.abs(sim.tissue_iq[:, t]) ** 2)
        lv_h = np.mean(np.abs(sim.hazy_iq[:, t]) ** 2)
        assert 10 * np.log10(lv_h / lv_t) > 10


def test_roi_regions_sit_on_the_anatomy():
    sim = simulate_cardiac(1, seed=5, haze_db=-60)
    ((_, t, b),) = pair_masks(roi_from_dict(sim.roi), sim.x, sim.z)
    env_db = 20 * np.log10(np.abs(sim.tissue_iq[0]) + 1e-12)
    assert np.median(env_db[b]) - np.median(env_db[t]) > 30  # wall far brighter than blood


def test_same_seed_same_scan():
    a, b = simulate_cardiac(2, seed=7), simulate_cardiac(2, seed=7)
    np.testing.assert_array_equal(a.hazy_iq, b.hazy_iq)
    assert a.roi == b.roi
    assert not np.array_equal(a.hazy_iq, simulate_cardiac(2, seed=8).hazy_iq)
