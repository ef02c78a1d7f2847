"""``usdehaze bench dehaze``: frames/s of the default dehazer against the plain Algorithm 1 loop."""

from __future__ import annotations

from pathlib import Path

import typer

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
    steps: int = typer.Option(None, "--steps", help="Sampler steps."),
    no_plain: bool = typer.Option(False, "--no-plain", help="Skip the plain Algorithm 1 loop."),
    plain_steps: int = typer.Option(
        600, "--plain-steps", help="Steps of the plain Algorithm 1 loop (the paper's T = 600)."
    ),
) -> None:
    """frames/s, s/frame and ms/step per batch size (and variant), with the ratio against the
    plain Algorithm 1 loop (batch 1, Euler–Maruyama from σ_max, scores re-evaluated after each
    DC step, --plain-steps steps) timed in the same run."""
    from usdehaze.cli.run_cmd import build_config
    from usdehaze.errors import UsageError
    from usdehaze.ultrasound.bench_dehaze import VARIANTS, run

    if not 1 <= frames <= 1000:
        raise UsageError(f"--frames {frames}: expected 1 to 1000 (the limit)")
    for v in variant:
        if v not in VARIANTS:
            raise UsageError(f"--variant {v}: expected one of {', '.join(VARIANTS)}")
    import torch

    if devices == ["auto"]:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        cfg = build_config(config, {"steps": steps, "device": device})
        run(
            cfg,
            frames,
            tuple(batches),
            variants=tuple(variant),
            plain=not no_plain,
            plain_steps=plain_steps,
            log=typer.echo,
            progress=lambda s: typer.echo(s, err=True),
        )
