"""Recipe: the physics-based training and validation corpus of the ultrasound priors.

    python pipelines/make_corpus.py [configs/corpus.yaml] [--only train|val] [--limit N]

One shard per acquisition under ``out`` (train/ and val/), simulated in worker processes with
single-threaded BLAS (pymust's small mat-vecs run ~40x slower multi-threaded on 2 cores).
Resumable: a rerun skips the shards already written. Needs the ``sim`` extra (pymust).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads BLAS, in every worker
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

from usdehaze.config import read_pipeline_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs/corpus.yaml"))
    ap.add_argument("--only", choices=["train", "val"], default=None)
    ap.add_argument("--limit", type=int, default=None, help="at most this many shards")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()

    from usdehaze.ultrasound.corpus.build import plan, run_task

    cfg = read_pipeline_config(args.config, ("train", "val"))  # twice or null: exit 2
    root = Path(cfg["out"])
    if not root.is_absolute():
        root = ROOT / root
    tasks = [t for t in plan(cfg) if args.only in (None, t.split)]
    # validation first: it is small and everything downstream evaluates on it
    tasks.sort(key=lambda t: t.split != "val")
    todo = [t for t in tasks if not (root / t.split / f"{t.name}.npz").exists()]
    done = len(tasks) - len(todo)
    if args.limit is not None:
        todo = todo[: args.limit]
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"config": cfg}, indent=2))
    print(f"corpus: {done} of {len(tasks)} shards done, {len(todo)} to make now")
    t0 = time.time()
    workers = args.workers or int(cfg.get("workers", 2))
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(run_task, t, root): t for t in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            path = fut.result()
            el = time.time() - t0
            eta = el / k * (len(todo) - k)
            print(
                f"[{k}/{len(todo)}] {path.relative_to(root)}  {el:.0f} s, ETA {eta:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main, needs=["pymust"])  # SIMUS: the sim extra
