"""Recipe for the ultrasound priors: training tiles, then the tissue and haze priors.

    python pipelines/train_priors.py [--domain iq|db|bmode] [--steps N] [--parallel] [--only tissue|haze]

``--domain iq`` (μ-law I/Q, the default iq model): tiles of the physics-based corpus's training
split (make it first: ``python pipelines/make_corpus.py``), written to
runs/priors/data/{tissue,haze}_iq.npz with a manifest naming the corpus shards and their
sha256; trains with configs/prior_{tissue,haze}_iq.yaml. ``--domain db`` (log-compressed
envelopes, the logsum/additive models): frames of ``usdehaze simulate``'s simulator, as before.
``--domain bmode`` (exported B-mode, the bmode model): the corpus's training frames with
near-field clutter, rendered through one random display chain each
(usdehaze.ultrasound.corpus.bmode), tiles in runs/priors/data/{tissue,haze,hazy}_bmode.npz;
each prior is fine-tuned from the shipped dB prior of its role (``--init-from``, default
usdehaze/weights/{tissue,haze}.safetensors) for at most ``--minutes`` of training (or the
config's steps), always in parallel, one CPU thread each.
Priors are exported to runs/priors/export/, never over the shipped ones: replacing those is the
separate step ``python pipelines/ship_priors.py``. Resumable: rerun the same command. Loss
curves in runs/priors/*/loss.png. On a 2-core CPU, --parallel trains both at once (1 thread each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from usdehaze.ultrasound.logcomp import IQ_MULAW

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "runs/priors/data"


def corpus_tiles(corpus: Path, tile: int, per_frame: int, domain: str = "iq") -> None:
    """Cut the priors' training tiles of ``domain`` (iq: μ-law I/Q, bmode: exported B-mode)
    from the corpus's training split, with a manifest naming the shards and their sha256."""
    from usdehaze.core.domains import BMODE_DB
    from usdehaze.core.priors import sha256
    from usdehaze.ultrasound.corpus.store import prior_tiles, shards

    train = corpus / "train"
    files = shards(train)
    if not files:
        sys.exit(f"{train}: no corpus shards; make them first: python pipelines/make_corpus.py")
    extra = {}
    if domain == "bmode":
        from usdehaze.ultrasound.corpus.bmode import bmode_tiles

        arrays, extra["frames"] = bmode_tiles(train, tile=tile, per_frame=per_frame, seed=0)
    else:
        arrays = prior_tiles(train, tile=tile, per_frame=per_frame, seed=0)
    DATA.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.savez(DATA / f"{name}_{domain}.npz", images=arr)
    manifest = {
        "domain": BMODE_DB if domain == "bmode" else IQ_MULAW,
        "corpus": str(corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus),
        "tile": tile,
        "tiles_per_frame": per_frame,
        "shape": list(arrays["tissue"].shape),
        "shards": {p.name: sha256(p) for p in files},
        **extra,
    }
    (DATA / f"manifest_{domain}.json").write_text(json.dumps(manifest, indent=2))
    print(f"training tiles: {arrays['tissue'].shape} from {len(files)} shards -> {DATA}")


def finetune(config: Path, init_from: Path, minutes: float | None, steps: int | None) -> None:
    """Train one prior from ``init_from``'s weights (same network) for at most ``minutes`` of
    training time or the config's steps; resumes from its checkpoint; exports the EMA prior."""
    from usdehaze.config import read_yaml
    from usdehaze.core.priors import load_prior, sha256
    from usdehaze.core.training import Trainer, config_from_dict

    cfg = read_yaml(config)
    if steps:
        cfg["steps"] = steps
    tc = config_from_dict(cfg, str(config))
    base = load_prior(init_from)
    if base.meta["network"] != {**tc.network, "channels": 1}:
        sys.exit(f"{init_from}: network {base.meta['network']} differs from {config}'s")
    tr = Trainer(tc, "cpu", progress=False)
    if tr.load_checkpoint():
        print(f"{config.stem}: resuming at step {tr.step} ({tr.seconds:.0f} s)", flush=True)
    else:
        tr.init_weights(base.net.state_dict())
    budget = None if minutes is None else minutes * 60.0
    tc.export = {
        **tc.export,
        "training": {
            "base_prior": {
                "path": str(
                    init_from.relative_to(ROOT) if init_from.is_relative_to(ROOT) else init_from
                ),
                "sha256": sha256(init_from),
                "steps": base.meta.get("training", {}).get("steps"),
            },
            "budget_minutes": minutes,
        },
    }
    tr.fit(steps=tc.steps, seconds=budget, desc=config.stem)
    path = tr.export()
    print(
        f"{config.stem}: {tr.step} steps, {tr.seconds:.0f} s, loss {tr.losses[-1][1]:.4f} -> {path}"
    )


def simulator_frames(scans: int) -> None:
    """The dB priors' training frames from usdehaze simulate's simulator (once)."""
    from usdehaze.ultrasound.prior_data import TRAIN_SEED_START, make_prior_data

    DATA.mkdir(parents=True, exist_ok=True)
    arrays = make_prior_data(scans, domain="db")
    for name, arr in arrays.items():
        np.savez(DATA / f"{name}.npz", images=arr)
    (DATA / "manifest.json").write_text(
        json.dumps(
            {"scans": scans, "frames_per_scan": 3, "seed_start": TRAIN_SEED_START, "domain": "db"},
            indent=2,
        )
    )
    print(f"training data: {arrays['tissue'].shape} frames -> {DATA}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--domain", choices=["iq", "db", "bmode"], default="iq", help="the priors' data domain"
    )
    ap.add_argument("--corpus", type=Path, default=ROOT / "runs/corpus", help="iq: corpus folder")
    ap.add_argument("--tile", type=int, default=96, help="iq: tile size cut from corpus frames")
    ap.add_argument("--tiles-per-frame", type=int, default=12)
    ap.add_argument("--scans", type=int, default=300, help="db: simulated loops (3 frames each)")
    ap.add_argument("--steps", type=int, default=None, help="override the configs' steps")
    ap.add_argument("--parallel", action="store_true", help="train both priors at once")
    ap.add_argument("--only", choices=["tissue", "haze"], default=None)
    ap.add_argument("--minutes", type=float, default=None, help="bmode: training time per prior")
    ap.add_argument("--init-from", type=Path, default=None, help="bmode (with --only): base prior")
    args = ap.parse_args()
    suffix = "" if args.domain == "db" else f"_{args.domain}"

    if not (DATA / f"haze{suffix}.npz").is_file():
        if args.domain in ("iq", "bmode"):
            corpus_tiles(args.corpus.resolve(), args.tile, args.tiles_per_frame, args.domain)
        else:
            simulator_frames(args.scans)
    if args.domain == "bmode":
        train_bmode(args)
        return

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


def train_bmode(args: argparse.Namespace) -> None:
    """Fine-tune the B-mode priors: one process per prior (one thread each), side by side."""
    if args.only:
        init = args.init_from or ROOT / f"usdehaze/weights/{args.only}.safetensors"
        finetune(ROOT / f"configs/prior_{args.only}_bmode.yaml", init, args.minutes, args.steps)
        return
    procs = []
    for name in ("tissue", "haze"):
        cmd = [sys.executable, __file__, "--domain", "bmode", "--only", name]
        if args.minutes is not None:
            cmd += ["--minutes", str(args.minutes)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        print("$", " ".join(cmd), flush=True)
        procs.append(subprocess.Popen(cmd, cwd=ROOT))
    for p in procs:
        if p.wait():
            sys.exit(p.returncode)


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
