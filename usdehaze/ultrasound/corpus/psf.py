"""Point-spread functions of an acquisition, computed with PyMUST per depth and angle.

A PSF is the beamformed I/Q image of one point scatterer, sampled on the acquisition's own polar
grid around the scatterer. For a diverging wave every image line shares one transmit; for a
focused scan each line has its own transmit aimed along it, so each PSF column is beamformed from
the transmit of its own line (the two-way beam).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usdehaze.ultrasound.corpus import physics
from usdehaze.ultrasound.corpus.acquisition import SOUND_SPEED, Acquisition

N_DEPTHS = 8
# PSFs and scatterers live on a grid this many times finer than the image's, in both axes: on the
# image grid itself, scatterers at pixel centres under-sample the PSF and shorten the speckle.
UPSAMPLE = 3
ANGLE_NODES = (-1.0, -0.5, 0.0, 0.5, 1.0)  # fractions of the half sector
AXIAL_PULSES = 5.0  # PSF half extent, in pulse lengths: keeps the diverging wave's edge-wave tails
LATERAL_BEAMS = 8.0  # and in beam widths: the first side lobes


@dataclass
class PSFTable:
    """PSFs (depths, angles, rows, cols) complex64, each of unit energy, and their nodes."""

    psfs: np.ndarray  # on the fine grid (UPSAMPLE times the image's sampling)
    depths: np.ndarray  # m
    angles: np.ndarray  # rad
    gain: np.ndarray | None = None  # per depth node: 1 / r.m.s. of the raw PSF (ideal TGC)
    upsample: int = UPSAMPLE

    def weights(self, nodes: np.ndarray, axis_values: np.ndarray) -> np.ndarray:
        """Linear interpolation weights (len(axis_values), len(nodes)), clamped at the ends."""
        w = np.zeros((len(axis_values), len(nodes)))
        pos = np.interp(axis_values, nodes, np.arange(len(nodes)))
        lo = np.floor(pos).astype(int).clip(0, len(nodes) - 1)
        hi = (lo + 1).clip(0, len(nodes) - 1)
        frac = pos - lo
        np.add.at(w, (np.arange(len(axis_values)), lo), 1 - frac)
        np.add.at(w, (np.arange(len(axis_values)), hi), frac)
        return w


def half_sizes(acq: Acquisition) -> tuple[int, int]:
    """PSF half extent in pixels: ±AXIAL_PULSES pulse lengths, ±LATERAL_BEAMS beam widths."""
    r, th = acq.axes()
    dr, dth = r[1] - r[0], th[1] - th[0]
    pulse = SOUND_SPEED / (acq.fc * acq.bandwidth / 100)
    beam = acq.wavelength / (acq.n_elements * acq.pitch)  # rad
    return int(np.ceil(AXIAL_PULSES * pulse / dr)), int(np.ceil(LATERAL_BEAMS * beam / dth))


def _patches(acq: Acquisition, depths, a: float, rows, cols, nt: int) -> np.ndarray:
    """Beamformed patches (len(depths), rows, cols) around point scatterers at ``depths`` along
    angle ``a``, simulated in one SIMUS run (per image line for a focused scan)."""
    xs, zs = depths * np.sin(a), depths * np.cos(a)
    rr = depths[:, None, None] + rows[None, :, None]
    tt = a + cols[None, None, :] + 0 * rr
    px, pz = rr * np.sin(tt), rr * np.cos(tt)
    if acq.transmit == "diverging":
        d = physics.tx_delays(acq)
        iq = physics.to_iq(acq, physics.channel_rf(acq, xs, zs, np.ones_like(xs), d, nt))
        return physics.beamform(physics.das_matrix(acq, nt, px, pz, d), iq, px.shape)
    out = np.zeros(px.shape, np.complex128)
    for c, dc in enumerate(cols):  # each line beamformed from its own focused transmit
        d = physics.tx_delays(acq, a + dc)
        iq = physics.to_iq(acq, physics.channel_rf(acq, xs, zs, np.ones_like(xs), d, nt))
        m = physics.das_matrix(acq, nt, px[:, :, c], pz[:, :, c], d)
        out[:, :, c] = physics.beamform(m, iq, px[:, :, c].shape)
    return out


def compute_psfs(acq: Acquisition) -> PSFTable:
    """PSFs at ``N_DEPTHS`` depths × ``ANGLE_NODES`` angles for one acquisition (SIMUS + DAS)."""
    r, th = acq.axes()
    dr, dth = r[1] - r[0], th[1] - th[0]
    ha, hl = half_sizes(acq)
    depths = np.linspace(r[0] + (ha + 2) * dr, r[-1] - (ha + 2) * dr, N_DEPTHS)
    angles = np.array(ANGLE_NODES) * acq.half_angle
    u = UPSAMPLE
    rows = np.arange(-ha * u, ha * u + 1) * dr / u
    cols = np.arange(-hl * u, hl * u + 1) * dth / u
    nt = physics.n_samples(acq)
    out = np.zeros((N_DEPTHS, len(angles), len(rows), len(cols)), np.complex64)
    # scatterers simulated together must lie further apart than a patch, or their echoes mix
    spacing = depths[1] - depths[0]
    n_groups = min(N_DEPTHS, int(np.ceil((2 * rows[-1] + 4 * dr) / spacing)))
    for j, a in enumerate(angles):
        for g in range(n_groups):
            k = np.arange(g, N_DEPTHS, n_groups)
            out[k, j] = _patches(acq, depths[k], a, rows, cols, nt)
    energy = np.sqrt(np.sum(np.abs(out) ** 2, axis=(2, 3), keepdims=True))
    psfs = (out / np.maximum(energy, 1e-30)).astype(np.complex64)
    gain = 1.0 / np.maximum(energy[:, len(angles) // 2, 0, 0], 1e-30)
    return PSFTable(psfs, depths, angles, gain)
