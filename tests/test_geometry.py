"""Scan conversion maps each polar sample to its physical position."""

import numpy as np

from usdehaze.ultrasound.geometry import ScanConverter
from usdehaze.ultrasound.simulate import polar_grid


def test_scan_conversion_places_values_at_their_positions():
    x, z, axes = polar_grid((128, 64))
    frames = np.stack([np.hypot(x, z), np.arctan2(x, z)])  # value = own radius / angle
    sc = ScanConverter.for_axes(axes["theta"], axes["r"], axes["origin"])
    out = sc(frames)
    X, Z = np.meshgrid(sc.x, sc.z)
    inside = sc.inside
    assert inside.sum() > 0.3 * inside.size
    np.testing.assert_allclose(out[0][inside], np.hypot(X, Z)[inside], atol=1e-3)
    np.testing.assert_allclose(out[1][inside], np.arctan2(X, Z)[inside], atol=2e-2)
    assert np.isnan(out[0][~inside]).all()
    assert sc(frames[0]).shape == out[0].shape
