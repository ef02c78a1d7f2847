"""Sampler benchmark: ms per step and per image for each rule, size and batch, with the ratio
against a plain loop of Algorithm 1 (scores re-evaluated after the data-consistency step)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from usdehaze.core.dc_rules import make_rule
from usdehaze.core.networks import count_parameters
from usdehaze.core.operators import Identity
from usdehaze.core.sampler import JointSampler


def _time(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run(
    signal_prior,
    noise_prior,
    sizes=(64, 256),
    batches=(1, 16),
    rules=("pigdm", "dps", "projection"),
    steps: int = 4,
    device: str | torch.device = "cpu",
    plain: bool = True,
    log: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Time ``steps`` sampler steps per configuration (after one warm-up step); ``progress``
    gets one line as each configuration starts."""
    device = torch.device(device)
    rows = []
    warm = torch.zeros(1, 1, 32, 32, device=device)
    sde = signal_prior.sde
    JointSampler(
        signal_prior, noise_prior, make_rule("pigdm", Identity()), sde, steps=2, device=device
    )(warm)  # threads, allocator
    log(
        f"networks: signal {count_parameters(signal_prior):,} parameters, noise {count_parameters(noise_prior):,}; device {device}"
    )
    total, k = len(rules) * len(sizes) * len(batches), 0
    for rule in rules:
        for size in sizes:
            for batch in batches:
                k += 1
                if progress:
                    progress(f"bench sampler: [{k}/{total}] {rule} {size}x{size} batch {batch} ...")
                y = torch.randn(batch, 1, size, size, device=device) * 0.3
                row = {"rule": rule, "size": size, "batch": batch}
                for name, rescore in (("ours", False), ("plain", True)):
                    if name == "plain" and not plain:
                        continue
                    weighting = "variance" if rule == "dps" else "paper"
                    s = JointSampler(
                        signal_prior,
                        noise_prior,
                        make_rule(rule, Identity(), weighting=weighting),
                        sde,
                        steps=steps,
                        start_sigma=2.0,
                        rescore=rescore,
                        device=device,
                    )
                    warm_rule = make_rule(rule, Identity())
                    JointSampler(signal_prior, noise_prior, warm_rule, sde, steps=1, device=device)(
                        y
                    )  # warm-up
                    sec = _time(lambda s=s, y=y: s(y, seed=0), device)
                    row[f"{name}_ms_per_step"] = 1e3 * sec / steps
                    row[f"{name}_ms_per_image"] = 1e3 * sec / steps / batch
                if plain:
                    row["speedup"] = row["plain_ms_per_step"] / row["ours_ms_per_step"]
                rows.append(row)
                log(
                    f"{rule:10s} {size:4d}x{size:<4d} batch {batch:3d}: {row['ours_ms_per_step']:9.1f} ms/step "
                    f"{row['ours_ms_per_image']:8.1f} ms/step/image"
                    + (
                        f"   plain Algorithm 1 loop {row['plain_ms_per_step']:9.1f} ms/step  (×{row['speedup']:.2f})"
                        if plain
                        else ""
                    )
                )
    return rows
