"""The fast dehazer: a one-pass student distilled from the joint sampler (``--method fast``).

What the student sees and returns, in one place: in, the hazy frame's log envelope (dB scaled to
[-1, 1], the residual baseline) and its μ-law I/Q (the iq priors' representation); out, the
teacher's tissue and haze in the same dB scale. Training pairs come from
``pipelines/distil_student.py``; the network itself is ``usdehaze.core.student``.
"""

from __future__ import annotations

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


def student_path(priors: str | Path | None, student: str | Path | None) -> Path:
    """The student a run uses: ``student`` when given, else the priors folder's (``usdehaze
    adapt --student`` writes one beside the adapted priors), else the shipped one."""
    from usdehaze.ultrasound.prior_files import WEIGHTS_DIR

    if student:
        return Path(student)
    if priors and (Path(priors) / STUDENT_FILE).is_file():
        return Path(priors) / STUDENT_FILE
    return WEIGHTS_DIR / STUDENT_FILE


def load(path: Path, device: Any, dynamic_range: float):
    """Load a student and check it was distilled for this representation and dynamic range."""
    from usdehaze.core.student import load_student

    s = load_student(path, device)
    arch = s.net.arch
    if (arch.in_channels, arch.out_channels) != (IN_CHANNELS, OUT_CHANNELS):
        raise UsageError(
            f"{path}: key 'network': {arch.in_channels} in / {arch.out_channels} out channels, "
            f"the fast dehazer needs {IN_CHANNELS} / {OUT_CHANNELS}"
        )
    dr = s.meta.get("dynamic_range")
    if dr is not None and (isinstance(dr, bool) or not isinstance(dr, (int, float))):
        raise UsageError(
            f"{Path(path).with_suffix('.json')}: key 'dynamic_range': expected a number in dB, "
            f"got {dr!r}"
        )
    if dr is not None and float(dr) != dynamic_range:
        raise UsageError(
            f"{path}: student distilled with dynamic_range {dr} dB, run uses {dynamic_range} "
            f"(use --dynamic-range {dr})"
        )
    return s


def run(
    student,
    iq: np.ndarray,
    dynamic_range: float,
    device: Any,
    precision: str,
    within: np.ndarray | None = None,
) -> dict:
    """Dehaze complex frames (n, z, x) in one pass: input, tissue and haze in dB."""
    import torch

    db, x = encode(iq, dynamic_range, within)
    xt = torch.from_numpy(x).to(device)
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast(device_type=xt.device.type, dtype=dtype):
            out = student(xt)
    else:
        out = student(xt)
    return {"input": db, **decode(out.float().cpu().numpy(), dynamic_range)}
