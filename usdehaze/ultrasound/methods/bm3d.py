"""``bm3d``: classical despeckling of the dB image (no prior; the bm3d package, baselines extra);
the haze is the power the despeckled image leaves over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.methods.base import Method, register_method
from usdehaze.ultrasound.models import haze_from_power


@dataclass(frozen=True)
class Bm3dParams:
    """Its noise level: the config's noise_sigma (σ on images scaled to [-1, 1]; BM3D runs at
    σ/2 on the [0, 1] scale), the single-prior baselines' σ_n and its default."""

    noise_sigma: float = 0.2


@register_method
class Bm3d(Method):
    name = "bm3d"
    summary = "classical despeckling, noise level --noise-sigma"
    row = "BM3D"
    extras = ("bm3d",)
    Params = Bm3dParams

    def run_db(self, d, db, seed, callback, frames):
        c = self.cfg
        tissue = despeckle(db, c.dynamic_range, c.noise_sigma)
        return {"tissue": tissue, "haze": haze_from_power(db, tissue, c.dynamic_range)}


def despeckle(db: np.ndarray, dynamic_range: float, sigma: float) -> np.ndarray:
    """BM3D of dB frames (n, z, x) on the [0, 1] scale at noise level σ/2."""
    try:
        import bm3d
    except ImportError:
        raise UsageError(
            "method 'bm3d' needs the bm3d package: pip install 'usdehaze[baselines]'"
        ) from None
    u = (db + dynamic_range) / dynamic_range  # [0, 1]
    out = np.stack([bm3d.bm3d(f, sigma_psd=sigma / 2) for f in u])
    return np.clip(out * dynamic_range - dynamic_range, -dynamic_range, 0).astype(np.float32)
