"""Haze from the physics of clutter, simulated in the channel data and beamformed like tissue.

Multipath reverberation: the echoes of the chest wall bounce between the probe face (or a deeper
layer) and a strong interface, and come back again, later by the round trip across the gap each
time, weaker by the loss per bounce, and defocused: their wavefront still has the curvature of the
shallow source, and aberration in the layers adds per-element delay errors and smear. Off-axis
clutter: bright reflectors outside the sector (ribs, lung) leaking in through the side lobes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from usdehaze.ultrasound.corpus import physics
from usdehaze.ultrasound.corpus.acquisition import SOUND_SPEED, Acquisition

# Reverberation gaps (m) by split: validation uses gaps the training split never sees.
GAPS = {
    "train": {"face": (0.008, 0.021), "layers": (0.004, 0.008)},
    "val": {"face": (0.023, 0.029), "layers": (0.009, 0.012)},
}
SCATTERER_DENSITY = 6e6  # chest-wall scatterers per m² (6 per mm²)


def draw_haze_geometry(rng: np.random.Generator, split: str = "train") -> dict[str, Any]:
    """Random reverberation and off-axis clutter settings for ``split`` ("train" or "val")."""
    mode = str(rng.choice(["face", "layers"]))
    gap = float(rng.uniform(*GAPS[split][mode]))
    return {
        "mode": mode,
        "gap": gap,
        "chest_depth": float(rng.uniform(0.012, 0.030)) if mode == "layers" else gap,
        "bounces": int(rng.integers(2, 9)),
        "decay_db": float(rng.uniform(2.0, 10.0)),
        "jitter_s": float(rng.uniform(0.0, 0.15)) / 1e6,  # per-bounce aberration, r.m.s.
        "jitter_corr": float(rng.uniform(1.0, 8.0)),  # elements
        "smear": float(rng.uniform(0.0, 2.0)),  # elements, per bounce
        "n_offaxis": int(rng.integers(0, 16)),
        "offaxis_db": float(rng.uniform(-10.0, 10.0)),
    }


def _chest_wall(acq: Acquisition, depth: float, rng: np.random.Generator):
    """Scatterers of the chest wall down to ``depth``, wider than the sector, with a bright
    interface at ``depth``: positions (m) and reflection coefficients."""
    half = acq.half_angle + np.deg2rad(10)
    r0, r1 = acq.r_min * 0.5, depth + 0.003
    n = max(50, int(SCATTERER_DENSITY * half * (r1**2 - r0**2)))
    r = np.sqrt(rng.uniform(r0**2, r1**2, n))
    th = rng.uniform(-half, half, n)
    rc = rng.standard_normal(n)
    m = int(n * 0.15)  # the interface: a rough, bright line of scatterers
    r_if = depth + rng.normal(0, 0.0004, m)
    th_if = rng.uniform(-half, half, m)
    rc_if = 4.0 * (1 + 0.3 * rng.standard_normal(m))
    r, th, rc = np.r_[r, r_if], np.r_[th, th_if], np.r_[rc, rc_if]
    return r * np.sin(th), r * np.cos(th), rc


def haze_channels(
    acq: Acquisition, geom: dict[str, Any], rng: np.random.Generator, nt: int
) -> np.ndarray:
    """RF channel data (nt, elements) of the reverberation and off-axis clutter."""
    fs = physics.FS_PER_FC * acq.fc
    d = physics.haze_tx_delays(acq)
    x, z, rc = _chest_wall(acq, geom["chest_depth"], rng)
    # the chest wall's own echoes are tissue; only their delayed copies are haze
    direct = physics.channel_rf(acq, x, z, rc, d, nt)
    tau = 2 * geom["gap"] / SOUND_SPEED
    loss = 10 ** (-geom["decay_db"] / 20)
    total = np.zeros_like(direct)
    for m in range(1, geom["bounces"] + 1):
        jitter = gaussian_filter1d(rng.standard_normal(acq.n_elements), geom["jitter_corr"])
        jitter *= geom["jitter_s"] * np.sqrt(m) / (jitter.std() + 1e-12)
        copy = physics.delay_rf(direct, m * tau + jitter, fs)
        if geom["smear"] > 0:
            copy = gaussian_filter1d(copy, geom["smear"] * np.sqrt(m), axis=1, mode="nearest")
        total += loss**m * copy
    if geom["n_offaxis"]:
        k = geom["n_offaxis"]
        side = rng.choice([-1.0, 1.0], k)
        th = side * (acq.half_angle + np.deg2rad(rng.uniform(2, 30, k)))
        r = rng.uniform(0.015, 0.7 * acq.r_max, k)
        amp = 10 ** (geom["offaxis_db"] / 20) * 30 * (1 + 0.3 * rng.standard_normal(k))
        total += physics.channel_rf(acq, r * np.sin(th), r * np.cos(th), amp, d, nt)
    return total
