"""Check the corpus's PSF model against full SIMUS on a homogeneous phantom (issue 14).

    python pipelines/check_speckle.py [--acquisition val_p4_diverging] [--scatterers 150000]

Prints, per depth band, the envelope's axial and lateral correlation lengths (pixels, FWHM of
the autocovariance) and its Rayleigh SNR (1.91 for fully developed speckle), both ways.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402


def main() -> None:
    from usdehaze.ultrasound.corpus.acquisition import VALIDATION
    from usdehaze.ultrasound.corpus.validate import compare

    names = {a.name: a for a in VALIDATION if a.transmit == "diverging"}
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--acquisition", choices=sorted(names), default="val_p4_diverging")
    ap.add_argument("--scatterers", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = compare(names[args.acquisition], args.scatterers, args.seed)
    print(
        "| band | axial SIMUS | axial model | error | lateral SIMUS | lateral model | error | Rayleigh SNR SIMUS / model |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['band']} | {r['simus_axial_px']:.2f} | {r['model_axial_px']:.2f} | {r['axial_error']:+.0%} "
            f"| {r['simus_lateral_px']:.2f} | {r['model_lateral_px']:.2f} | {r['lateral_error']:+.0%} "
            f"| {r['simus_rayleigh_snr']:.2f} / {r['model_rayleigh_snr']:.2f} |"
        )


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main, needs=["pymust"])  # SIMUS: the sim extra
