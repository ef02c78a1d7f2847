"""Recipe: the B-mode fast dehazer, a one-pass student trained on the corpus's truth.

    python pipelines/train_student_bmode.py [configs/student_bmode.yaml]
        [--stage render|train|export|all] [--ship]

1. render: every frame of the corpus's training split (its first ``shards``) through ``renders``
   randomised display chains with near-field clutter
   (usdehaze.ultrasound.corpus.bmode.render_sample), read at ``dynamic_range`` as a B-mode
   reader reads grey levels, as the student sees it: the hazy frame's context view
   (usdehaze.ultrasound.student.context_view: the whole imaged region as CONTEXT² cells of mean
   power), the tissue-only frame's view of the same cells and which cells are inside; cached
   per shard under ``out/pairs/`` (resumable: cached shards are skipped).
2. train: the student regresses the clean view on the hazy one, the L1 loss over the cells
   inside the region (usdehaze.core.student.Distiller with weights); resumable from
   ``out/train/checkpoint.pt``. Ctrl-C saves.
3. export: ``out/export/student_bmode.safetensors`` + JSON (model bmode, corpus shards and their
   checksums, the chains' seed, training settings, the loss curve). ``--ship`` copies it into the
   package (usdehaze/weights/), which ``usdehaze run CINE --method fast`` uses.

Unlike the iq student this one has no teacher: the B-mode joint sampler removes almost no haze
(docs/results.md), while the corpus knows each frame's tissue-only and haze-only truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from usdehaze.config import read_pipeline_config

ROOT = Path(__file__).resolve().parents[1]


def _path(p: str) -> Path:
    p = Path(p)
    return p if p.is_absolute() else ROOT / p


def render(cfg: dict) -> Path:
    """Cache each training shard's frames as the B-mode student sees them: the hazy frame's
    context view, the tissue-only frame's view of the same cells, and which cells are inside."""
    from usdehaze.atomic import atomic_path
    from usdehaze.ultrasound.corpus.bmode import render_sample
    from usdehaze.ultrasound.corpus.store import shard_samples
    from usdehaze.ultrasound.display import DisplayMap
    from usdehaze.ultrasound.student import CONTEXT, context_view, imaged

    shards = sorted((_path(cfg["corpus"]) / "train").glob("*.npz"))[: cfg.get("shards")]
    if not shards:
        sys.exit(f"{_path(cfg['corpus'])}/train: no shards; python pipelines/make_corpus.py")
    out = _path(cfg["out"]) / "pairs"
    out.mkdir(parents=True, exist_ok=True)
    dr = float(cfg.get("dynamic_range", 60.0))  # grey → dB as a B-mode reader reads it
    dmap = DisplayMap(dr)
    for k, shard in enumerate(shards):
        dest = out / shard.name
        if dest.exists():
            continue
        rng = np.random.default_rng([int(cfg.get("seed", 0)), k])  # per shard: resumable
        views: dict[str, list[np.ndarray]] = {"hazy": [], "tissue": [], "within": []}
        for sample in shard_samples(shard):
            for _ in range(int(cfg.get("renders", 3))):
                b = render_sample(sample, rng, "train")
                hazy = dmap.to_db(b["hazy"])
                inside = b["sector"] & imaged(hazy, dr)
                view, within = context_view(hazy, inside, dr, CONTEXT)
                views["hazy"].append(view)
                views["tissue"].append(context_view(dmap.to_db(b["tissue"]), inside, dr)[0])
                views["within"].append(within)
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{v: np.stack(a).astype(np.float32) for v, a in views.items()})
        print(f"[{k + 1}/{len(shards)}] {shard.name}: {len(views['hazy'])} renders", flush=True)
    return out


def pairs(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list]:
    """(view (1, n, n), clean view (1, n, n)) float32 pairs of every cached shard, the names
    and the cells' masks (the loss weights)."""
    xs, ys, ws, names = [], [], [], []
    for cache in sorted(folder.glob("*.npz")):
        with np.load(cache, allow_pickle=False) as d:
            if not {"hazy", "tissue", "within"} <= set(d.files):  # an older recipe's frames
                sys.exit(f"{cache}: not a cache of context views; remove {folder} and render again")
            xs += list(d["hazy"])
            ys += list(d["tissue"])
            ws += list(d["within"])
        names.append(cache.name)
    if not xs:
        sys.exit(f"{folder}: no rendered pairs; run --stage render first")
    return xs, ys, names, ws


def _shared():
    """The student recipe's training and export steps (pipelines/distil_student.py)."""
    sys.path.insert(0, str(ROOT / "pipelines"))
    import distil_student

    return distil_student


def train(cfg: dict, folder: Path) -> Path:
    from usdehaze.core.student import DistilConfig

    xs, ys, names, ws = pairs(folder)
    dcfg = DistilConfig(**cfg.get("distil", {}))
    out = _path(cfg["out"]) / "train"
    return _shared().fit(xs, ys, names, dcfg, out, "student (B-mode)", weights=ws)


def export(cfg: dict, folder: Path, ship: bool) -> Path:
    from usdehaze.core.priors import sha256
    from usdehaze.core.student import DistilConfig
    from usdehaze.ultrasound.student import CONTEXT

    shared = _shared()
    xs, ys, names, _ = pairs(folder)
    out = _path(cfg["out"]) / "train"
    d, training = shared.trained(xs, ys, DistilConfig(**cfg.get("distil", {})), out)
    corpus = _path(cfg["corpus"]) / "train"
    meta = {
        "method": "fast",
        "model": "bmode",
        "trained_on": "corpus truth (tissue-only renderings), no teacher",
        "input": {
            "view": "imaged region's bounding box as context x context cells of mean power",
            "context": CONTEXT,
            "map": "(dB + DR) / DR (grey/255), 0 outside",
        },
        "output": "the tissue-only view; gain = output - input (<= 0 dB) on every input pixel",
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
    shared = _shared()
    args = shared.recipe_arguments(__doc__, "student_bmode.yaml", "render", wait_for=False)
    cfg = read_pipeline_config(args.config, ("distil",))  # twice or null: exit 2
    folder = _path(cfg["out"]) / "pairs"
    if args.stage in ("render", "all"):
        folder = render(cfg)
    return shared.train_and_export(args, cfg, folder, train, export)


if __name__ == "__main__":
    sys.exit(main())
