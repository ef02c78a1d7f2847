"""One corpus sample: tissue-only and haze-only I/Q of the same scan, with masks and settings.

``hazy = tissue + haze`` exactly. The haze is scaled so that its mean power in the ventricle
cavity sits ``haze_db`` relative to the mean myocardium power, and both images carry the same
depth and lateral gain (a residual of imperfect TGC and element directivity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from usdehaze.ultrasound.corpus import physics
from usdehaze.ultrasound.corpus.acquisition import Acquisition
from usdehaze.ultrasound.corpus.anatomy import draw_anatomy
from usdehaze.ultrasound.corpus.haze import draw_haze_geometry, haze_channels
from usdehaze.ultrasound.corpus.psf import PSFTable
from usdehaze.ultrasound.corpus.render import render, speckle_field


@dataclass
class Scene:
    """What every sample of one acquisition shares: its PSFs and the haze beamformer."""

    acq: Acquisition
    psfs: PSFTable
    das: Any  # sparse DAS matrix of the full grid (diverging transmit)
    nt: int

    @classmethod
    def build(cls, acq: Acquisition) -> Scene:
        from usdehaze.ultrasound.corpus.psf import compute_psfs

        nt = physics.n_samples(acq, extra_depth=0.05)
        x, z = acq.grid()
        das = physics.das_matrix(acq, nt, x, z, physics.haze_tx_delays(acq))
        return cls(acq, compute_psfs(acq), das, nt)


def _gain(acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Smooth residual depth gain (±4 dB) times a lateral fall-off cos(θ)^p."""
    r, th = acq.axes()
    g = gaussian_filter1d(rng.standard_normal(len(r)), len(r) / 8, mode="nearest")
    g_db = 4.0 * g / (np.abs(g).max() + 1e-12) * rng.uniform(0, 1)
    lateral = np.cos(th) ** rng.uniform(0.0, 2.0)
    return (10 ** (g_db / 20))[:, None] * lateral[None, :]


def make_sample(
    scene: Scene,
    rng: np.random.Generator,
    haze_db: float,
    split: str = "train",
    anatomy: Any = None,
) -> dict[str, Any]:
    """Tissue and haze I/Q (complex64, the acquisition's grid), masks, and what was drawn.
    ``anatomy``: this view (corpus.anatomy.draw_anatomy) instead of a new one, as for the frames
    of one loop; speckle, haze, gain and demodulation are drawn anew either way."""
    acq, u = scene.acq, scene.psfs.upsample
    anat = draw_anatomy(acq, rng) if anatomy is None else anatomy
    field = speckle_field(rng, anat.amplitude, u)
    field[::u, ::u] += anat.specular
    tissue = render(acq, scene.psfs, field)
    geom = draw_haze_geometry(rng, split)
    # enough bounces that the reverberation reaches the ventricle, as in a hazy apical view
    reach = anat.params["lv_cz"] + 0.5 * anat.params["lv_b"] - geom["chest_depth"]
    geom["bounces"] = int(min(16, max(geom["bounces"], np.ceil(reach / geom["gap"]))))
    # at most 30 dB lost by the bounce that reaches the ventricle: haze there stays in view
    geom["decay_db"] = float(min(geom["decay_db"], 30.0 / max(1.0, reach / geom["gap"])))
    rf = haze_channels(acq, geom, rng, scene.nt)
    haze = physics.beamform(scene.das, physics.to_iq(acq, rf), acq.shape)
    p_t = np.mean(np.abs(tissue[anat.myocardium]) ** 2)
    p_h = np.mean(np.abs(haze[anat.cavity]) ** 2)
    haze = haze * np.sqrt(p_t / max(p_h, 1e-30) * 10 ** (haze_db / 10))
    gain = _gain(acq, rng)
    phase_ramp = _demodulation_offset(acq, rng)
    return {
        "tissue": (tissue * gain * phase_ramp).astype(np.complex64),
        "haze": (haze * gain * phase_ramp).astype(np.complex64),
        "cavity": anat.cavity,
        "myocardium": anat.myocardium,
        "tissue_mask": anat.tissue,
        "params": {"haze_db": haze_db, **anat.params, **{f"haze_{k}": v for k, v in geom.items()}},
    }


def _demodulation_offset(acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """A residual carrier along depth, exp(i·4π·Δf·r/c): scanners demodulate at frequencies a
    little off the echo's centre, so I/Q phase rotates with depth by a device-specific rate."""
    r, _ = acq.axes()
    df = rng.uniform(-0.08, 0.08) * acq.fc
    return np.exp(4j * np.pi * df * r / 1540.0)[:, None]
