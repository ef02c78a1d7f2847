"""Dehazing speed: frames/s and ms per step of the dehazer at several batch sizes, against the
plain Algorithm 1 loop timed in the same run on the same frames: one frame at a time, fp32,
Euler–Maruyama from σ_max with scores re-evaluated after each DC step, ``plain_steps`` steps
(the paper's T = 600 by default; fewer gives the per-step overhead at equal steps), both networks
back-propagated, as published."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from usdehaze.ultrasound.dehaze import DehazeConfig, Dehazer
from usdehaze.ultrasound.simulate import simulate_cardiac

VARIANTS = ("channels_last", "compile", "cuda_graphs", "bf16", "fp16")  # extra rows of `bench`


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(d: Dehazer, iq: np.ndarray, batch: int) -> float:
    """Seconds to dehaze all of ``iq`` in batches (after a one-batch warm-up)."""
    d.dehaze_iq(iq[:batch], frames=range(batch))
    _sync(d.device)
    t0 = time.perf_counter()
    for i in range(0, len(iq), batch):
        d.dehaze_iq(iq[i : i + batch], frames=range(i, min(i + batch, len(iq))))
    _sync(d.device)
    return time.perf_counter() - t0


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
) -> list[dict]:
    """Rows of frames/s and ms/step per setting; ``variants`` from VARIANTS; ``progress`` gets
    one line as each setting starts."""
    sim = simulate_cardiac(max(frames, max(batches)), seed=123, shape=shape)
    iq = sim.hazy_iq  # every data model takes IQ frames (dB models log-compress first)
    rows = []
    settings = []
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
            change = {"precision": v} if v in ("bf16", "fp16") else {v: True}
            settings.append((f"{v}, batch {b}", replace(cfg, batch=b, **change), {}))
    log(f"{len(iq)} frames of {shape[0]}x{shape[1]}, {cfg.steps} steps, device {cfg.device}")
    if plain:
        log("(the plain loop dehazes 1 frame; its ms/step is per step at batch 1)")
    for k, (name, c, options) in enumerate(settings, 1):
        if progress:
            progress(f"bench dehaze: [{k}/{len(settings)}] {name} ...")
        d = Dehazer(c)
        d.sampler_options = options
        n = len(iq) - len(iq) % c.batch or c.batch
        if options.get("rescore"):
            n = 1  # slow by design: one frame is enough
        sec = _time(d, iq[:n], c.batch)
        row = {
            "setting": name,
            "batch": c.batch,
            "frames_per_s": n / sec,
            "s_per_frame": sec / n,
            "steps": c.steps,
            "ms_per_step": 1e3 * sec / (n / c.batch) / c.steps,
        }
        if rows and plain:
            row["speedup"] = row["frames_per_s"] / rows[0]["frames_per_s"]
        rows.append(row)
        log(
            f"{name:28s} {row['frames_per_s']:7.2f} frames/s  {row['s_per_frame']:6.2f} s/frame  "
            f"{row['ms_per_step']:8.1f} ms/step (batch) × {c.steps} steps"
            + (f"  ×{row['speedup']:.2f} vs plain" if "speedup" in row else "")
        )
    return rows
