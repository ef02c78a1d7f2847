"""Quality of dehazer settings on validation frames: one line per setting (gCNR, tissue levels).

    python pipelines/tune_dehaze.py --frames 8 "lam=2,kappa=2" "lam=3,kappa=3" "start_sigma=2"
    python pipelines/tune_dehaze.py --frames 8 "samples=2,steps=15" "method=bm3d"

Each argument is comma-separated DehazeConfig keys over the defaults (configs/dehaze_default.yaml
values); frames are validation frames (seeds 5000+), never the test frames of
`usdehaze evaluate`. The settings of docs/results.md were chosen with this script.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace

import numpy as np

from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.evaluate import eval_set, score

VALIDATION_SEED0 = 5000


def parse_setting(text: str) -> dict:
    """``"lam=2,steps=10"`` → typed DehazeConfig overrides."""
    types = {f.name: type(getattr(DehazeConfig(), f.name)) for f in fields(DehazeConfig)}
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"setting '{item}': unknown key '{key}'")
        kind = types[key]
        out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("settings", nargs="*", default=[""], help="key=value,... (empty: defaults)")
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    cases = eval_set(args.frames, seed0=VALIDATION_SEED0)
    iq = np.stack([c["iq"] for c in cases])
    base = score(cases, [c["input"] for c in cases])
    print(
        f"{args.frames} validation frames: input gCNR {base['gcnr']:.3f}, LV {base['lv_db']:.1f} dB"
    )
    for text in args.settings or [""]:
        cfg = replace(DehazeConfig(device="cpu", batch=args.frames), **parse_setting(text))
        t0 = time.perf_counter()
        out = Dehazer(cfg.validate(text or "defaults")).dehaze_iq(iq, frames=range(len(iq)))
        sec = (time.perf_counter() - t0) / len(iq)
        r = score(cases, list(out["tissue"]), list(out["haze"]))
        print(
            f"{text or 'defaults':40s} gCNR {r['gcnr']:.3f} (gain {r['gcnr'] - base['gcnr']:+.3f})  "
            f"myo {r['myo_shift_db']:+.2f} dB  LV {r['lv_db']:.1f} dB  PSNR {r['psnr']:.2f}  "
            f"haze corr {r['haze_corr']:.3f}  {sec:.1f} s/frame",
            flush=True,
        )


if __name__ == "__main__":
    main()
