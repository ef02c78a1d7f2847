"""Recipe: the B-mode fast dehazer, a one-pass student trained on the corpus's truth.

    python pipelines/train_student_bmode.py [configs/student_bmode.yaml]
        [--stage render|train|export|all] [--ship]

1. render: every frame of the corpus's training split through ``renders`` randomised display
   chains with near-field clutter (usdehaze.ultrasound.corpus.bmode.render_sample), its hazy,
   tissue-only and haze-only grey levels in the unit range, cached per shard under
   ``out/pairs/`` (resumable: cached shards are skipped).
2. train: the student regresses (tissue, haze) on the hazy frame in random crops
   (usdehaze.core.student.Distiller); resumable from ``out/train/checkpoint.pt``. Ctrl-C saves.
3. export: ``out/export/student_bmode.safetensors`` + JSON (model bmode, corpus shards and their
   checksums, the chains' seed, training settings, the loss curve). ``--ship`` copies it into the
   package (usdehaze/weights/), which ``usdehaze run CINE --method fast`` uses.

Unlike the iq student this one has no teacher: the B-mode joint sampler removes almost no haze
(docs/results.md), while the corpus knows each frame's tissue-only and haze-only truth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from usdehaze.config import read_pipeline_config

ROOT = Path(__file__).resolve().parents[1]


def _path(p: str) -> Path:
    p = Path(p)
    return p if p.is_absolute() else ROOT / p


def render(cfg: dict) -> Path:
    """Cache each training shard's frames as (hazy, tissue, haze) unit grey levels."""
    from usdehaze.atomic import atomic_path
    from usdehaze.ultrasound.corpus.bmode import render_sample
    from usdehaze.ultrasound.corpus.display_chain import grey_to_unit
    from usdehaze.ultrasound.corpus.store import shard_samples

    shards = sorted((_path(cfg["corpus"]) / "train").glob("*.npz"))
    if not shards:
        sys.exit(f"{_path(cfg['corpus'])}/train: no shards; python pipelines/make_corpus.py")
    out = _path(cfg["out"]) / "pairs"
    out.mkdir(parents=True, exist_ok=True)
    for k, shard in enumerate(shards):
        dest = out / shard.name
        if dest.exists():
            continue
        rng = np.random.default_rng([int(cfg.get("seed", 0)), k])  # per shard: resumable
        frames: dict[str, list[np.ndarray]] = {"hazy": [], "tissue": [], "haze": []}
        for sample in shard_samples(shard):
            for _ in range(int(cfg.get("renders", 3))):
                b = render_sample(sample, rng, "train")
                for v in frames:
                    frames[v].append(grey_to_unit(b[v]).astype(np.float16))
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:  # frames differ in size between chains: one array each
                np.savez(f, **{f"{v}_{i}": a for v, fr in frames.items() for i, a in enumerate(fr)})
        print(f"[{k + 1}/{len(shards)}] {shard.name}: {len(frames['hazy'])} renders", flush=True)
    return out


def pairs(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(input (1, z, x), target (2, z, x)) float32 pairs of every cached shard, and the names."""
    xs, ys, names = [], [], []
    for cache in sorted(folder.glob("*.npz")):
        with np.load(cache, allow_pickle=False) as d:
            n = sum(1 for k in d.files if k.startswith("hazy_"))
            for i in range(n):
                xs.append(d[f"hazy_{i}"].astype(np.float32)[None])
                ys.append(np.stack([d[f"tissue_{i}"], d[f"haze_{i}"]]).astype(np.float32))
        names.append(cache.name)
    if not xs:
        sys.exit(f"{folder}: no rendered pairs; run --stage render first")
    return xs, ys, names


def _shared():
    """The student recipe's training and export steps (pipelines/distil_student.py)."""
    sys.path.insert(0, str(ROOT / "pipelines"))
    import distil_student

    return distil_student


def train(cfg: dict, folder: Path) -> Path:
    from usdehaze.core.student import DistilConfig

    xs, ys, names = pairs(folder)
    dcfg = DistilConfig(**cfg.get("distil", {}))
    return _shared().fit(xs, ys, names, dcfg, _path(cfg["out"]) / "train", "student (B-mode)")


def export(cfg: dict, folder: Path, ship: bool) -> Path:
    from usdehaze.core.priors import sha256
    from usdehaze.core.student import DistilConfig

    shared = _shared()
    xs, ys, names = pairs(folder)
    out = _path(cfg["out"]) / "train"
    d, training = shared.trained(xs, ys, DistilConfig(**cfg.get("distil", {})), out)
    corpus = _path(cfg["corpus"]) / "train"
    meta = {
        "method": "fast",
        "model": "bmode",
        "trained_on": "corpus truth (tissue-only and haze-only renderings), no teacher",
        "normalisation": {"domain": "bmode-db", "map": "grey/255*2-1", "range": [-1, 1]},
        "corpus": {
            "path": cfg["corpus"],
            "split": "train",
            "frames": len(xs),
            "renders_per_frame": int(cfg.get("renders", 3)),
            "seed": int(cfg.get("seed", 0)),
            "shards": {n: sha256(corpus / n) for n in names},
        },
        **training,
    }
    dest = _path(cfg["out"]) / "export"
    return shared.save(
        d, meta, dest, "student_bmode", "loss_student_bmode.png", ship, "student (B-mode)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs/student_bmode.yaml"))
    ap.add_argument("--stage", choices=["render", "train", "export", "all"], default="all")
    ap.add_argument("--ship", action="store_true", help="export: copy into usdehaze/weights")
    args = ap.parse_args()
    cfg = read_pipeline_config(args.config, ("distil",))  # twice or null: exit 2
    folder = _path(cfg["out"]) / "pairs"
    if args.stage in ("render", "all"):
        folder = render(cfg)
    if args.stage in ("train", "all"):
        train(cfg, folder)
    if args.stage in ("export", "all"):
        export(cfg, folder, args.ship)
    return 0


if __name__ == "__main__":
    sys.exit(main())
