"""Recipe: the fast dehazer, a one-pass student distilled from the joint sampler.

    python pipelines/distil_student.py [configs/student.yaml] [--stage teacher|train|export|all]
                                       [--wait-for N] [--ship]

1. teacher: the joint sampler (the shipped iq priors, or ``teacher.config.priors``) dehazes
   every whole frame of the corpus's training split (``teacher.crop: 0``; a crop size instead
   dehazes random crops, each scaled as its whole frame, but the sampler removes less haze from
   a crop than from the frame around it); cached per shard under
   ``out/teacher-<id>/``, where <id> names the teacher (prior checksums + settings), so a new
   teacher never mixes with an old one's outputs. ``--wait-for N`` keeps going until N shards
   are cached (for a corpus still being made). Resumable: cached shards are skipped.
2. train: the student regresses on (hazy frame, teacher output) pairs in random crops;
   resumable from ``out/train-<id>/checkpoint.pt``.
3. export: ``out/export/student_iq.safetensors`` + JSON with its provenance (teacher checksums
   and settings, corpus shards, steps) and the loss curve ``out/export/loss.png``. ``--ship``
   copies it into the package (usdehaze/weights/), which ``usdehaze run --method fast`` uses,
   and its loss curve to docs/img/loss_student.png.

A new teacher (retrained or adapted priors) means rerunning this one command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from usdehaze.config import read_pipeline_config

ROOT = Path(__file__).resolve().parents[1]


def _path(p: str) -> Path:
    p = Path(p)
    return p if p.is_absolute() else ROOT / p


def teacher_config(cfg: dict):
    from usdehaze.ultrasound.dehaze import DehazeConfig

    t = cfg.get("teacher", {})
    base = DehazeConfig.from_dict(dict(t.get("config", {})), "teacher.config")
    return replace(base, samples=int(t.get("samples", 1)), seed=int(t.get("seed", 0)))


def teacher_id(dehazer, crop: int, per_frame: int) -> tuple[str, dict]:
    """The teacher's identity: its prior checksums and every setting that shapes its output."""
    ident = {
        "checksums": dehazer.checksums,
        "config": {k: v for k, v in dehazer.cfg.flat().items() if k not in RUNTIME},
        "crop": crop,
        "crops_per_frame": per_frame,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12], ident


def crop_settings(cfg: dict) -> tuple[int, int, int]:
    """The teacher's crop size, crops per frame and rounds (configs/student.yaml)."""
    t = cfg.get("teacher", {})
    crop = int(t.get("crop", 0))
    per_frame = 1 if crop == 0 else int(t.get("crops_per_frame", 2))
    return crop, per_frame, int(t.get("rounds", 1))


RUNTIME = ("device", "batch", "channels_last", "compile", "cuda_graphs", "precision")


def crop_plan(shapes: list[tuple[int, int]], crop: int, per_frame: int, seed: int) -> np.ndarray:
    """(frame, row, col) of ``per_frame`` random crops of each frame (the same for a given seed);
    ``crop`` 0: each whole frame once."""
    if crop == 0:
        return np.array([(f, 0, 0) for f in range(len(shapes))], np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    rows = []
    for f, (nz, nx) in enumerate(shapes):
        for _ in range(per_frame):
            rows.append((f, rng.integers(0, nz - crop + 1), rng.integers(0, nx - crop + 1)))
    return np.array(rows, np.int64).reshape(-1, 3)


def cut(frames: np.ndarray, where: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (h, w) crops of ``frames`` at ``where`` (frame, row, col)."""
    h, w = size
    return np.stack([frames[f, r : r + h, c : c + w] for f, r, c in where])


def run_teacher(cfg: dict, wait_for: int | None) -> Path:
    """Teacher outputs on every whole training frame (``crop`` 0), or on random crops of them,
    each crop scaled as its whole frame (Dehazer.dehaze_iq ``within``). Whole frames are the
    default: on a validation frame the sampler took the cavity to -54 dB, on 96-px crops of the
    same frame only to -43 to -50 dB, and a student learns that weaker target."""
    from usdehaze.atomic import atomic_path
    from usdehaze.core.priors import sha256
    from usdehaze.ultrasound.corpus.store import read_shard, shards
    from usdehaze.ultrasound.dehaze import Dehazer

    crop, per_frame, rounds = crop_settings(cfg)  # rounds: more crops, same teacher
    dehazer = Dehazer(teacher_config(cfg))
    tid, ident = teacher_id(dehazer, crop, per_frame)
    folder = _path(cfg["out"]) / f"teacher-{tid}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "teacher.json").write_text(json.dumps(ident, indent=2))
    train = _path(cfg["corpus"]) / "train"
    last_new = time.time()

    def cache(p: Path, r: int) -> Path:
        return folder / (p.name if r == 0 else f"{p.stem}.r{r}.npz")

    while True:
        jobs = [(r, p) for r in range(rounds) for p in shards(train)]
        todo = [(r, p) for r, p in jobs if not cache(p, r).exists()]
        done = len(jobs) - len(todo)
        if not todo:
            if wait_for is None or done >= wait_for or time.time() - last_new > 1800:
                break
            time.sleep(20)
            continue
        r, p = todo[0]
        t0 = time.time()
        d = read_shard(p)
        hazy = d["tissue"] + d["haze"]
        index = int(p.stem.rsplit("_", 1)[-1]) if p.stem[-1].isdigit() else done
        seed = index + 100_000 * r
        where = crop_plan([hazy.shape[1:]] * len(hazy), crop, per_frame, seed=seed)
        size = hazy.shape[1:] if crop == 0 else (crop, crop)
        crops, whole = cut(hazy, where, size), hazy[where[:, 0]]
        tissue, haze = [], []
        for i in range(0, len(crops), dehazer.cfg.batch):
            sel = slice(i, i + dehazer.cfg.batch)
            ids = [1000 * seed + j for j in range(i, min(i + dehazer.cfg.batch, len(crops)))]
            out = dehazer.dehaze_iq(crops[sel], frames=ids, within=whole[sel])
            tissue.append(out["tissue"])
            haze.append(out["haze"])
        with atomic_path(cache(p, r)) as tmp:
            np.savez(
                tmp,
                where=where,
                tissue=np.concatenate(tissue).astype(np.float16),
                haze=np.concatenate(haze).astype(np.float16),
                shard_sha256=np.array(sha256(p)),
                nfe=np.array(dehazer.nfe),
            )
        last_new = time.time()
        print(
            f"teacher {tid}: {cache(p, r).name} ({len(crops)} crops of {size[0]}x{size[1]} px, "
            f"{time.time() - t0:.0f} s); {done + 1} of {len(jobs)} cached",
            flush=True,
        )
    print(f"teacher {tid}: {done} shard rounds cached in {folder}")
    return folder


def training_pairs(cfg: dict, folder: Path) -> tuple[list, list, list[str]]:
    from usdehaze.ultrasound import student
    from usdehaze.ultrasound.corpus.store import read_shard

    dr = teacher_config(cfg).dynamic_range
    xs, ys, names = [], [], []
    for cache in sorted(folder.glob("*.npz")):
        shard = _path(cfg["corpus"]) / "train" / f"{cache.name.split('.')[0]}.npz"
        d = read_shard(shard)
        hazy = d["tissue"] + d["haze"]
        with np.load(cache, allow_pickle=False) as t:
            where = t["where"]
            tissue, haze = t["tissue"].astype(np.float32), t["haze"].astype(np.float32)
        _, x = student.encode(cut(hazy, where, tissue.shape[-2:]), dr, within=hazy[where[:, 0]])
        y = student.targets(tissue, haze, dr)
        xs.extend(x)
        ys.extend(y)
        names.append(cache.name)
    if not xs:
        sys.exit(f"{folder}: no teacher outputs; run --stage teacher first")
    return xs, ys, names


def fit(
    xs: list, ys: list, names: list[str], dcfg, out: Path, what: str, weights: list | None = None
) -> Path:
    """Train (resuming) a student on (input, target) pairs into ``out``: the shards it learns
    from are recorded in ``out/data.json`` and a checkpoint made on other shards is refused;
    Ctrl-C stops after the step in progress (exit 130, the same command resumes). Also the
    B-mode recipe's (train_student_bmode.py)."""
    from usdehaze.core.resume import stop_after_step
    from usdehaze.core.student import Distiller

    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.json"
    if data.exists() and json.loads(data.read_text())["shards"] != names:
        sys.exit(f"{data}: the checkpoint was trained on other shards; remove {out} to start again")
    data.write_text(json.dumps({"shards": names, "frames": len(xs)}, indent=2))
    print(f"{what}: {len(xs)} frames from {len(names)} shards -> {out}", flush=True)
    d = Distiller(xs, ys, dcfg, out, weights=weights)

    class Flags:
        stop = hard_stop = False

    flags = Flags()
    with stop_after_step(flags):
        d.fit(log=lambda s: print(s, flush=True), stop=lambda: flags.stop)
    if flags.stop:
        print("stopped: rerun the same command to resume")
        sys.exit(130)
    return out


def trained(xs: list, ys: list, dcfg, out: Path):
    """The finished training in ``out`` (its checkpoint loaded), and its record for the
    student's JSON; exit when it has fewer steps than asked."""
    from usdehaze.core.student import Distiller

    d = Distiller(xs[:1], ys[:1], dcfg, out)  # loads the checkpoint
    if d.step < dcfg.steps:
        sys.exit(f"{out}: trained {d.step} of {dcfg.steps} steps; run --stage train first")
    return d, {
        "distil": asdict(dcfg),
        "steps": d.step,
        "train_seconds": round(d.seconds, 1),
        "final_loss": d.losses[-1][1] if d.losses else None,
        "losses": d.losses,
    }


def save(d, meta: dict, dest: Path, name: str, curve: str, ship: bool, what: str) -> Path:
    """The student as ``dest/NAME.safetensors`` + JSON and its loss curve; ``ship`` copies them
    into the package (usdehaze/weights/NAME.*, docs/img/CURVE)."""
    from usdehaze.core.student import parameter_bytes, save_student

    dest.mkdir(parents=True, exist_ok=True)
    path = save_student(dest / name, d.net.cpu().eval(), meta)
    _plot(d.losses, dest / "loss.png")
    print(f"{what}: {path} ({parameter_bytes(d.net) / 1e6:.2f} MB, {d.step} steps)")
    if ship:
        weights = ROOT / "usdehaze/weights"
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(path.with_suffix(suffix), weights / f"{name}{suffix}")
        shutil.copyfile(dest / "loss.png", ROOT / "docs/img" / curve)
        print(f"shipped to {weights} (loss curve: docs/img/{curve})")
    return path


def train(cfg: dict, folder: Path) -> Path:
    from usdehaze.core.student import DistilConfig

    xs, ys, names = training_pairs(cfg, folder)
    out = _path(cfg["out"]) / f"train-{folder.name.removeprefix('teacher-')}"
    return fit(xs, ys, names, DistilConfig(**cfg.get("distil", {})), out, "student")


def export(cfg: dict, folder: Path, ship: bool) -> Path:
    from usdehaze.core.priors import sha256
    from usdehaze.core.student import DistilConfig

    xs, ys, names = training_pairs(cfg, folder)
    out = _path(cfg["out"]) / f"train-{folder.name.removeprefix('teacher-')}"
    d, training = trained(xs, ys, DistilConfig(**cfg.get("distil", {})), out)
    teacher = json.loads((folder / "teacher.json").read_text())
    tcfg = teacher_config(cfg)
    meta = {
        "method": "fast",
        "dynamic_range": tcfg.dynamic_range,
        "teacher": {
            **teacher,
            "samples": tcfg.samples,
            "seed": tcfg.seed,
            "nfe_per_frame": int(np.load(folder / names[0])["nfe"]),
        },
        "corpus": {
            "path": cfg["corpus"],
            "split": "train",
            "teacher_crops": len(xs),
            "shards": {
                n: sha256(_path(cfg["corpus"]) / "train" / n)
                for n in sorted({f"{c.split('.')[0]}.npz" for c in names})
            },
        },
        **training,
    }
    return save(d, meta, _path(cfg["out"]) / "export", "student_iq", "loss_student.png", ship,
                "student")  # fmt: skip


def _plot(losses: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    if losses:
        s, v = zip(*losses)
        ax.plot(s, v)
    ax.set_xlabel("step")
    ax.set_ylabel("L1 to the teacher (unit dB scale)")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def recipe_arguments(doc: str, config: str, first: str, wait_for: bool) -> argparse.Namespace:
    """The command line of a student recipe (this one and train_student_bmode.py): its YAML,
    ``--stage`` (``first``, train, export or all), ``--wait-for`` where ``wait_for``, ``--ship``."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs" / config))
    ap.add_argument("--stage", choices=[first, "train", "export", "all"], default="all")
    if wait_for:
        ap.add_argument("--wait-for", type=int, default=None, help="teacher: wait for N shards")
    ap.add_argument("--ship", action="store_true", help="export: copy into usdehaze/weights")
    return ap.parse_args()


def train_and_export(args: argparse.Namespace, cfg: dict, folder: Path, train, export) -> int:
    """A student recipe's train and export stages (as ``--stage`` asks) on the pairs in
    ``folder``; the exit code."""
    if args.stage in ("train", "all"):
        train(cfg, folder)
    if args.stage in ("export", "all"):
        export(cfg, folder, args.ship)
    return 0


def main() -> int:
    args = recipe_arguments(__doc__, "student.yaml", "teacher", wait_for=True)
    cfg = read_pipeline_config(args.config, ("teacher", "distil"))  # twice or null: exit 2
    if args.stage in ("teacher", "all"):
        folder = run_teacher(cfg, args.wait_for)
    else:
        from usdehaze.ultrasound.dehaze import Dehazer

        crop, per_frame, _ = crop_settings(cfg)
        tid, _ = teacher_id(Dehazer(teacher_config(cfg)), crop, per_frame)
        folder = _path(cfg["out"]) / f"teacher-{tid}"
    return train_and_export(args, cfg, folder, train, export)


if __name__ == "__main__":
    from usdehaze.extras import run_script

    run_script(main)
