"""Recipe: independent validation scans from the full-wave solver (issue 28), as corpus shards.

    python pipelines/make_fullwave.py [--out runs/fullwave] [--frames 40] [--minutes 40]
    usdehaze evaluate --cases runs/fullwave

One shard per frame (``fw_<seed>.npz``, the corpus's format: tissue and haze I/Q, cavity,
myocardium and tissue masks, the acquisition and the frame's settings), written atomically: a
rerun skips the frames that exist, so a stopped build resumes. Stops starting new frames after
``--minutes``. Frames use seeds from ``--seed0`` on; each draws its heart, chest wall, probe face
and tissue echogenicity (``scatter``, log-uniform in --scatter) from its seed. Single-threaded
torch (``--threads``). See docs/fullwave.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def draw_scatter(seed: int, lo: float, hi: float) -> float:
    """The frame's tissue density fluctuation (r.m.s. at echogenicity 1), log-uniform."""
    rng = np.random.default_rng([seed, 7])
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs/fullwave")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=40.0, help="start no frame after this")
    ap.add_argument("--scatter", type=float, nargs=2, default=(0.02, 0.05), metavar=("LO", "HI"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from usdehaze.atomic import exit_signals
    from usdehaze.ultrasound.corpus.store import write_shard
    from usdehaze.ultrasound.fullwave.frame import make_frame
    from usdehaze.ultrasound.fullwave.scan import Setup

    torch.set_num_threads(args.threads)
    received = exit_signals()  # Ctrl-C / SIGTERM: the frame in progress is dropped, shards kept
    setup = Setup()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    acq = {**setup.acquisition().to_dict(), "fullwave": setup.to_dict()}
    seeds = [args.seed0 + k for k in range(args.frames)]
    todo = [s for s in seeds if not (out / f"fw_{s:05d}.npz").exists()]
    print(
        f"fullwave: {len(seeds) - len(todo)} of {len(seeds)} frames done, grid "
        f"{setup.grid.nz}x{setup.grid.nx}, {setup.nt} steps",
        flush=True,
    )
    t0 = time.time()
    try:
        for k, seed in enumerate(todo, 1):
            if time.time() - t0 > 60 * args.minutes:
                print(f"fullwave: {args.minutes:g} min used, stopping", flush=True)
                break
            sample = make_frame(setup, seed, draw_scatter(seed, *args.scatter))
            write_shard(out / f"fw_{seed:05d}.npz", acq, [sample])
            p = sample["params"]
            print(
                f"[{k}/{len(todo)}] fw_{seed:05d}  haze {p['haze_db']:+.1f} dB  "
                f"chest wall {1e3 * p['chest_wall_thickness']:.1f} mm  face "
                f"{p['face_reflection']:.2f}  {p['seconds']:.0f} s",
                flush=True,
            )
    except KeyboardInterrupt:
        print("fullwave: interrupted; the frames written are kept, a rerun resumes", flush=True)
        return 143 if received and received[-1] == 15 else 130
    finally:
        _manifest(out)
    return 0


def _manifest(out: Path) -> None:
    """manifest.json: every frame's seed, haze level, chest wall and seconds."""
    from usdehaze.atomic import atomic_path
    from usdehaze.ultrasound.corpus.store import read_shard, shards

    rows = []
    for p in shards(out):
        s = read_shard(p)["meta"]["samples"][0]
        rows.append(
            {
                "shard": p.name,
                "seed": s["seed"],
                "haze_db": round(s["haze_db"], 2),
                "scatter": round(s["scatter"], 4),
                "chest_wall_mm": round(1e3 * s["chest_wall_thickness"], 1),
                "face_reflection": s["face_reflection"],
                "seconds": round(s["seconds"], 1),
            }
        )
    with atomic_path(out / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps({"frames": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
