"""pipelines/train_student_bmode.py end to end on a tiny corpus: rendered context views cached per
shard, a training weighted to the cells inside, and an exported student that the fast method loads and
runs on B-mode frames (recording what it was trained on)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from usdehaze.ultrasound import student as us_student
from usdehaze.ultrasound.corpus.acquisition import VALIDATION
from usdehaze.ultrasound.corpus.build import Task, run_task

ROOT = Path(__file__).resolve().parents[1]


def _recipe(config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "pipelines/train_student_bmode.py"), str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_recipe_renders_views_trains_on_cells_inside_and_exports_a_working_student(tmp_path):
    corpus = tmp_path / "corpus"
    acq = {**VALIDATION[0].to_dict(), "name": "train_0000"}
    run_task(Task("train", acq, (-12.0, -6.0), seed=7), corpus)
    cfg = {
        "corpus": str(corpus), "out": str(tmp_path / "run"), "shards": 1, "renders": 2,
        "dynamic_range": 60, "seed": 0,
        "distil": {"steps": 3, "batch": 2, "crop": 128, "lr": 1e-3, "flip": True, "seed": 0,
                   "checkpoint_every": 1, "loss": "l1",
                   "network": {"width": 4, "levels": 2, "depth": 1}},
    }  # fmt: skip
    config = tmp_path / "student_bmode.yaml"
    config.write_text(yaml.safe_dump(cfg))
    done = _recipe(config, "--stage", "render")
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "run/pairs/train_0000.npz") as d:
        views, clean, within = d["hazy"], d["tissue"], d["within"]
    n = 2 * 2  # samples × renders
    assert (
        views.shape == clean.shape == within.shape == (n, 1, us_student.CONTEXT, us_student.CONTEXT)
    )
    inside = within > 0
    assert 0.2 < inside.mean() < 1.0 and np.all(views[~inside] == 0)
    assert np.median(clean[inside]) <= np.median(views[inside])  # haze only adds power
    done = _recipe(config, "--stage", "all")  # render skips the cached shard
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "run/export/student_bmode.json").read_text())
    assert meta["model"] == "bmode" and meta["steps"] == 3
    assert meta["corpus"]["frames"] == n and meta["input"]["context"] == us_student.CONTEXT
    s = us_student.load(tmp_path / "run/export/student_bmode.safetensors", "cpu", 45.0, "bmode")
    db = np.full((1, 80, 64), -45.0, np.float32)
    db[:, 10:70, 8:56] = np.random.default_rng(0).uniform(-40, -5, (60, 48))
    out = us_student.run_db(s, db, 45.0, "cpu", "fp32")
    assert np.all(out["tissue"] <= db + 1e-5) and np.all(out["tissue"][:, :10] == db[:, :10])
