"""Training images for the ultrasound priors: simulated tissue-only and haze-only frames.

``domain=DB``: log-compressed envelopes (N, z, x) in [-1, 1]; ``domain=IQ_MULAW``: μ-law companded
I and Q channels (N, 2, z, x), the follow-up paper's (TMI 2024) representation. Both are scaled
by the *hazy* frame's reference, the one a dehazing run uses, so the haze prior learns haze at its
true level below tissue.
"""

from __future__ import annotations

import numpy as np

from usdehaze.ultrasound.logcomp import (
    DB,
    DEFAULT_DYNAMIC_RANGE,
    IQ_MULAW,
    db_to_unit,
    envelope,
    iq_reference,
    iq_to_mulaw,
    to_db,
)
from usdehaze.ultrasound.simulate import simulate_cardiac

# Seeds below this are reserved for evaluation and never used to train the shipped priors.
TRAIN_SEED_START = 10_000


def make_prior_data(
    n_scans: int,
    frames_per_scan: int = 3,
    seed_start: int = TRAIN_SEED_START,
    haze_db: tuple[float, float] = (-22.0, -4.0),
    dynamic_range: float = DEFAULT_DYNAMIC_RANGE,
    domain: str = DB,
) -> dict[str, np.ndarray]:
    """(tissue, haze) arrays in [-1, 1] from ``n_scans`` simulated cardiac loops: (N, z, x) dB
    images for ``domain=DB``, (N, 2, z, x) μ-law I/Q for ``domain=IQ_MULAW``."""
    if domain not in (DB, IQ_MULAW):
        raise ValueError(f"domain must be '{DB}' or '{IQ_MULAW}', got {domain!r}")
    rng = np.random.default_rng(seed_start)
    tissue, haze = [], []
    for k in range(n_scans):
        sim = simulate_cardiac(
            frames_per_scan, seed=seed_start + k, haze_db=float(rng.uniform(*haze_db))
        )
        if domain == IQ_MULAW:
            ref = iq_reference(sim.hazy_iq)
            tissue.append(iq_to_mulaw(sim.tissue_iq, ref))
            haze.append(iq_to_mulaw(sim.haze_iq, ref))
            continue
        ref = envelope(sim.hazy_iq).reshape(frames_per_scan, -1).max(axis=1).reshape(-1, 1, 1)
        for iq, out in ((sim.tissue_iq, tissue), (sim.haze_iq, haze)):
            env = envelope(iq) / ref
            out.append(db_to_unit(to_db(env, dynamic_range, normalise=1.0), dynamic_range))
    return {"tissue": np.concatenate(tissue), "haze": np.concatenate(haze)}
