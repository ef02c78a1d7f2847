"""Regenerate the embedded demo scan (usdehaze/data/demo_scan.h5 + .roi.json).

    python pipelines/make_demo_scan.py

A held-out simulated hazy cardiac loop (seed 7, never used for training), 4 frames of 256×128,
with ground-truth tissue and haze stored as extra keys.
"""

from pathlib import Path

from usdehaze.cli.simulate_cmd import write_simulation

OUT = Path(__file__).resolve().parents[1] / "usdehaze" / "data" / "demo_scan.h5"

if __name__ == "__main__":
    scan, roi = write_simulation(OUT, "cardiac", frames=4, seed=7, haze_db=-8.0)
    print(scan, scan.stat().st_size // 1024, "KiB")
    print(roi)
