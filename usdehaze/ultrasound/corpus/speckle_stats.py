"""Speckle statistics: correlation lengths along depth and angle, and the envelope's fit to
Rayleigh, per depth band. Used to check the PSF model against full SIMUS."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def correlation_length(env: np.ndarray, axis: int) -> float:
    """Full width at half maximum (pixels) of the envelope's normalised autocovariance along
    ``axis``, averaged over the other axis; linear interpolation between lags."""
    e = env - env.mean(axis=axis, keepdims=True)
    n = e.shape[axis]
    spec = np.fft.rfft(e, n=2 * n, axis=axis)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=axis)
    ac = np.take(ac, np.arange(n), axis=axis)
    ac = ac.mean(axis=1 - axis)
    ac = ac / ac[0]
    below = np.nonzero(ac < 0.5)[0]
    if below.size == 0:
        return float("inf")
    k = below[0]
    # interpolate the half-maximum crossing between lags k-1 and k; FWHM is twice that lag
    lag = (k - 1) + (ac[k - 1] - 0.5) / (ac[k - 1] - ac[k])
    return float(2 * lag)


def rayleigh_snr(env: np.ndarray) -> float:
    """Envelope mean / standard deviation: 1.91 for fully developed speckle (Rayleigh)."""
    return float(env.mean() / env.std())


def band_stats(iq: np.ndarray, n_bands: int = 4, margin: int = 8) -> list[dict[str, float]]:
    """Axial and lateral correlation lengths (pixels) and Rayleigh SNR in ``n_bands`` depth
    bands of a homogeneous speckle image (n_r, n_θ); ``margin`` pixels dropped at each edge."""
    env = np.abs(iq[margin:-margin, margin:-margin]).astype(np.float64)
    # ideal depth and lateral gain: divide by the mean power profiles along depth and angle
    # (decay, directivity), each smoothed over many speckle cells so speckle is left intact
    p_r = gaussian_filter1d(np.mean(env**2, axis=1), 8.0, mode="nearest")
    env /= np.sqrt(p_r)[:, None]
    p_t = gaussian_filter1d(np.mean(env**2, axis=0), 8.0, mode="nearest")
    env /= np.sqrt(p_t)[None, :]
    edges = np.linspace(0, env.shape[0], n_bands + 1).astype(int)
    rows = []
    for b in range(n_bands):
        e = env[edges[b] : edges[b + 1]]
        rows.append(
            {
                "band": b,
                "axial_px": correlation_length(e, 0),
                "lateral_px": correlation_length(e, 1),
                "rayleigh_snr": rayleigh_snr(e),
            }
        )
    return rows
