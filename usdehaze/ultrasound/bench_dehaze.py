"""Dehazing speed: frames/s, ms per frame and ms per step of the dehazer at several batch sizes,
against the plain Algorithm 1 loop timed in the same run on the same frames: one frame at a
time, fp32, Euler–Maruyama from σ_max with scores re-evaluated after each DC step,
``plain_steps`` steps (the paper's T = 600 by default; fewer gives the per-step overhead at equal
steps), both networks back-propagated, as published. The fast method (the one-pass student,
``usdehaze.ultrasound.student``) gets rows of its own per batch size and precision, timed over
at least ``fast_seconds`` each (one pass is too short to time once); every row after the
default's first also has its ratio to that row.

The sampler's rows (plain loop, default, variants) dehaze through the frame loop of ``run``,
``run-many``, napari and ``evaluate`` (usdehaze.ultrasound.driver.FrameDriver), without its
do-no-harm check (an analysis of the result, not dehazing); its blank-frame scan, under 0.1 ms
a frame, is all it adds to seconds a frame. The fast rows call ``Dehazer.dehaze_iq`` as the
live view does: at their ≥ 1000 frames/s target that scan would be several per cent of the
figure, which would then no longer be the dehazing alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.driver import FrameDriver
from usdehaze.ultrasound.methods import METHODS
from usdehaze.ultrasound.simulate import simulate_cardiac

# extra rows of `bench`: speed settings of the default, and the sampler methods (joint: the
# two-prior sampler alone; refine: the student + its few steps), timed in the same run
VARIANTS = ("channels_last", "compile", "cuda_graphs", "bf16", "fp16", "joint", "refine")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(d: Dehazer, iq: np.ndarray, batch: int) -> tuple[float, int]:
    """Seconds to dehaze all of ``iq`` in batches through the frame driver (after a one-batch
    warm-up), and the network evaluations per frame the sampler ran (the driver's count)."""
    driver = FrameDriver(d, check=False)
    driver.dehaze(list(range(batch)), iq[:batch])
    _sync(d.device)
    batches = (
        (list(range(i, min(i + batch, len(iq)))), iq[i : i + batch])
        for i in range(0, len(iq), batch)
    )
    t0 = time.perf_counter()
    for _ in driver.run(batches):
        pass
    _sync(d.device)
    return time.perf_counter() - t0, driver.nfe


def _time_fast(d: Dehazer, iq: np.ndarray, batch: int, min_seconds: float) -> tuple[int, float]:
    """(frames, seconds) of repeated one-pass batches of ``batch`` frames (the frames reused
    cyclically), after two warm-up passes, for at least ``min_seconds`` and 3 batches."""
    x = iq[np.arange(batch) % len(iq)]
    for _ in range(2):
        d.dehaze_iq(x, frames=range(batch))
    _sync(d.device)
    n, t0 = 0, time.perf_counter()
    while True:
        d.dehaze_iq(x, frames=range(batch))
        _sync(d.device)
        n += batch
        sec = time.perf_counter() - t0
        if sec >= min_seconds and n >= 3 * batch:
            return n, sec


def _rate(fps: float) -> str:
    """frames/s in 8 characters, with the digits that matter (0.0014 as well as 1234.5)."""
    return f"{fps:8.4f}" if fps < 1 else f"{fps:8.1f}"


def fast_config(cfg: DehazeConfig, batch: int, precision: str) -> DehazeConfig:
    """The fast method's settings in a bench run: its student on its model, one sample."""
    return METHODS["fast"].configure(cfg, samples=1, batch=batch, precision=precision)


def run(
    cfg: DehazeConfig,
    frames: int = 4,
    batches: tuple[int, ...] = (1, 4),
    shape: tuple[int, int] = (256, 128),
    variants: tuple[str, ...] = (),
    plain: bool = True,
    plain_steps: int = 600,
    log: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
    fast_batches: tuple[int, ...] = (),
    fast_precisions: tuple[str, ...] = ("fp32", "bf16"),
    fast_seconds: float = 2.0,
) -> list[dict]:
    """Rows of frames/s, ms/frame and ms/step per setting; ``variants`` from VARIANTS; the fast
    method at each of ``fast_batches`` × ``fast_precisions`` (none by default: it needs a
    student, ``cfg.student`` or the shipped one); ``progress`` gets one line as each setting
    starts. Rows after the plain loop have ``speedup`` (its ratio), rows after the default's
    first ``vs_default`` (the ratio to that row)."""
    sim = simulate_cardiac(max(frames, *batches), seed=123, shape=shape)  # fast: reused
    iq = sim.hazy_iq  # every data model takes IQ frames (dB models log-compress first)
    settings = _settings(cfg, batches, variants, plain, plain_steps, fast_batches, fast_precisions)
    log(f"{len(iq)} frames of {shape[0]}x{shape[1]}, {cfg.steps} steps, device {cfg.device}")
    if plain:
        log("(the plain loop dehazes 1 frame; its ms/step is per step at batch 1)")
    if fast_batches:
        log(
            f"(fast: one network pass per frame, each row timed over ≥ {fast_seconds:g} s; "
            f"ratios against 'default, batch {batches[0]}' and the plain loop of this run)"
        )
    rows: list[dict] = []
    reference = None  # the first default row
    for k, (name, c, options) in enumerate(settings, 1):
        if progress:
            progress(f"bench dehaze: [{k}/{len(settings)}] {name} ...")
        row, fast = _time_setting(name, c, options, iq, fast_seconds)
        if rows and plain:
            row["speedup"] = row["frames_per_s"] / rows[0]["frames_per_s"]
        if reference is not None:
            row["vs_default"] = row["frames_per_s"] / reference["frames_per_s"]
        elif name.startswith("default"):
            reference = row
        rows.append(row)
        log(_row_line(row, fast))
    return rows


Setting = tuple[str, DehazeConfig, dict]  # (name, config, sampler options; "fast": one pass)


def _settings(
    cfg: DehazeConfig,
    batches: tuple[int, ...],
    variants: tuple[str, ...],
    plain: bool,
    plain_steps: int,
    fast_batches: tuple[int, ...],
    fast_precisions: tuple[str, ...],
) -> list[Setting]:
    """What to time, in order: the plain Algorithm 1 loop, the default and its variants per
    batch size, the fast method per batch size and precision."""
    settings: list[Setting] = []
    if plain:
        alg1 = replace(
            cfg,
            batch=1,
            solver="em",
            steps=plain_steps,
            channels_last=False,
            jacobian="both",
            precision="fp32",
        )
        opts = {"rescore": True, "start_sigma": None}
        settings.append((f"plain Algorithm 1, T={plain_steps}", alg1, opts))
    for b in batches:
        settings.append((f"default, batch {b}", replace(cfg, batch=b), {}))
        for v in variants:
            settings.append((f"{v}, batch {b}", _variant(cfg, v, b), {}))
    for b in fast_batches:
        for p in fast_precisions:
            settings.append((f"fast {p}, batch {b}", fast_config(cfg, b, p), {"fast": True}))
    return settings


def _variant(cfg: DehazeConfig, v: str, batch: int) -> DehazeConfig:
    """The default at ``batch`` with variant ``v``: a precision, a speed flag, or a method
    with its own sampler settings (joint, refine)."""
    if v in ("joint", "refine"):
        return METHODS[v].defaults(replace(cfg, batch=batch, method=v))
    change = {"precision": v} if v in ("bf16", "fp16") else {v: True}
    return replace(cfg, batch=batch, **change)


def _time_setting(
    name: str, c: DehazeConfig, options: dict, iq: np.ndarray, fast_seconds: float
) -> tuple[dict, bool]:
    """One setting timed: its row of rates, and whether it is a fast (one-pass) row, timed
    over repeated batches."""
    d = Dehazer(c)
    c = d.cfg  # as it ran (method auto: refine on these IQ frames with the shipped priors)
    fast = options.pop("fast", False)
    d.sampler_options = options
    if fast:
        n, sec = _time_fast(d, iq, c.batch, fast_seconds)
        steps, nfe = 1, d.nfe  # network passes per frame
    else:
        n = len(iq) - len(iq) % c.batch or c.batch
        if options.get("rescore"):
            n = 1  # slow by design: one frame is enough
        sec, nfe = _time(d, iq[:n], c.batch)
        steps = c.steps
    row = {
        "setting": name,
        "method": c.method,
        "precision": d.precision(),
        "batch": c.batch,
        "frames_per_s": n / sec,
        "s_per_frame": sec / n,
        "ms_per_frame": 1e3 * sec / n,
        "steps": steps,
        "ms_per_step": 1e3 * sec / (n / c.batch) / steps,
        "nfe": nfe,  # network evaluations per frame, as the sampler counted them
    }
    return row, fast


def _row_line(row: dict, fast: bool) -> str:
    """A row as one line of the table, with its ratios."""
    per = "1 pass" if fast else f"{row['ms_per_step']:8.1f} ms/step (batch) × {row['steps']} steps"
    return (
        f"{row['setting']:28s} {_rate(row['frames_per_s'])} frames/s  "
        f"{row['ms_per_frame']:9.1f} ms/frame  "
        + per
        + (f"  ×{row['speedup']:.2f} vs plain" if "speedup" in row else "")
        + (f"  ×{row['vs_default']:.2f} vs default" if "vs_default" in row else "")
    )


FAST_PRECISIONS = ("fp32", "bf16", "fp16")


def check_options(
    frames: int, variants: tuple[str, ...], batches: tuple[int, ...], precisions: tuple[str, ...]
) -> None:
    """One line for an option out of range: frames, variants, batch sizes (the default's and the
    fast rows') and the fast rows' precisions."""
    from usdehaze.errors import UsageError

    if not 1 <= frames <= 1000:
        raise UsageError(f"--frames {frames}: expected 1 to 1000 (the limit)")
    for v in variants:
        if v not in VARIANTS:
            raise UsageError(f"--variant {v}: expected one of {', '.join(VARIANTS)}")
    for b in batches:
        if not 1 <= b <= 1024:
            raise UsageError(f"--batch/--fast-batch {b}: expected 1 to 1024")
    for p in precisions:
        if p not in FAST_PRECISIONS:
            raise UsageError(f"--fast-precision {p}: expected fp32, bf16 or fp16")


def fast_batches_with_student(
    config: Path | None,
    student: Path | None,
    fast_batches: tuple[int, ...],
    note: Callable[[str], None],
) -> tuple[int, ...]:
    """The fast rows' batch sizes, or none when there is no student to time (said through
    ``note``); a ``student`` given and missing is one line."""
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.dehaze import build_config
    from usdehaze.ultrasound.student import student_path

    given = build_config(config, {"student": str(student) if student else None})
    path = student_path(given.priors, given.student)
    if student is not None and not path.is_file():
        raise UsageError(f"--student {student}: not found")
    if not path.is_file():
        note(
            f"note: no student at {path}: the fast rows are left out "
            "(--student PATH to time one, --no-fast to silence this)"
        )
        return ()
    return fast_batches


def bench_devices(devices: list[str]) -> list[str]:
    """The devices to time: as given, or for ``auto`` the CPU, then CUDA when present."""
    import torch

    if devices == ["auto"]:
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return devices
