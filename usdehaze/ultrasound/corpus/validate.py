"""Check the PSF model against full SIMUS: the same homogeneous speckle phantom made both ways,
compared on speckle statistics per depth band (correlation lengths, Rayleigh envelope)."""

from __future__ import annotations

import numpy as np

from usdehaze.ultrasound.corpus import physics
from usdehaze.ultrasound.corpus.acquisition import Acquisition
from usdehaze.ultrasound.corpus.psf import compute_psfs
from usdehaze.ultrasound.corpus.render import render, speckle_field
from usdehaze.ultrasound.corpus.speckle_stats import band_stats


def full_simus_speckle(acq: Acquisition, n_scatterers: int, seed: int = 0) -> np.ndarray:
    """Beamformed I/Q of a homogeneous phantom (uniform scatterers over the sector), full SIMUS.
    Diverging transmits only: a focused scan would need one SIMUS run per image line."""
    if acq.transmit != "diverging":
        raise ValueError("full-SIMUS speckle is only simulated for diverging-wave acquisitions")
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.uniform(acq.r_min**2, acq.r_max**2, n_scatterers))
    th = rng.uniform(-1.05 * acq.half_angle, 1.05 * acq.half_angle, n_scatterers)
    d = physics.tx_delays(acq)
    nt = physics.n_samples(acq)
    rf = physics.channel_rf(
        acq, r * np.sin(th), r * np.cos(th), rng.standard_normal(n_scatterers), d, nt
    )
    x, z = acq.grid()
    return physics.beamform(physics.das_matrix(acq, nt, x, z, d), physics.to_iq(acq, rf), x.shape)


def compare(acq: Acquisition, n_scatterers: int, seed: int = 0, n_bands: int = 4) -> list[dict]:
    """Per depth band: correlation lengths and Rayleigh SNR of full SIMUS and of the PSF model,
    and the model's relative error on each correlation length."""
    full = band_stats(full_simus_speckle(acq, n_scatterers, seed), n_bands)
    table = compute_psfs(acq)
    rng = np.random.default_rng(seed + 1)
    fast = band_stats(
        render(acq, table, speckle_field(rng, np.ones(acq.shape), table.upsample)), n_bands
    )
    rows = []
    for f, m in zip(full, fast):
        rows.append(
            {
                "band": f["band"],
                **{f"simus_{k}": f[k] for k in ("axial_px", "lateral_px", "rayleigh_snr")},
                **{f"model_{k}": m[k] for k in ("axial_px", "lateral_px", "rayleigh_snr")},
                "axial_error": m["axial_px"] / f["axial_px"] - 1,
                "lateral_error": m["lateral_px"] / f["lateral_px"] - 1,
            }
        )
    return rows
