"""Recipe for the shipped ultrasound priors: simulate training data, then train tissue and haze.

    python pipelines/train_priors.py [--domain db|iq] [--scans 300] [--steps 6000] [--parallel]

``--domain db`` (log-compressed envelopes, the logsum/additive models): writes
runs/priors/data/{tissue,haze}.npz, trains with configs/prior_{tissue,haze}.yaml and exports
usdehaze/weights/{tissue,haze}.safetensors + .json. ``--domain iq`` (μ-law I/Q, the iq model):
the same with a ``_iq`` suffix on every name. Resumable: rerun the same command. Loss curves in
runs/priors/*/loss.png. On a 2-core CPU, --parallel trains both at once (1 thread each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scans", type=int, default=300, help="simulated loops (3 frames each)")
    ap.add_argument("--steps", type=int, default=None, help="override the configs' steps")
    ap.add_argument("--parallel", action="store_true", help="train both priors at once")
    ap.add_argument("--only", choices=["tissue", "haze"], default=None)
    ap.add_argument("--domain", choices=["db", "iq"], default="db", help="the priors' data domain")
    args = ap.parse_args()
    suffix = "" if args.domain == "db" else f"_{args.domain}"

    data_dir = ROOT / "runs/priors/data"
    if not (data_dir / f"haze{suffix}.npz").is_file():
        from usdehaze.ultrasound.prior_data import TRAIN_SEED_START, make_prior_data

        data_dir.mkdir(parents=True, exist_ok=True)
        arrays = make_prior_data(args.scans, domain=args.domain)
        for name, arr in arrays.items():
            np.savez(data_dir / f"{name}{suffix}.npz", images=arr)
        (data_dir / f"manifest{suffix}.json").write_text(
            json.dumps(
                {
                    "scans": args.scans,
                    "frames_per_scan": 3,
                    "seed_start": TRAIN_SEED_START,
                    "domain": args.domain,
                    "shape": list(arrays["tissue"].shape),
                },
                indent=2,
            )
        )
        print(f"training data: {arrays['tissue'].shape} frames -> {data_dir}")

    names = [args.only] if args.only else ["tissue", "haze"]
    procs = []
    for name in names:
        ckpt = ROOT / f"runs/priors/{name}{suffix}/checkpoint.pt"
        cmd = [
            sys.executable,
            "-m",
            "usdehaze",
            "train",
            str(ROOT / f"configs/prior_{name}{suffix}.yaml"),
            "--device",
            "cpu",
        ]
        if ckpt.is_file():
            cmd.append("--resume")
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        print("$", " ".join(cmd), flush=True)
        p = subprocess.Popen(cmd, cwd=ROOT)
        if args.parallel:
            procs.append(p)
        elif p.wait():
            sys.exit(p.returncode)
    for p in procs:
        if p.wait():
            sys.exit(p.returncode)


if __name__ == "__main__":
    main()
