"""``usdehaze bench dehaze``: frames/s of the default dehazer and of the fast method (its one-pass
student) against the plain Algorithm 1 loop."""

from __future__ import annotations

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
        help="Also time channels_last, compile, cuda_graphs, bf16 and/or fp16 (autocast).",
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
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.bench_dehaze import VARIANTS, run
    from usdehaze.ultrasound.dehaze import build_config

    if not 1 <= frames <= 1000:
        raise UsageError(f"--frames {frames}: expected 1 to 1000 (the limit)")
    for v in variant:
        if v not in VARIANTS:
            raise UsageError(f"--variant {v}: expected one of {', '.join(VARIANTS)}")
    for b in (*batches, *fast_batches):
        if not 1 <= b <= 1024:
            raise UsageError(f"--batch/--fast-batch {b}: expected 1 to 1024")
    for p in fast_precisions:
        if p not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"--fast-precision {p}: expected fp32, bf16 or fp16")
    if no_fast:
        fast_batches = []
    elif fast_batches:
        from usdehaze.ultrasound.student import student_path

        given = build_config(config, {"student": str(student) if student else None})
        path = student_path(given.priors, given.student)
        if student is not None and not path.is_file():
            raise UsageError(f"--student {student}: not found")
        if not path.is_file():
            typer.echo(
                f"note: no student at {path}: the fast rows are left out "
                "(--student PATH to time one, --no-fast to silence this)",
                err=True,
            )
            fast_batches = []
    import torch

    if devices == ["auto"]:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        cfg = build_config(
            config, {"steps": steps, "device": device, "student": str(student) if student else None}
        )
        run(
            cfg,
            frames,
            tuple(batches),
            variants=tuple(variant),
            plain=not no_plain,
            plain_steps=plain_steps,
            log=typer.echo,
            progress=lambda s: typer.echo(s, err=True),
            fast_batches=tuple(fast_batches),
            fast_precisions=tuple(fast_precisions),
        )
