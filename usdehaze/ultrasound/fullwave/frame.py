"""One full-wave frame as a corpus sample: tissue-only and haze-only I/Q with masks.

Three runs of the solver share the probe, the transmit and the grid: the hazy medium, the
tissue medium (the chest wall's impedance steps taken away, its scatterers kept) and the empty
medium (the background with the probe face: the incident field, the same for every frame with
that face, cached). Echo channels are each run minus the empty one, muted until the transmit
has passed along the array (``scan.mute``); after I/Q and DAS,
``haze = hazy − tissue``. The sample is the shape ``corpus.store.write_shard`` writes, so
``usdehaze evaluate --cases`` scores a folder of them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from usdehaze.ultrasound.fullwave.phantom import draw_phantom, empty_medium
from usdehaze.ultrasound.fullwave.scan import Setup, channels, das, mute, to_iq

_INCIDENT: dict[tuple, np.ndarray] = {}


def incident(setup: Setup, face: float) -> np.ndarray:
    """Channels (nt, elements) of the empty medium with this probe face (cached per setup)."""
    key = (setup, face)
    if key not in _INCIDENT:
        _INCIDENT[key] = channels(setup, empty_medium(setup, face)[None])[0]
    return _INCIDENT[key]


def haze_level_db(tissue: np.ndarray, haze: np.ndarray, cavity, myocardium) -> float:
    """Mean haze power in the cavity relative to the mean tissue power in the myocardium (dB),
    the corpus's ``haze_db``."""
    p_h = float(np.mean(np.abs(haze[cavity]) ** 2))
    p_t = float(np.mean(np.abs(tissue[myocardium]) ** 2))
    return 10 * np.log10(max(p_h, 1e-30) / max(p_t, 1e-30))


def make_frame(setup: Setup, seed: int, scatter: float) -> dict[str, Any]:
    """Tissue and haze I/Q (complex64, scaled so that max |hazy| = 1), masks and settings of
    the frame drawn from ``seed``."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    ph = draw_phantom(setup, rng, scatter=scatter)
    rho = np.stack([ph.rho_hazy, ph.rho_tissue])
    rf = channels(setup, rho) - incident(setup, ph.face)[None]
    rf = rf * mute(setup, rf.shape[1])[None]
    hazy, tissue = das(setup, to_iq(setup, rf))
    haze = hazy - tissue
    scale = 1.0 / float(np.abs(hazy).max())
    tissue, haze = tissue * scale, haze * scale
    params = {
        "seed": seed,
        "haze_db": haze_level_db(tissue, haze, ph.cavity, ph.myocardium),
        "seconds": time.perf_counter() - t0,
        **ph.params,
    }
    return {
        "tissue": tissue.astype(np.complex64),
        "haze": haze.astype(np.complex64),
        "cavity": ph.cavity,
        "myocardium": ph.myocardium,
        "tissue_mask": ph.tissue,
        "params": params,
    }
