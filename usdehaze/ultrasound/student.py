"""The fast dehazer: a one-pass student per data model (``--method fast``).

What a student sees and returns, in one place. ``iq`` (distilled from the joint sampler,
``pipelines/distil_student.py``): in, the hazy frame's log envelope (dB scaled to [-1, 1], the
residual baseline) and its μ-law I/Q; out, the teacher's tissue and haze in the same dB scale.
``bmode`` (trained on the corpus's truth rendered through display chains,
``pipelines/train_student_bmode.py``): it sees the whole imaged region at once, as the mean power
of CONTEXT × CONTEXT cells in dB over the run's dynamic range (so a dim cavity is told from dim
tissue by what surrounds it), and returns the tissue-only rendering's cells; the difference is a
smooth dB gain (never above 0) applied to every input pixel, so speckle and resolution are the
input's own. The network itself is ``usdehaze.core.student``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usdehaze.errors import UsageError
from usdehaze.ultrasound.logcomp import (
    db_to_unit,
    iq_reference,
    iq_to_mulaw,
    reference,
    to_db,
    unit_to_db,
)

STUDENT_FILE = "student_iq.safetensors"
IN_CHANNELS = 3  # dB (unit scale), μ-law I, μ-law Q
OUT_CHANNELS = 2  # tissue, haze (dB, unit scale)
TARGETS = ("tissue", "haze")


@dataclass(frozen=True)
class StudentKind:
    """A data model's student: its file name and channels, and whether its unit scale is tied
    to the dynamic range it was made at (iq: dB over that range) or is the run's own (bmode:
    grey levels, whatever range the display map says)."""

    model: str
    file: str
    in_channels: int
    out_channels: int
    fixed_range: bool


KINDS = {
    "iq": StudentKind("iq", STUDENT_FILE, IN_CHANNELS, OUT_CHANNELS, fixed_range=True),
    "bmode": StudentKind("bmode", "student_bmode.safetensors", 1, 1, fixed_range=False),
}
CONTEXT = 128  # the B-mode student's view: the imaged region's bounding box as CONTEXT² cells


def kind(model: str) -> StudentKind:
    """The student of data model ``model`` (UsageError naming the models that have one)."""
    if model not in KINDS:
        raise UsageError(
            f"model '{model}': method fast has students for {' and '.join(KINDS)} only"
        )
    return KINDS[model]


def encode(
    iq: np.ndarray, dynamic_range: float, within: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Complex frames (n, z, x) → the input dB (n, z, x) and the student's input (n, 3, z, x);
    crops are scaled as the whole frames ``within`` they were cut from (as the sampler does)."""
    whole = iq if within is None else within
    db = to_db(iq, dynamic_range, normalise=reference(np.abs(whole), "frame"))
    mulaw = iq_to_mulaw(iq, iq_reference(whole))
    x = np.concatenate([db_to_unit(db, dynamic_range)[:, None], mulaw], axis=1)
    return db, x.astype(np.float32)


def targets(tissue_db: np.ndarray, haze_db: np.ndarray, dynamic_range: float) -> np.ndarray:
    """The teacher's tissue and haze in dB (n, z, x) → regression targets (n, 2, z, x)."""
    return np.stack(
        [db_to_unit(tissue_db, dynamic_range), db_to_unit(haze_db, dynamic_range)], axis=1
    ).astype(np.float32)


def decode(out: np.ndarray, dynamic_range: float) -> dict[str, np.ndarray]:
    """The student's output (n, 2, z, x) → tissue and haze dB images in [-DR, 0]."""
    return {
        name: np.clip(unit_to_db(out[:, k], dynamic_range), -dynamic_range, 0).astype(np.float32)
        for k, name in enumerate(TARGETS)
    }


def student_path(priors: str | Path | None, student: str | Path | None, model: str = "iq") -> Path:
    """The student a run uses: ``student`` when given, else the priors folder's (``usdehaze
    adapt --student`` writes one beside the adapted priors), else the shipped one of the
    data model ``model``."""
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    file = kind(model).file
    if student:
        return Path(student)
    if priors and (Path(priors) / file).is_file():
        return Path(priors) / file
    return WEIGHTS_DIR / file


def range_problem(path: Path, meta: Any, dynamic_range: float, fixed: bool = True) -> str | None:
    """Why a student whose JSON holds ``meta`` cannot run at ``dynamic_range`` (its
    ``dynamic_range`` is not a number, or, where its scale is ``fixed`` to the range it was
    distilled at as an iq student's is, another than the run's), or None when it can: the one
    judgement of runs_at and load."""
    dr = meta.get("dynamic_range") if isinstance(meta, dict) else None
    if dr is None:
        return None
    if isinstance(dr, bool) or not isinstance(dr, (int, float)):
        return (
            f"{Path(path).with_suffix('.json')}: key 'dynamic_range': expected a number in dB, "
            f"got {dr!r}"
        )
    if fixed and float(dr) != float(dynamic_range):
        return (
            f"{path}: student distilled with dynamic_range {dr} dB, run uses {dynamic_range} "
            f"(use --dynamic-range {dr})"
        )
    return None


def runs_at(path: Path, dynamic_range: float) -> bool:
    """Whether the student at ``path`` is there and runs at ``dynamic_range`` (range_problem),
    read from its JSON without loading the network."""
    from usdehaze.jsonio import read_json
    from usdehaze.limits import MAX_PRIOR_JSON_BYTES

    try:
        meta = read_json(Path(path).with_suffix(".json"), "student JSON", MAX_PRIOR_JSON_BYTES)
    except UsageError:
        return False
    return range_problem(path, meta, dynamic_range) is None


def load(path: Path, device: Any, dynamic_range: float, model: str = "iq"):
    """Load a student and check it was made for this data model's representation (and, where
    its scale is tied to one, this dynamic range)."""
    from usdehaze.core.student import load_student

    k = kind(model)
    s = load_student(path, device)
    arch = s.net.arch
    made_for = s.meta.get("model", "iq")
    if made_for != k.model:
        raise UsageError(
            f"{path}: key 'model': a student for model '{made_for}', this run reads model "
            f"'{k.model}'"
        )
    if (arch.in_channels, arch.out_channels) != (k.in_channels, k.out_channels):
        raise UsageError(
            f"{path}: key 'network': {arch.in_channels} in / {arch.out_channels} out channels, "
            f"the fast dehazer on model {k.model} needs {k.in_channels} / {k.out_channels}"
        )
    problem = range_problem(path, s.meta, dynamic_range, fixed=k.fixed_range)
    if problem is not None:
        raise UsageError(problem)
    return s


def _forward(student, x: np.ndarray, device: Any, precision: str) -> np.ndarray:
    """The student on (n, c, z, x) inputs at the run's precision → its outputs as float32.

    On CPU each frame goes through alone on one torch thread, torch's threads taking frames
    at once (usdehaze.core.device.each_alone): a frame's result is then the same bit for bit
    whatever its batch and the thread count (issue 31 item 12; batched, they moved it by up
    to 2e-5 dB, and refine's sampler steps after it by up to 2e-3 dB)."""
    import torch

    from usdehaze.core.device import each_alone

    xt = torch.from_numpy(x).to(device)
    low = precision in ("bf16", "fp16")
    if low and xt.device.type == "cpu":
        student = student.channels_last()
        xt = xt.contiguous(memory_format=torch.channels_last)

    def one(part) -> torch.Tensor:  # autocast is per thread: entered in each item's own
        if low:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            with torch.autocast(device_type=xt.device.type, dtype=dtype):
                return student(part)
        return student(part)

    if xt.device.type != "cpu":
        return one(xt).float().cpu().numpy()
    parts = each_alone(len(xt), lambda i: one(xt[i : i + 1]), torch.get_num_threads())
    return torch.cat(parts).float().contiguous().numpy()


def imaged(db: np.ndarray, dynamic_range: float) -> np.ndarray:
    """Pixels of display dB frames that carry echo: above the display floor (-DR, black; the
    B-mode reader puts everything outside the sector there)."""
    return np.asarray(db) > -dynamic_range + 1e-3


def context_view(
    db: np.ndarray, inside: np.ndarray, dynamic_range: float, size: int = CONTEXT
) -> tuple[np.ndarray, np.ndarray]:
    """One display dB frame (z, x) → the B-mode student's view of it: the mean power of the
    imaged region's bounding box in size × size cells, in dB over ``dynamic_range`` as grey/255
    (1, size, size), 0 in cells mostly outside ``inside``; and those cells' mask (1, size, size)."""
    import torch
    import torch.nn.functional as F

    from usdehaze.ultrasound.sector import bounding_box

    r0, c0, r1, c1 = bounding_box(inside)
    m = np.asarray(inside[r0:r1, c0:c1], np.float32)
    p = np.where(m > 0, 10.0 ** (np.asarray(db[r0:r1, c0:c1], np.float64) / 10), 0.0)
    power = F.adaptive_avg_pool2d(torch.from_numpy(p).float()[None, None], size)
    share = F.adaptive_avg_pool2d(torch.from_numpy(m)[None, None], size)
    cell_db = 10 * torch.log10(power / share.clamp_min(1e-6) + 1e-12)
    unit = ((cell_db + dynamic_range) / dynamic_range).clamp(-0.5, 1.5)
    within = share > 0.5
    return (
        torch.where(within, unit, torch.zeros_like(unit))[0].numpy(),
        within.float()[0].numpy(),
    )


def apply_gain(
    db: np.ndarray,
    inside: np.ndarray,
    view: np.ndarray,
    within: np.ndarray,
    clean: np.ndarray,
    dynamic_range: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The student's clean cells against its view (cells ``within`` the region; 0 dB elsewhere)
    → a dB gain (≤ 0), upsampled bilinearly to the bounding box and applied to every imaged
    pixel of ``db`` (z, x): tissue dB, and the haze as the power taken away, in dB."""
    import torch
    import torch.nn.functional as F

    from usdehaze.ultrasound.sector import bounding_box

    r0, c0, r1, c1 = bounding_box(inside)
    gain = (torch.from_numpy((clean - view) * within) * dynamic_range)[None]  # (1, 1, n, n) dB
    up = F.interpolate(gain, size=(r1 - r0, c1 - c0), mode="bilinear", align_corners=False)
    g = np.minimum(up[0, 0].numpy(), 0.0) * inside[r0:r1, c0:c1]
    tissue = np.array(db, np.float32)
    tissue[r0:r1, c0:c1] += g
    taken = 10.0 ** (db / 10) - 10.0 ** (tissue / 10)
    haze = 10 * np.log10(np.maximum(taken, 10.0 ** (-dynamic_range / 10)))
    floor = -dynamic_range
    return np.clip(tissue, floor, 0).astype(np.float32), np.clip(haze, floor, 0).astype(np.float32)


def run_db(student, db: np.ndarray, dynamic_range: float, device: Any, precision: str) -> dict:
    """Dehaze display dB frames (n, z, x) in one pass: tissue and haze in dB (see the module's
    note on the B-mode student: whole-region context in, a smooth gain on the input's pixels)."""
    from usdehaze.ultrasound.driver import stage

    db = np.asarray(db, np.float32)
    with stage("encode"):
        inside = imaged(db, dynamic_range)
        seen = [context_view(f, m, dynamic_range) for f, m in zip(db, inside)]
        views, within = np.stack([v for v, _ in seen]), np.stack([w for _, w in seen])
    clean = _forward(student, views, device, precision)
    with stage("decode"):
        pairs = [apply_gain(*a, dynamic_range) for a in zip(db, inside, views, within, clean)]
    return {
        "tissue": np.stack([t for t, _ in pairs]),
        "haze": np.stack([h for _, h in pairs]),
    }


def run(
    student,
    iq: np.ndarray,
    dynamic_range: float,
    device: Any,
    precision: str,
    within: np.ndarray | None = None,
) -> dict:
    """Dehaze complex frames (n, z, x) in one pass: input, tissue and haze in dB."""
    from usdehaze.ultrasound.driver import stage

    with stage("encode"):
        db, x = encode(iq, dynamic_range, within)
    out = _forward(student, x, device, precision)
    with stage("decode"):
        return {"input": db, **decode(out, dynamic_range)}
