"""Quality of dehazer settings on validation frames: one line per setting (gCNR, tissue levels).

    python pipelines/tune_dehaze.py --frames 8 "lam=2,kappa=2" "lam=3,kappa=3" "start_sigma=2"
    python pipelines/tune_dehaze.py --frames 8 "samples=2,steps=15" "method=bm3d"

Each argument is comma-separated DehazeConfig keys over the defaults (configs/dehaze_default.yaml
values); frames are validation frames (seeds 5000+), never the test frames of
`usdehaze evaluate`. The settings of docs/results.md were chosen with this script.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

from steps_sweep import VALIDATION_SEED0, run_setting  # the same frames and one way to score

from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.evaluate import eval_set, score


def parse_setting(text: str) -> dict:
    """``"lam=2,steps=10"`` → typed DehazeConfig overrides."""
    types = {f.name: type(getattr(DehazeConfig(), f.name)) for f in fields(DehazeConfig)}
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise ValueError(f"setting '{item}': unknown key '{key}'")
        kind = types[key]
        try:
            out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            raise ValueError(f"setting '{item}': expected a {kind.__name__}") from None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("settings", nargs="*", default=[""], help="key=value,... (empty: defaults)")
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    try:  # every setting checked before any frame is dehazed; a mistake exits with code 2
        settings = [(t, parse_setting(t)) for t in args.settings or [""]]
    except ValueError as exc:
        ap.error(str(exc))
    cases = eval_set(args.frames, seed0=VALIDATION_SEED0)
    base = score(cases, [c["input"] for c in cases])
    print(
        f"{args.frames} validation frames: input gCNR {base['gcnr']:.3f}, LV {base['lv_db']:.1f} dB"
    )
    for text, change in settings:
        cfg = replace(DehazeConfig(device="cpu", batch=args.frames), **change)
        r = run_setting(cases, cfg.validate(text or "defaults"))
        print(
            f"{text or 'defaults':40s} gCNR {r['gcnr']:.3f} (gain {r['gcnr'] - base['gcnr']:+.3f})  "
            f"myo {r['myo_shift_db']:+.2f} dB  LV {r['lv_db']:.1f} dB  PSNR {r['psnr']:.2f}  "
            f"haze corr {r['haze_corr']:.3f}  {r['s_per_frame']:.1f} s/frame",
            flush=True,
        )


if __name__ == "__main__":
    main()
