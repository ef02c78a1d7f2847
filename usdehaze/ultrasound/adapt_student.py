"""``usdehaze adapt --student``: refresh the fast dehazer for freshly adapted priors.

The adapted priors are the new teacher. Hazy frames come from the lab's own material: with
tissue-only and haze-only scans, each synthetic frame is a tissue frame plus a haze frame at a
random gain (in I/Q the two add exactly, the iq model's premise); hazy scans given with a haze
ROI are used as they are. The teacher dehazes them whole (it removes less haze from a crop than
from the frame around it), and the student is fine-tuned from the base one on random crops of
those pairs within a time budget.
Written to ``OUT/student_iq.safetensors``, which ``usdehaze run --method fast --priors OUT``
picks up; the checkpoint lies in ``OUT/checkpoints/student`` (a rerun resumes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.logcomp import mulaw_to_iq

HAZE_GAIN_DB = (-12.0, 0.0)  # extra gain on a haze-only frame added to a tissue frame


@dataclass
class StudentRefresh:
    """How to refresh the student (recorded in its JSON)."""

    minutes: float = 5.0  # teacher and fine-tuning together
    frames: int = 8  # whole frames the teacher dehazes (the sampler's share of the budget)
    crop: int = 96  # fine-tuning crops
    batch: int = 8
    lr: float = 3e-4
    seed: int = 0
    steps: int | None = None  # fine-tuning steps (None: until the time budget is spent)

    def validate(self) -> StudentRefresh:
        if not (np.isfinite(self.minutes) and self.minutes > 0):
            raise UsageError(f"--student-minutes {self.minutes}: expected a positive number")
        for name in ("frames", "crop", "batch"):
            if getattr(self, name) < 1:
                raise UsageError(
                    f"adapt: student {name} {getattr(self, name)}: expected at least 1"
                )
        return self


def hazy_frames(mats: dict[str, Any], crop: int, n: int, seed: int) -> list[np.ndarray]:
    """Up to ``n`` complex hazy frames from adapt's material (μ-law I/Q arrays): tissue + haze
    at a random gain for haze-only material, the frames themselves for hazy (ROI) material."""
    rng = np.random.default_rng(seed)
    haze = list(zip(mats["haze"].arrays, mats["haze"].masks))
    hazy = [mulaw_to_iq(a) for a, m in haze if m is not None]
    out = [f for arr in hazy for f in arr]
    tissue = [mulaw_to_iq(a) for a in mats["tissue"].arrays]
    only = [mulaw_to_iq(a) for a, m in haze if m is None]
    if tissue and only:
        t_all = [f for arr in tissue for f in arr]
        h_all = [f for arr in only for f in arr]
        for _ in range(max(n - len(out), 0)):
            t = t_all[rng.integers(len(t_all))]
            h = h_all[rng.integers(len(h_all))]
            nz, nx = min(t.shape[0], h.shape[0]), min(t.shape[1], h.shape[1])
            g = 10 ** (rng.uniform(*HAZE_GAIN_DB) / 20)
            out.append(t[:nz, :nx] + g * h[:nz, :nx])
    out = [f for f in out if min(f.shape) >= crop]
    rng.shuffle(out)
    return out[:n]


def refresh_student(
    out: Path,
    mats: dict[str, Any],
    settings: StudentRefresh,
    base_student: Path,
    device: Any,
    log: Callable[[str], None] = print,
) -> Path:
    """Teacher (the priors in ``out``) on whole hazy frames, then fine-tune ``base_student`` on
    crops of them for the rest of the budget; returns the written student's path."""
    from usdehaze.core.student import DistilConfig, Distiller, load_student, save_student
    from usdehaze.ultrasound import student as us_student
    from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer

    s = settings.validate()
    t0 = time.perf_counter()
    base = load_student(base_student)
    frames = hazy_frames(mats, s.crop, s.frames, s.seed)
    if not frames:
        raise UsageError(
            f"adapt --student: no hazy frame of at least {s.crop}x{s.crop} pixels could be made "
            "(give tissue-only and haze-only scans, or hazy scans with --haze-roi)"
        )
    teacher = Dehazer(DehazeConfig(priors=str(out), device=str(device)))
    dr = teacher.cfg.dynamic_range
    xs, ys = [], []
    for k, f in enumerate(frames):
        res = teacher.dehaze_iq(f[None], frames=[k])
        xs.append(us_student.encode(f[None], dr)[1][0])
        ys.append(us_student.targets(res["tissue"], res["haze"], dr)[0])
        log(f"student: teacher frame {k + 1}/{len(frames)} ({time.perf_counter() - t0:.0f} s)")
    budget = s.minutes * 60 - (time.perf_counter() - t0)
    cfg = DistilConfig(
        steps=s.steps or 10**6,
        batch=s.batch,
        crop=s.crop,
        lr=s.lr,
        seed=s.seed,
        checkpoint_every=50,
        network={
            k: v
            for k, v in asdict(base.net.arch).items()
            if k not in ("in_channels", "out_channels", "residual")
        },
    )
    d = Distiller(xs, ys, cfg, out / "checkpoints" / "student", device=device)
    if d.step == 0:
        d.net.load_state_dict(base.net.state_dict())
    start = time.perf_counter()
    if s.steps is None and budget <= 0:
        log("student: no time left for fine-tuning (raise --student-minutes)")
    else:
        d.fit(
            log=log,
            stop=lambda: s.steps is None and time.perf_counter() - start > budget,
        )
    meta = {
        "method": "fast",
        "dynamic_range": dr,
        "teacher": {"checksums": teacher.checksums, "source": "usdehaze adapt"},
        "base_student": {"path": str(base_student), "checksum": base.checksum},
        "refresh": {**asdict(s), "teacher_frames": len(xs)},
        "steps": d.step,
        "train_seconds": round(d.seconds, 1),
        "losses": d.losses,
    }
    path = save_student(out / "student_iq", d.net.cpu().eval(), meta)
    log(f"student: {path} ({d.step} fine-tuning steps, {time.perf_counter() - t0:.0f} s)")
    return path
