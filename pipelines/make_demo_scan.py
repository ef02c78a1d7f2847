"""Regenerate the embedded demo scan (usdehaze/data/demo_scan.h5 + .roi.json).

    python pipelines/make_demo_scan.py            # about 5 min on 2 cores

A hazy apical view made by the physics-based corpus code (usdehaze.ultrasound.corpus) with its
P4-like validation acquisition (``VALIDATION[0]``: 2.72 MHz, 64 elements, one 60° diverging
wave, Hann receive apodisation), which the shipped priors never saw in training, and the
validation split's reverberation geometry. One anatomy, 4 frames with fresh speckle and haze
(haze -10 dB against the myocardium), seed 7 (the corpus draws from seeds 1 and 2 and the
adaptation check from 77). Ground-truth tissue and haze are stored as extra keys; the ROI pair is
a disc inside the left ventricle against an arc of its free wall, as ``usdehaze simulate``
draws it (usdehaze.ultrasound.simulate.cardiac_roi).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "usdehaze" / "data" / "demo_scan.h5"
SEED = 7
FRAMES = 4
HAZE_DB = -10.0


def main() -> None:
    from usdehaze.ultrasound.corpus.acquisition import SOUND_SPEED, VALIDATION
    from usdehaze.ultrasound.corpus.anatomy import draw_anatomy
    from usdehaze.ultrasound.corpus.sample import Scene, make_sample
    from usdehaze.ultrasound.simulate import cardiac_roi, write_simulated

    acq = VALIDATION[0]
    rng = np.random.default_rng(SEED)
    print(f"{acq.name}: building the scene (PSFs, DAS)", flush=True)
    scene = Scene.build(acq)
    anatomy = draw_anatomy(acq, rng)
    frames = []
    for k in range(FRAMES):
        frames.append(make_sample(scene, rng, HAZE_DB, split="val", anatomy=anatomy))
        print(f"frame {k + 1}/{FRAMES}", flush=True)
    tissue = np.stack([f["tissue"] for f in frames])
    haze = np.stack([f["haze"] for f in frames])
    p = dict(anatomy.params)
    p["lv_a"] *= p["contraction"]  # the ventricle as drawn (cardiac_roi keeps inside its blood)
    p["lv_b"] *= p["contraction"]
    x, z = acq.grid()
    r, th = acq.axes()
    params = {
        "recipe": "pipelines/make_demo_scan.py",
        "acquisition": acq.to_dict(),
        "seed": SEED,
        "haze_db": HAZE_DB,
        "split": "val",
        "anatomy": anatomy.params,
    }
    write_simulated(
        OUT,
        OUT.with_suffix(".roi.json"),
        tissue,
        haze,
        x,
        z,
        {"theta": th, "r": r, "origin": np.array([0.0, 0.0])},
        cardiac_roi(p),
        probe=acq.name,
        center_frequency=acq.fc,
        sound_speed=SOUND_SPEED,
        params=params,
    )
    print(OUT, OUT.stat().st_size // 1024, "KiB")
    print(OUT.with_suffix(".roi.json"))


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main, needs=["pymust"])  # the corpus code's SIMUS: the sim extra
