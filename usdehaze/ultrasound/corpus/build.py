"""Build a corpus split: one task per acquisition (PSFs, haze beamformer, then its samples),
written as one shard each. Tasks are independent and seeded, so workers may run them in any
order and a rerun skips the shards already there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usdehaze.ultrasound.corpus.acquisition import VALIDATION, Acquisition, draw_acquisition


@dataclass(frozen=True)
class Task:
    """One shard: an acquisition, its samples' haze levels and the seed that draws the rest."""

    split: str
    acquisition: dict
    haze_db: tuple[float, ...]
    seed: int

    @property
    def name(self) -> str:
        return self.acquisition["name"]


def plan(cfg: dict) -> list[Task]:
    """Every task of the corpus described by ``cfg`` (see configs/corpus.yaml)."""
    tasks = []
    tr = cfg["train"]
    rng = np.random.default_rng(tr["seed"])
    for k in range(tr["acquisitions"]):
        acq = draw_acquisition(rng, f"train_{k:04d}")
        levels = tuple(float(v) for v in rng.uniform(*tr["haze_db"], tr["samples_per_acquisition"]))
        tasks.append(Task("train", acq.to_dict(), levels, int(tr["seed"]) * 100_000 + k))
    va = cfg["val"]
    for k, acq in enumerate(VALIDATION):
        n, lv = va["samples_per_acquisition"], va["haze_db"]
        levels = tuple(float(lv[i % len(lv)]) for i in range(n))
        tasks.append(Task("val", acq.to_dict(), levels, int(va["seed"]) * 100_000 + k))
    return tasks


def run_task(task: Task, root: str | Path) -> Path:
    """Simulate one shard (skipped when it already exists); returns its path."""
    from usdehaze.ultrasound.corpus.sample import Scene, make_sample
    from usdehaze.ultrasound.corpus.store import write_shard

    path = Path(root) / task.split / f"{task.name}.npz"
    if path.exists():
        return path
    acq = Acquisition.from_dict(task.acquisition)
    scene = Scene.build(acq)
    rng = np.random.default_rng(task.seed)
    samples = [make_sample(scene, rng, lv, task.split) for lv in task.haze_db]
    write_shard(path, task.acquisition, samples)
    return path
