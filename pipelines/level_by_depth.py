"""Where a dehazer moves the tissue level: its dB error against the truth per depth band.

    python pipelines/level_by_depth.py runs/fullwave --frames 16
    python pipelines/level_by_depth.py runs/corpus/val --frames 16

``evaluate``'s tissue figure is the myocardium against the image's own tissue median, so a
result darkened all over scores 0 dB there; PSNR sees the shift but not where it lies. Here the
sector outside the cavity and the myocardium is cut into 8 depth bands and each gets the mean and
the r.m.s. of (result − truth) in dB (both clipped to the 60 dB range): on deep bands, where the
input's own error is near 0, a negative mean is tissue darkened where there was no haze to take
out. Rows: the input; ``refine`` (the default on I/Q) as the iq model decodes it (``--residual
split``, the default) and its sample as drawn (``keep``), from one run; the input less the haze
estimate ``y − h`` (all the residual to the tissue: exact data consistency); ``fast``. Also, per
band, how far refine's sample is from explaining the measurement, ‖y − x − h‖² / ‖y‖², and its
haze estimate's power ‖h‖² / ‖y‖².
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

BANDS = 8
DR = 60.0


@contextlib.contextmanager
def final_iq() -> Iterator[dict[str, np.ndarray]]:
    """While open, every decode of the iq data model also leaves the sampler's first tissue and
    haze sample as complex I/Q (as they add to the input) in the yielded dict."""
    from usdehaze.ultrasound.logcomp import mulaw_to_iq
    from usdehaze.ultrasound.models import DATA_MODELS

    cls = DATA_MODELS["iq"]
    original = cls.decode
    got: dict[str, np.ndarray] = {}

    def decode(self: Any, res: Any, m: Any) -> dict[str, np.ndarray]:
        scale = m.context["scale"]
        got["x"] = mulaw_to_iq(res.x_samples[:, 0].cpu().numpy(), scale)
        got["h"] = mulaw_to_iq(res.n_samples[:, 0].cpu().numpy(), scale) * self.cfg.gamma
        return original(self, res, m)

    cls.decode = decode
    try:
        yield got
    finally:
        cls.decode = original


def bands(case: dict[str, Any]) -> list[np.ndarray]:
    """The sector outside the cavity and the myocardium, cut into BANDS depth bands."""
    from usdehaze.ultrasound.evaluate import case_masks

    sector, _ = case_masks(case)
    rest = sector & ~np.asarray(case["target"], bool) & ~np.asarray(case["background"], bool)
    depth = rest.shape[0]
    out = []
    for j in range(BANDS):
        m = np.zeros_like(rest)
        m[j * depth // BANDS : (j + 1) * depth // BANDS] = True
        out.append(m & rest)
    return out


def errors(img: np.ndarray, case: dict[str, Any]) -> np.ndarray:
    """(BANDS, 2): mean and mean square of the dB error against the truth per band."""
    e = np.clip(img, -DR, 0) - np.clip(case["clean"], -DR, 0)
    return np.array([[e[m].mean(), (e[m] ** 2).mean()] for m in bands(case)])


def power_share(a: np.ndarray, y: np.ndarray, case: dict[str, Any]) -> np.ndarray:
    """‖a‖² / ‖y‖² per band, in dB."""
    return np.array(
        [
            10 * np.log10((np.abs(a[m]) ** 2).mean() / (np.abs(y[m]) ** 2).mean())
            for m in bands(case)
        ]
    )


def main() -> int:
    from usdehaze import metrics
    from usdehaze.ultrasound.corpus.store import cases as corpus_cases
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
    from usdehaze.ultrasound.logcomp import to_db

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folder", type=Path, help="corpus shards with truth (e.g. runs/fullwave)")
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    cases = corpus_cases(args.folder, limit=args.frames)
    names = ("input", "refine (split, default)", "refine, sample as drawn (keep)")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (*names, "input − haze (y − h)", "fast")}
    psnr: dict[str, list[float]] = {k: [] for k in rows}
    residual, haze = [], []
    refine = Dehazer(DehazeConfig(device="cpu", method="refine", seed=0))
    fast = Dehazer(DehazeConfig(device="cpu", method="fast", seed=0))
    for k, c in enumerate(cases):
        y = np.asarray(c["iq"])[None]
        with final_iq() as got:
            out = refine.dehaze_iq(y, frames=[k])
        x, h = got["x"][0], got["h"][0]
        ref = float(np.abs(y).max())
        imgs = {
            "input": c["input"],
            "refine (split, default)": out["tissue"][0],
            "refine, sample as drawn (keep)": to_db(x[None], DR, ref)[0],
            "input − haze (y − h)": to_db((y[0] - h)[None], DR, ref)[0],
            "fast": fast.dehaze_iq(y, frames=[k])["tissue"][0],
        }
        sector = np.asarray(c.get("sector", np.ones(np.shape(c["clean"]), bool)), bool)
        for name, img in imgs.items():
            rows[name].append(errors(img, c))
            psnr[name].append(metrics.psnr_in_mask(img, c["clean"], sector, DR))
        residual.append(power_share(y[0] - x - h, y[0], c))
        haze.append(power_share(h, y[0], c))
        print(f"\r{k + 1}/{len(cases)} frames", end="", flush=True)
    print(
        f"\n{args.folder}, {len(cases)} frames; bands: depth eighths of the sector outside the cavity and myocardium, shallow first\n"
    )
    print("| result | PSNR dB | mean error dB per band | r.m.s. error dB per band |")
    print("|---|---|---|---|")
    for name, e in rows.items():
        a = np.mean(e, axis=0)
        mean = " ".join(f"{v:+.1f}" for v in a[:, 0])
        rms = " ".join(f"{v:.1f}" for v in np.sqrt(a[:, 1]))
        print(f"| {name} | {np.mean(psnr[name]):.2f} | {mean} | {rms} |")
    print("\nrefine's final sample, per band (dB):")
    print("  ‖y − x − h‖² / ‖y‖²:", " ".join(f"{v:.1f}" for v in np.mean(residual, axis=0)))
    print("  ‖h‖² / ‖y‖²:        ", " ".join(f"{v:.1f}" for v in np.mean(haze, axis=0)))
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
