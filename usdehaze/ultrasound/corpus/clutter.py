"""Diffuse near-field clutter: the haze of real apical cines that fills the apex.

The corpus haze (corpus/haze.py) is multipath reverberation, which comes back in bands. Real
cines also show a diffuse haze, brightest at the apex and fading with depth. Added here to a
sample's haze I/Q for the B-mode priors: envelope power P(r, θ) = P₀·exp(−(r − r_min)/L)·m(θ),
P₀ at ``level_db`` relative to the mean myocardium power, L of 20–60 mm, m a smooth lateral
modulation (±3 dB), carried by speckle of the acquisition's own texture: the sample's haze I/Q
flipped laterally and rolled in depth, divided by its local r.m.s. (unit power). Adding it in
I/Q makes the hazy frame's envelope power the sum of the three in expectation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d


@dataclass(frozen=True)
class NearFieldClutter:
    """One draw of the clutter: level at the apex, decay length, lateral modulation."""

    level_db: float  # mean power at r_min relative to the mean myocardium power
    decay_mm: float  # 1/e length of the power over depth
    lateral_db: float  # peak of the smooth lateral modulation
    roll: float  # depth roll of the speckle carrier, fraction of the grid

    @classmethod
    def draw(cls, rng: np.random.Generator, split: str = "train") -> NearFieldClutter:
        """Training: −24 to 0 dB, 20–60 mm; validation: −18 to −6 dB, 25–50 mm."""
        lo, hi = (-24.0, 0.0) if split == "train" else (-18.0, -6.0)
        length = (20.0, 60.0) if split == "train" else (25.0, 50.0)
        return cls(
            float(rng.uniform(lo, hi)),
            float(rng.uniform(*length)),
            float(rng.uniform(0.0, 3.0)),
            float(rng.uniform(0.2, 0.8)),
        )

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def power(self, r: np.ndarray, n_theta: int, rng: np.random.Generator) -> np.ndarray:
        """Relative power map (r, θ) of unit value at (r_min, θ₀): exponential decay in depth,
        smooth lateral modulation."""
        depth = np.exp(-(np.asarray(r) - float(np.min(r))) / (self.decay_mm * 1e-3))
        lat = gaussian_filter1d(rng.standard_normal(n_theta), n_theta / 6, mode="nearest")
        lat = self.lateral_db * lat / (np.abs(lat).max() + 1e-12)
        return depth[:, None] * (10 ** (lat / 10))[None, :]

    def iq(
        self,
        haze_iq: np.ndarray,
        r: np.ndarray,
        myocardium_power: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The clutter's complex I/Q (r, θ), to add to the haze (and so to the hazy frame)."""
        carrier = np.roll(haze_iq[:, ::-1], int(self.roll * haze_iq.shape[0]), axis=0)
        local = gaussian_filter(np.abs(carrier) ** 2, 6.0, mode="nearest")
        carrier = carrier / np.sqrt(np.maximum(local, 1e-30))
        p = self.power(r, haze_iq.shape[1], rng) * myocardium_power * 10 ** (self.level_db / 10)
        return (carrier * np.sqrt(p)).astype(np.complex64)
