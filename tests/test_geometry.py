"""Scan conversion maps each polar sample to its physical position; Cartesian scans pass through."""

import numpy as np
import pytest

from usdehaze.ultrasound.geometry import ScanConverter, extent_mm, scan_convert


def sector(nr=96, nth=48, origin=(0.0, 0.0), r0=0.01, r1=0.12, half=0.7):
    r = np.linspace(r0, r1, nr)
    theta = np.linspace(-half, half, nth)
    rr, tt = np.meshgrid(r, theta, indexing="ij")
    return r, theta, rr, tt, np.asarray(origin, float)


def test_bilinear_is_exact_for_functions_linear_in_r_and_theta():
    r, theta, rr, tt, o = sector(origin=(0.004, -0.002))
    frames = np.stack([1e3 * rr, tt, 3.0 * rr - 2 * tt + 1])  # linear in the grid indices
    sc = ScanConverter.for_axes(theta, r, o)
    out = sc(frames)
    X, Z = np.meshgrid(sc.x, sc.z)
    R, T = np.hypot(X - o[0], Z - o[1]), np.arctan2(X - o[0], Z - o[1])
    inside = sc.inside
    np.testing.assert_allclose(out[0][inside], 1e3 * R[inside], atol=1e-4)
    np.testing.assert_allclose(out[1][inside], T[inside], atol=1e-5)
    np.testing.assert_allclose(out[2][inside], (3 * R - 2 * T + 1)[inside], atol=1e-5)
    # the sector mask is exactly the set of output pixels within the r and θ ranges
    expect = (R >= r[0]) & (R <= r[-1]) & (T >= theta[0]) & (T <= theta[-1])
    assert np.array_equal(inside, expect) and inside.mean() > 0.3
    assert np.isnan(out[:, ~inside]).all()
    # the grid covers the whole sector: the farthest samples land inside it
    assert (
        sc.x[0] <= o[0] + r[-1] * np.sin(theta[0]) and sc.z[-1] >= o[1] + r[-1] - sc.x[1] + sc.x[0]
    )


def test_vectorised_over_frames_and_single_frame():
    r, theta, rr, tt, o = sector()
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(5, *rr.shape)).astype(np.float32)
    sc = ScanConverter.for_axes(theta, r, o)
    out = sc(frames, fill=-60.0)
    for i in range(5):
        np.testing.assert_array_equal(out[i], sc(frames[i], fill=-60.0))
    assert (out[:, ~sc.inside] == -60).all()
    # a constant frame stays constant (weights sum to 1)
    np.testing.assert_allclose(sc(np.full(rr.shape, 7.0))[sc.inside], 7.0, rtol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        sc(frames[:, :10])


def test_descending_angles_give_the_same_picture():
    r, theta, rr, tt, o = sector()
    img = np.sin(7 * tt) * rr
    a = ScanConverter.for_axes(theta, r, o)(img)
    b = ScanConverter.for_axes(theta[::-1], r, o)(img[:, ::-1])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_output_size_is_capped_and_pixel_can_be_set():
    r, theta, *_ = sector(nr=5000)
    sc = ScanConverter.for_axes(theta, r, max_size=400)
    assert max(sc.inside.shape) <= 400
    fine = ScanConverter.for_axes(theta, r, pixel=0.5e-3)
    assert np.allclose(np.diff(fine.x), 0.5e-3) and np.allclose(np.diff(fine.z), 0.5e-3)


def test_scan_convert_polar_and_cartesian_pass_through():
    r, theta, rr, tt, o = sector()
    img, xa, za = scan_convert(rr[None], "polar", {"theta": theta, "r": r, "origin": o})
    assert img.shape == (1, za.size, xa.size)
    frames = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    xs, zs = np.linspace(-1e-3, 1e-3, 4), np.linspace(0.01, 0.012, 3)
    out, xa, za = scan_convert(frames, "cartesian", {"x": xs, "z": zs})
    assert np.array_equal(out, frames) and np.array_equal(xa, xs) and np.array_equal(za, zs)
    Z, X = np.meshgrid(zs, xs, indexing="ij")
    out, xa, za = scan_convert(frames, "cartesian", {}, X, Z)  # axes from per-pixel positions
    assert np.array_equal(xa, xs) and np.array_equal(za, zs)
    # imshow extent is the pixel edges, depth downwards
    assert extent_mm(xs, zs) == pytest.approx((-1 - 1 / 3, 1 + 1 / 3, 12.5, 9.5))
