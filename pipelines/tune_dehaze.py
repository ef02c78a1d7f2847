"""Quality of dehazer settings on validation frames: one line per setting (gCNR, tissue levels).

    python pipelines/tune_dehaze.py --frames 8 "lam=2,kappa=2" "lam=3,kappa=3" "start_sigma=2"
    python pipelines/tune_dehaze.py --frames 8 "samples=2,steps=15" "method=bm3d"
    python pipelines/tune_dehaze.py --frames 8 --seeds 0,100,200 "" "steps=30"

With ``--seeds`` every setting runs once per sampler seed and the line gives the mean gain and
the spread over seeds: on 8 frames one seed's gain varies by about ±0.01–0.02, which is as large
as most differences between settings.

Each argument is comma-separated DehazeConfig keys over the defaults (configs/dehaze_default.yaml
values); frames are validation frames (seeds 5000+), never the test frames of
`usdehaze evaluate`. The settings of docs/results.md were chosen with this script.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from steps_sweep import VALIDATION_SEED0, run_setting  # the same frames and one way to score

from usdehaze.errors import UsageError
from usdehaze.ultrasound.dehaze import DehazeConfig
from usdehaze.ultrasound.evaluate import eval_set, score


def parse_setting(text: str) -> dict:
    """``"lam=2,steps=10"`` → typed DehazeConfig overrides."""
    types = {n: type(v) for n, v in DehazeConfig().flat().items()}
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
    ap.add_argument("--seeds", default=None, help="sampler seeds, comma-separated: 0,100,200")
    args = ap.parse_args()
    try:  # every setting checked before any frame is dehazed; a mistake exits with code 2
        settings = [(t, parse_setting(t)) for t in args.settings or [""]]
        for text, change in settings:  # values too: jacobian=bogus, steps=0
            replace(DehazeConfig(), **change).validate(text or "defaults")
    except (ValueError, UsageError) as exc:
        ap.error(str(exc))
    try:
        seed_list = [int(v) for v in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        ap.error(f"--seeds {args.seeds}: expected comma-separated integers")
    cases = eval_set(args.frames, seed0=VALIDATION_SEED0)
    base = score(cases, [c["input"] for c in cases])
    print(
        f"{args.frames} validation frames: input gCNR {base['gcnr']:.3f}, LV {base['lv_db']:.1f} dB"
    )
    for text, change in settings:
        cfg = replace(DehazeConfig(device="cpu", batch=args.frames), **change)
        seeds = seed_list or [cfg.seed]
        runs = [
            run_setting(cases, replace(cfg, seed=sd).validate(text or "defaults")) for sd in seeds
        ]
        gains = np.array([r["gcnr"] - base["gcnr"] for r in runs])
        # the figures (not the per-frame records, "frames"), averaged over the seeds
        mean = {
            k: float(np.mean([r[k] for r in runs])) for k in runs[0] if k not in ("nfe", "frames")
        }
        spread = f" ± {gains.std(ddof=1):.3f} over {len(seeds)} seeds" if len(seeds) > 1 else ""
        print(
            f"{text or 'defaults':40s} gCNR {mean['gcnr']:.3f} (gain {gains.mean():+.3f}{spread})  "
            f"NFE {runs[0]['nfe']}  myo {mean['myo_shift_db']:+.2f} dB  LV {mean['lv_db']:.1f} dB  "
            f"PSNR {mean['psnr']:.2f}  haze corr {mean['haze_corr']:.3f}  "
            f"{mean['s_per_frame']:.1f} s/frame",
            flush=True,
        )
        if len(seeds) > 1:
            print("    per seed: " + "  ".join(f"{sd}: {g:+.3f}" for sd, g in zip(seeds, gains)))


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
