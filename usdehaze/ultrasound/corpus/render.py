"""Beamformed I/Q from a scatterer field: a convolution with the acquisition's PSFs, which vary
with depth and angle (each scatterer's PSF interpolated linearly between the PSF nodes)."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from usdehaze.ultrasound.corpus.acquisition import Acquisition
from usdehaze.ultrasound.corpus.psf import PSFTable


def fine_axes(acq: Acquisition, u: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth and angle axes ``u`` times finer than the image's; every u-th sample is a pixel."""
    r, th = acq.axes()
    n_r, n_th = acq.shape
    return (
        r[0] + np.arange(n_r * u) * (r[1] - r[0]) / u,
        th[0] + np.arange(n_th * u) * (th[1] - th[0]) / u,
    )


def upsample_map(a: np.ndarray, u: int) -> np.ndarray:
    """A pixel map (n_r, n_θ) repeated onto the fine grid (n_r·u, n_θ·u)."""
    return np.repeat(np.repeat(a, u, axis=0), u, axis=1)


def render(acq: Acquisition, table: PSFTable, field: np.ndarray) -> np.ndarray:
    """I/Q image (n_r, n_θ) of a complex scatterer field given on the fine grid
    (n_r·u, n_θ·u), u = ``table.upsample``."""
    u = table.upsample
    if field.shape != (acq.shape[0] * u, acq.shape[1] * u):
        raise ValueError(f"field shape {field.shape}: expected the fine grid of {acq.shape} x{u}")
    r, th = fine_axes(acq, u)
    wr = table.weights(table.depths, r)  # (n_r, K)
    wt = table.weights(table.angles, th)  # (n_θ, A)
    out = np.zeros(field.shape, np.complex128)
    for k in range(len(table.depths)):
        for j in range(len(table.angles)):
            w = wr[:, k][:, None] * wt[:, j][None, :]
            if not w.any():
                continue
            # weights at the scatterer, not at the pixel: each scatterer's whole response is
            # the PSF of its own position (weighting pixels mixes PSFs across one response)
            out += fftconvolve(w * field, table.psfs[k, j], mode="same")
    return out[::u, ::u].astype(np.complex64)


def speckle_field(rng: np.random.Generator, amplitude: np.ndarray, u: int) -> np.ndarray:
    """Circular complex Gaussian scatterers, one per fine-grid cell, of r.m.s. ``amplitude``
    (a pixel map, spread over the fine grid)."""
    amplitude = upsample_map(amplitude, u)
    n = rng.standard_normal((2, *amplitude.shape))
    return (amplitude * (n[0] + 1j * n[1]) / np.sqrt(2)).astype(np.complex128)
