"""The full-wave solver against physics it must reproduce, and a frame as a corpus case.

Small grids (fc 2 MHz, 4 cells per wavelength) so each test runs in seconds on one core.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import hilbert

from usdehaze.ultrasound.fullwave.solver import Grid, energy, simulate

FC, C, RHO = 2.0e6, 1540.0, 1000.0
DX = C / FC / 4  # the scans' grid: 4 cells per wavelength
DT = 0.4 * DX / C  # the scans' Courant number
SIGMA = 2 * np.sqrt(np.log(2)) / (np.pi * 0.7 * FC)
T0 = 3 * SIGMA


def _pulse(t: np.ndarray) -> np.ndarray:
    """A 70 % bandwidth Gaussian-windowed sine at FC, its peak at T0."""
    return np.sin(2 * np.pi * FC * (t - T0)) * np.exp(-(((t - T0) / SIGMA) ** 2))


def _plane_wave(rho: np.ndarray, src_row: int, rec_row: int, nt: int, dx: float):
    """Pressure over time at ``rec_row`` (middle column) for a plane wave sent down from
    ``src_row`` (a source on every column; periodic across, PML above and below) in a medium of
    density ``rho`` (nz, nx) and speed C, and in the homogeneous medium: (total, incident)."""
    nz, nx = rho.shape
    dt = 0.4 * dx / C
    g = Grid(nz, nx, dx, dt)
    sig = np.repeat(_pulse(np.arange(nt) * dt)[:, None], nx, axis=1)
    src = (np.full(nx, src_row), np.arange(nx))
    rec = (np.array([rec_row]), np.array([nx // 2]))
    out = simulate(
        g,
        np.full((2, nz, nx), C),
        np.stack([rho, np.full_like(rho, RHO)]),
        src,
        sig,
        rec,
        nt,
        pml_size=(round(20 * DX / dx), 0),
        c_ref=C,
    )
    return out[0, :, 0], out[1, :, 0]


def _peak(x: np.ndarray, lo: int = 0, hi: int | None = None) -> tuple[int, complex]:
    """Index and analytic value of the envelope's maximum within samples [lo, hi)."""
    a = hilbert(x)
    i = lo + int(np.argmax(np.abs(a[lo:hi])))
    return i, a[i]


def _reflection(rho2: float, ppw: int) -> tuple[float, float]:
    """(signed reflection coefficient, echo delay error in samples) of a density step, measured
    with a plane wave on a grid of ``ppw`` cells per wavelength."""
    f = ppw / 4
    dx, dt = DX / f, 0.4 * DX / f / C
    nz, iface, src, rec = int(220 * f), int(140 * f), int(30 * f), int(100 * f)
    rho = np.full((nz, 8), RHO)
    rho[iface:] = rho2
    nt = int(((2 * (iface - src) * dx) / C + 3 * T0) / dt)
    total, inc = _plane_wave(rho, src, rec, nt, dx)
    i_inc, a_inc = _peak(inc, 0, int((T0 + (rec - src) * dx / C + 2 * T0) / dt))
    # the step lies on the velocity point between the last cell of ρ₁ and the first of ρ₂
    extra = 2 * (iface - 0.5 - rec) * dx / C
    i_echo, a_echo = _peak(total - inc, i_inc + int((extra - 2 * T0) / dt))
    r = np.abs(a_echo) / np.abs(a_inc) * np.sign(np.real(a_echo / a_inc))
    return float(r), (i_echo - i_inc) - extra / dt


@pytest.mark.parametrize("rho2", [1500.0, 700.0, 2000.0])
def test_density_step_reflects_the_impedance_contrast(rho2):
    """A plane wave meeting a half-space of another impedance reflects (Z2 − Z1)/(Z2 + Z1) of
    its amplitude, sign included, at the time of the extra path: within 6 % on a fine grid (8
    cells per wavelength), and on the scans' grid (4) low-passed but right in sign and within
    30 % (docs/fullwave.md gives the measured factor)."""
    expected = (rho2 - RHO) / (rho2 + RHO)
    fine, lag = _reflection(rho2, 8)
    assert fine == pytest.approx(expected, rel=0.06)
    assert abs(lag) <= 1.0
    coarse, lag = _reflection(rho2, 4)
    assert coarse == pytest.approx(expected, rel=0.3)
    assert abs(coarse) < abs(expected)  # the scheme's low-pass at a sharp step
    assert abs(lag) <= 1.0


def test_a_slab_reverberates_at_multiples_of_its_round_trip():
    """A high-impedance slab echoes from its top, its bottom, then again and again later by
    its own round trip 2L/c, each bounce weaker by R² (R the slab's reflection coefficient)."""
    f = 2  # 8 cells per wavelength
    dx, dt = DX / f, 0.4 * DX / f / C
    nz, src, top, thick = 300 * f, 30 * f, 60 * f, 24 * f  # slab 4.6 mm thick
    rho = np.full((nz, 8), RHO)
    rho[top : top + thick] = 3 * RHO
    r = (3 - 1) / (3 + 1)
    nt = int((2 * (top + 4 * thick - src) * dx / C + 2 * T0) / dt)
    total, inc = _plane_wave(rho, src, src, nt, dx)
    env = np.abs(hilbert(total - inc))
    trip = 2 * thick * dx / C
    first = T0 + 2 * (top - 0.5 - src) * dx / C
    peaks = []
    for k in range(4):  # top, bottom, first and second reverberation inside the slab
        t = first + k * trip
        lo, hi = int((t - trip / 3) / dt), int((t + trip / 3) / dt)
        i = lo + int(np.argmax(env[lo:hi]))
        assert abs(i * dt - t) <= 2 * dt, f"echo {k} at {i * dt * 1e6:.3f} µs, not {t * 1e6:.3f}"
        peaks.append(env[i])
    a = np.array(peaks) / peaks[0]
    assert a[1] == pytest.approx(1 - r**2, rel=0.08)  # bottom: T·R·T' against R
    assert a[2] / a[1] == pytest.approx(r**2, rel=0.1)  # each extra round trip: R²
    assert a[3] / a[2] == pytest.approx(r**2, rel=0.1)


def test_point_echo_arrives_at_the_round_trip_time():
    """A point scatterer d below a point source echoes back at 2d/c (envelope peak of the
    scattered pressure within one RF sample of 4·fc, the rate the corpus simulates at)."""
    nz, nx, src, d = 160, 96, 30, 70
    rho = np.full((nz, nx), RHO)
    rho[src + d, nx // 2] = 1.3 * RHO
    g = Grid(nz, nx, DX, DT)
    nt = int((2 * d * DX / C + 3 * T0) / DT)
    sig = _pulse(np.arange(nt) * DT)[:, None]
    pos = (np.array([src]), np.array([nx // 2]))
    media = np.stack([rho, np.full_like(rho, RHO)])
    out = simulate(g, np.full(media.shape, C), media, pos, sig, pos, nt, c_ref=C)
    i, _ = _peak(out[0, :, 0] - out[1, :, 0], int((2 * d * DX / C) / DT))
    assert abs(i * DT - (T0 + 2 * d * DX / C)) <= 1 / (4 * FC)


@pytest.mark.parametrize(("cfl", "stable"), [(0.4, True), (1.0, False)])
def test_energy_stays_bounded_below_the_courant_limit(cfl, stable):
    """A pressure pulse released in a medium of ±30 % density never gains energy at the scans'
    Courant number (0.4) and the PML takes it out; far above the limit (1.0) it blows up, so
    the check can fail."""
    rng = np.random.default_rng(0)
    n = 96
    c = np.full((n, n), C)
    rho = RHO * np.clip(1 + 0.3 * rng.standard_normal((n, n)), 0.3, None)
    g = Grid(n, n, DX, cfl * DX / C)
    yy, xx = np.mgrid[:n, :n] - n // 2
    p0 = np.exp(-(xx**2 + yy**2) / 8.0)
    with np.errstate(over="ignore", invalid="ignore"):
        e = energy(g, c, rho, p0, int(600 * 0.3 / cfl), c_ref=C)
    if stable:
        assert e.max() <= 1.0001 * e[0]
        assert e[-1] < 0.02 * e[0]
    else:
        assert not np.all(np.isfinite(e)) or e.max() > 1e3 * e[0]


def test_a_frame_is_a_corpus_case(tmp_path):
    """A (tiny) full-wave frame: hazy = tissue + haze on the polar grid, the haze carries the
    chest wall's echoes (none in the tissue-only image there), the tissue-only medium has no
    layers, and the shard reads back as the cases ``usdehaze evaluate --cases`` scores."""
    from usdehaze.ultrasound.corpus.store import cases, write_shard
    from usdehaze.ultrasound.fullwave.frame import make_frame
    from usdehaze.ultrasound.fullwave.phantom import draw_phantom
    from usdehaze.ultrasound.fullwave.scan import RHO0, Setup

    setup = Setup(r_max=0.03, n_elements=24, shape=(48, 32), ppw=3.0, sector_deg=50.0)
    ph = draw_phantom(setup, np.random.default_rng(3), scatter=0.0)
    _, z = setup.axes()
    assert np.all(ph.rho_tissue[z >= 0] == RHO0)  # no scatterers, no layers
    assert np.ptp(ph.rho_hazy[(z > 0) & (z < 0.005)]) > 50  # skin and fat differ

    s = make_frame(setup, seed=3, scatter=0.05)
    assert s["tissue"].shape == s["haze"].shape == setup.shape
    assert s["cavity"].any() and s["myocardium"].any() and s["tissue_mask"].any()
    assert np.isfinite(s["params"]["haze_db"])
    hazy = s["tissue"] + s["haze"]
    assert np.abs(hazy).max() == pytest.approx(1.0, rel=1e-5)
    write_shard(tmp_path / "fw.npz", setup.acquisition().to_dict(), [s])
    (case,) = cases(tmp_path)
    assert np.allclose(case["iq"], hazy)
    assert case["haze_level_db"] == pytest.approx(s["params"]["haze_db"])
    # the layers' specular echoes are haze: where the chest wall lies, haze outweighs tissue
    r = setup.acquisition().axes()[0]
    wall = (r > 0.011) & (r < s["params"]["chest_wall_thickness"])
    power = lambda a: float(np.mean(np.abs(a[wall]) ** 2))  # noqa: E731
    assert power(s["haze"]) > 3 * power(s["tissue"])
    # as make_fullwave writes it (the solver's setup beside the probe's): it also renders as
    # exported B-mode (pipelines/calibrate_bmode_harm.py --test), the probe's geometry kept
    from usdehaze.ultrasound.corpus.bmode import bmode_cases

    (tmp_path / "b").mkdir()
    acq = {**setup.acquisition().to_dict(), "fullwave": setup.to_dict()}
    write_shard(tmp_path / "b" / "fw.npz", acq, [s])
    (b,) = bmode_cases(tmp_path / "b", seed=0)
    assert b["input"].shape == b["clean"].shape == b["sector"].shape and b["sector"].any()


def test_a_point_scatterer_images_where_it_lies():
    """Transmit, receive, incident-field subtraction, mute, I/Q and DAS together: one density
    point at (x, z) = (3, 20) mm shows its brightest pixel within one depth sample and one beam
    of r = 20.2 mm, θ = 8.5° on the polar grid."""
    from usdehaze.ultrasound.fullwave.frame import incident
    from usdehaze.ultrasound.fullwave.phantom import empty_medium
    from usdehaze.ultrasound.fullwave.scan import Setup, channels, das, mute, to_iq

    setup = Setup(r_max=0.03, n_elements=24, shape=(96, 48), ppw=3.0, sector_deg=50.0)
    x, z = setup.axes()
    rho = empty_medium(setup, 0.4)
    rho[np.argmin(np.abs(z - 0.02)), np.argmin(np.abs(x - 0.003))] *= 1.5
    rf = channels(setup, rho[None]) - incident(setup, 0.4)[None]
    img = np.abs(das(setup, to_iq(setup, rf * mute(setup, rf.shape[1])[None]))[0])
    r, th = setup.acquisition().axes()
    i, j = np.unravel_index(np.argmax(img), img.shape)
    x0, z0 = x[np.argmin(np.abs(x - 0.003))], z[np.argmin(np.abs(z - 0.02))]
    assert abs(r[i] - np.hypot(x0, z0)) <= r[1] - r[0]
    assert abs(th[j] - np.arctan2(x0, z0)) <= th[1] - th[0]
