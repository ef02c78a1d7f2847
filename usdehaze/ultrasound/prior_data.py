"""Training images for the ultrasound priors: simulated tissue-only and haze-only dB frames.

Both are log-compressed against the *hazy* frame's maximum, the reference a dehazing run uses,
so the haze prior learns haze at its true level below tissue, and mapped to [-1, 1].
"""

from __future__ import annotations

import numpy as np

from usdehaze.ultrasound.logcomp import DEFAULT_DYNAMIC_RANGE, db_to_unit, envelope, to_db
from usdehaze.ultrasound.simulate import simulate_cardiac

# Seeds below this are reserved for evaluation and never used to train the shipped priors.
TRAIN_SEED_START = 10_000


def make_prior_data(
    n_scans: int,
    frames_per_scan: int = 3,
    seed_start: int = TRAIN_SEED_START,
    haze_db: tuple[float, float] = (-22.0, -4.0),
    dynamic_range: float = DEFAULT_DYNAMIC_RANGE,
) -> dict[str, np.ndarray]:
    """(tissue, haze) arrays (N, z, x) in [-1, 1] from ``n_scans`` simulated cardiac loops."""
    rng = np.random.default_rng(seed_start)
    tissue, haze = [], []
    for k in range(n_scans):
        sim = simulate_cardiac(
            frames_per_scan, seed=seed_start + k, haze_db=float(rng.uniform(*haze_db))
        )
        ref = envelope(sim.hazy_iq).reshape(frames_per_scan, -1).max(axis=1).reshape(-1, 1, 1)
        for iq, out in ((sim.tissue_iq, tissue), (sim.haze_iq, haze)):
            env = envelope(iq) / ref
            out.append(db_to_unit(to_db(env, dynamic_range, normalise=1.0), dynamic_range))
    return {"tissue": np.concatenate(tissue), "haze": np.concatenate(haze)}
