"""The rendered B-mode validation table: the bmode model's priors against the dB ones and baselines.

    python pipelines/eval_bmode.py [--corpus runs/corpus] [--limit N] [--steps 25]
        [--methods input,bmode,logsum,dps,bm3d] [--out runs/eval_bmode.json]
    python pipelines/eval_bmode.py --merge runs/a.json runs/b.json    # one table of several runs

The corpus's validation acquisitions (make them: ``python pipelines/make_corpus.py --only val``),
each frame with near-field clutter and rendered through a held-out display chain
(usdehaze.ultrasound.corpus.bmode.bmode_cases: 3×3 median filter and JPEG, never together in
training), read as a B-mode reader reads grey levels (linear display map, 60 dB), dehazed frame by
frame with ``Dehazer(...)(db)`` and scored by usdehaze.ultrasound.evaluate.score: haze removed,
gCNR, tissue kept (myocardium vs clean, against the tissue median), PSNR in the sector. Rows:
the hazy input, the clean truth, the B-mode student (``--method fast``), the joint method under the bmode model (its shipped priors),
under logsum (the dB priors: what issue 27 saw on real cines), DPS (the dB tissue prior alone)
and BM3D. Resumable: finished rows are kept in ``--out`` and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "bmode": "joint (B-mode priors)",
    "fast": "fast (B-mode student)",
    "logsum": "joint (logsum, dB priors)",
    "dps": "DPS, dB tissue prior",
    "bm3d": "BM3D",
}


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=ROOT / "runs/corpus")
    ap.add_argument("--limit", type=int, default=None, help="at most this many frames")
    ap.add_argument("--every", type=int, default=1, help="every k-th validation frame")
    ap.add_argument("--steps", type=int, default=25, help="sampler steps")
    ap.add_argument("--methods", default="input,fast,bmode,logsum,dps,bm3d")
    ap.add_argument("--student", default=None, help="the B-mode student (default: shipped)")
    ap.add_argument("--seed", type=int, default=0, help="draws the chains and clutter")
    ap.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="networks"
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=NUMBER",
        help="sampler settings (e.g. haze_init_db=-3)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs/eval_bmode.json")
    ap.add_argument(
        "--merge", type=Path, nargs="+", default=None, help="print the rows of these outputs"
    )
    args = ap.parse_args()
    if args.merge:  # rows made by several processes (one method each), one table
        from usdehaze.ultrasound.evaluate import markdown

        merged: dict = {}
        for p in args.merge:
            merged |= json.loads(p.read_text())["table"]
        print(markdown(merged))
        return 0

    import numpy as np

    from usdehaze.ultrasound.corpus.bmode import bmode_cases
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
    from usdehaze.ultrasound.evaluate import markdown, score

    val = args.corpus / "val"
    if not any(val.glob("*.npz")):
        print(f"{val}: no validation shards; python pipelines/make_corpus.py --only val")
        return 2
    cases = bmode_cases(val, seed=args.seed)[:: args.every][: args.limit]
    print(f"{len(cases)} validation frames", flush=True)
    table = json.loads(args.out.read_text())["table"] if args.out.is_file() else {}
    table["clean truth"] = score(cases, [c["clean"] for c in cases])
    changes = {k: float(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    base = DehazeConfig(device="cpu", steps=args.steps, precision=args.precision)
    base = replace(base, **changes)
    said = ", ".join(f"{k} {v:g}" for k, v in changes.items())
    for key in args.methods.split(","):
        if key == "input":
            table["hazy input"] = score(cases, [c["input"] for c in cases])
            continue
        name = ROWS[key] + (f", {said}" if said else "")
        if name in table:
            continue
        if key in ("bmode", "logsum"):
            cfg = replace(base, method="joint", model=key)
        elif key == "fast":
            cfg = replace(base, method="fast", model="bmode", student=args.student)
        else:
            cfg = replace(base, method=key)
        d = Dehazer(cfg)
        t0 = time.perf_counter()
        tissue, haze = [], []
        for k, c in enumerate(cases):
            out = d(c["input"][None].astype(np.float32), frames=[k])
            tissue.append(out["tissue"][0])
            haze.append(out["haze"][0])
            print(f"  {name}: frame {k + 1}/{len(cases)}", flush=True)
        table[name] = score(cases, tissue, haze, seconds=time.perf_counter() - t0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"frames": len(cases), "table": table}, indent=2))
    args.out.write_text(json.dumps({"frames": len(cases), "table": table}, indent=2))
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
