"""``usdehaze bench dehaze``: frames/s of the default dehazer and of the fast method (its one-pass
student) against the plain Algorithm 1 loop."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from usdehaze.cli._options import Steps
from usdehaze.cli.bench_cmd import bench_app


@bench_app.command("dehaze")
def bench_dehaze(
    frames: int = typer.Option(4, "--frames", help="Simulated 256×128 frames to dehaze."),
    batches: list[int] = typer.Option([1, 4], "--batch", help="Batch size(s)."),
    variant: list[str] = typer.Option(
        [],
        "--variant",
        help="Also time channels_last, compile, cuda_graphs, bf16 and/or fp16 (autocast), "
        "or the methods joint (the sampler alone) and refine (the student + a few steps).",
    ),
    devices: list[str] = typer.Option(
        ["auto"], "--device", help="cpu and/or cuda; auto = cpu, then cuda when present."
    ),
    config: Path = typer.Option(None, "--config", help="YAML with DehazeConfig keys."),
    steps: Steps = None,
    no_plain: bool = typer.Option(False, "--no-plain", help="Skip the plain Algorithm 1 loop."),
    plain_steps: int = typer.Option(
        600, "--plain-steps", help="Steps of the plain Algorithm 1 loop (the paper's T = 600)."
    ),
    fast_batches: list[int] = typer.Option(
        [1, 8], "--fast-batch", help="Batch size(s) of the fast method's rows."
    ),
    fast_precisions: list[str] = typer.Option(
        ["fp32", "bf16"], "--fast-precision", help="Precision(s) of the fast method's rows."
    ),
    student: Path = typer.Option(
        None, "--student", help="Student of the fast method (default: the shipped one)."
    ),
    no_fast: bool = typer.Option(False, "--no-fast", help="Skip the fast method's rows."),
) -> None:
    """frames/s, ms/frame and ms/step per batch size (and variant), and of the fast method (one
    network pass: --fast-batch × --fast-precision), with the ratios against the plain
    Algorithm 1 loop (batch 1, Euler–Maruyama from σ_max, scores re-evaluated after each DC
    step, --plain-steps steps) and the default's first row, all timed in the same run."""
    from usdehaze.ultrasound import bench_dehaze as bench
    from usdehaze.ultrasound.dehaze import build_config

    to_stderr = partial(typer.echo, err=True)
    bench.check_options(frames, tuple(variant), (*batches, *fast_batches), tuple(fast_precisions))
    if no_fast:
        fast_batches = []
    elif fast_batches:
        fast_batches = bench.fast_batches_with_student(
            config, student, tuple(fast_batches), to_stderr
        )
    for device in bench.bench_devices(devices):
        cfg = build_config(
            config, {"steps": steps, "device": device, "student": str(student) if student else None}
        )
        bench.run(
            cfg,
            frames,
            tuple(batches),
            variants=tuple(variant),
            plain=not no_plain,
            plain_steps=plain_steps,
            log=typer.echo,
            progress=to_stderr,
            fast_batches=tuple(fast_batches),
            fast_precisions=tuple(fast_precisions),
        )
